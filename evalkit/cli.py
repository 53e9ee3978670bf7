"""The ``evalkit`` command.

    evalkit run [hydra overrides...]        one run (or a sweep with -m) -> results/<experiment>/<time>/
    evalkit data download lfw [--dest DIR]  fetch LFW and its label files, verify SHA-256
    evalkit data verify lfw                 check a local copy against the fixed SHA-256s (no network)
    evalkit data info lfw                   what the local copy holds (counts, label coverage)
    evalkit weights                         what each backend needs, where, present or not
    evalkit weights fetch NAME...           download DeepFace recogniser/detector weights (explicitly; SHA-256 recorded)
    evalkit report RUN_DIR                  write RUN_DIR/report.html (self-contained HTML report)
    evalkit compare RUN... [--out DIR]      per-group table (md, csv) and figure across runs or a sweep folder
    evalkit embed [overrides...]            stage=embed: embed shard.index of shard.count of a run's images into the cache
                                            (evalkit embed -m hydra/launcher=submitit_slurm shard.index='range(0,64)' shard.count=64)
    evalkit cache [--verify] [--clean]      embedding cache: entries, size, fingerprints; verify every shard
    evalkit check RUN --baseline DIR        CI gate: rules in conf/check/default.yaml (search runs: search.yaml);
                                            exit 0 pass, 1 regression
"""

from __future__ import annotations

import argparse
import sys


def _run(overrides: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from . import config as config_mod
    from .pipeline import run

    config_mod.register()
    status = {"code": 0}

    @hydra.main(version_base="1.3", config_path=str(config_mod.conf_dir()), config_name="config")
    def _main(cfg) -> None:
        try:
            run(cfg, HydraConfig.get().runtime.output_dir)
        except (config_mod.ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"evalkit: error: {exc}", file=sys.stderr)
            status["code"] = 2
            if HydraConfig.get().mode.name == "MULTIRUN":
                raise

    saved = sys.argv
    sys.argv = ["evalkit run", *overrides]
    try:
        _main()
    finally:
        sys.argv = saved
    return status["code"]


def _data(args: list[str]) -> int:
    from .config import default_data_dir

    p = argparse.ArgumentParser(prog="evalkit data")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download a dataset and its label files, verifying checksums")
    d.add_argument("dataset", choices=["lfw"])
    d.add_argument("--dest", default=None, help="data root (default: $EVALKIT_DATA_DIR or datasets/)")
    d.add_argument("--force", action="store_true")
    v = sub.add_parser("verify", help="check a local copy against the fixed checksums (no network)")
    v.add_argument("dataset", choices=["lfw"])
    v.add_argument("--root", default=None)
    i = sub.add_parser("info", help="what the local copy of a dataset holds")
    i.add_argument("dataset", choices=["lfw"])
    i.add_argument("--root", default=None)
    ns = p.parse_args(args)
    from pathlib import Path

    if ns.cmd == "download":
        from .data.download import DownloadError, download_lfw

        dest = Path(ns.dest or default_data_dir()) / "lfw"
        try:
            download_lfw(dest, force=ns.force)
        except DownloadError as exc:
            print(f"evalkit: {exc}", file=sys.stderr)
            return 1
        print(f"LFW ready in {dest}")
        return 0
    root = Path(ns.root or Path(default_data_dir()) / "lfw")
    if ns.cmd == "verify":
        from .data.download import verify_lfw

        status = verify_lfw(root)
        for name, state in status.items():
            print(f"{name:28s} {state}")
        bad = [n for n, st in status.items() if not st.startswith("ok")]
        print(f"{root}: " + ("all files verified" if not bad else f"{len(bad)} problem(s)"))
        return 1 if bad else 0
    from .data.lfw import load_lfw

    s = load_lfw(root)
    import numpy as np

    print(f"{s.name}: {len(s)} images, {len(np.unique(s.subjects))} subjects in {root}")
    for attr, cov in s.label_coverage().items():
        print(f"  {attr}: " + ", ".join(f"{g} {c['subjects']} subjects/{c['samples']} images" for g, c in cov.items()))
        print(f"    source: {s.label_sources.get(attr, '')}")
    return 0


def _weights_fetch(args: list[str]) -> int:
    """Download the weight files of DeepFace recognisers and detectors, explicitly: each file from
    DeepFace's own upstream URL (then its backups), unpacked, written atomically into evalkit's
    DeepFace folder, its SHA-256 printed and recorded. A run never downloads anything."""
    from .backends.weights import (DEEPFACE_DETECTORS, DEEPFACE_ENGINES, DEEPFACE_MODELS, FetchError,
                                   cached_sha256, deepface_required_files, fetch_weight_file)

    p = argparse.ArgumentParser(prog="evalkit weights fetch", description=_weights_fetch.__doc__)
    p.add_argument("names", nargs="+", help="DeepFace recognisers and/or detectors, e.g. ArcFace retinaface")
    p.add_argument("--engine", choices=DEEPFACE_ENGINES, default=None, help="recogniser files for this engine")
    ns = p.parse_args(args)
    files = []
    for name in ns.names:
        if name in DEEPFACE_MODELS:
            files += deepface_required_files(name, "skip", ns.engine)
        elif name in DEEPFACE_DETECTORS:
            files += [f for f in deepface_required_files("Dlib", name, ns.engine)
                      if f.name not in ("dlib_face_recognition_resnet_model_v1.dat",)]
        else:
            import difflib

            hint = difflib.get_close_matches(name, [*DEEPFACE_MODELS, *DEEPFACE_DETECTORS], n=1)
            print(f"evalkit weights fetch: {name!r} is neither a DeepFace recogniser nor a detector."
                  + (f" Did you mean {hint[0]!r}?" if hint else ""), file=sys.stderr)
            return 2
    status = 0
    for f in dict((f.name, f) for f in files).values():
        if f.present:
            print(f"{f.name}: present at {f.path} (sha256 {cached_sha256(f.path)})")
            continue
        try:
            r = fetch_weight_file(f)
        except FetchError as exc:
            print(f"evalkit weights fetch: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{r['name']}: fetched from {r['url']} -> {r['path']} (sha256 {r['sha256']}"
              + (f"; {r['known']}" if r["known"] else "; recorded, not pinned") + ")")
    return status


def _weights(args: list[str]) -> int:
    """For every registered backend family: each weights file, where it is expected, present (with
    a SHA-256 prefix) or MISSING, and where it comes from; DeepFace: every recogniser and detector."""
    from .backends import BACKENDS
    from .backends.weights import (DEEPFACE_ENGINES, DETECTOR_WEIGHTS_ENV, cached_sha256, deepface_engine,
                                   deepface_weights_dir, place_detector_weights,
                                   place_packaged_weights)

    if args and args[0] == "fetch":
        return _weights_fetch(args[1:])
    p = argparse.ArgumentParser(prog="evalkit weights", description=_weights.__doc__)
    p.add_argument("backend", nargs="?", help=f"only this backend family ({', '.join(BACKENDS.names())})")
    p.add_argument("--engine", choices=DEEPFACE_ENGINES, default=None,
                   help="DeepFace engine to list recogniser files for (default: the one DeepFace would use)")
    p.add_argument("--missing", action="store_true", help="list only missing files")
    ns = p.parse_args(args)
    families = BACKENDS.names()
    if ns.backend:
        if ns.backend not in BACKENDS:
            from .registry import RegistryError

            try:
                BACKENDS.target(ns.backend)
            except RegistryError as exc:   # unknown name: a did-you-mean hint
                print(f"evalkit weights: {exc}", file=sys.stderr)
                return 2
        families = [ns.backend]

    place_packaged_weights()  # evalkit manages DeepFace's folder: packaged weights go in place first
    for det, env in DETECTOR_WEIGHTS_ENV.items():   # and local detector files named by environment variable
        try:
            place_detector_weights(det)
        except Exception as exc:
            print(f"evalkit: ${env}: {exc}", file=sys.stderr)
    counts = {"present": 0, "missing": 0}

    def show(label: str, files: list, packages: list = ()) -> None:
        shown = [f for f in files if not (ns.missing and f.present)]
        for f in shown:
            counts["present" if f.present else "missing"] += 1
            state = f"present  sha256 {cached_sha256(f.path)[:16]}..." if f.present else "MISSING"
            print(f"  {label:22s} {f.name:44s} {state}")
            print(f"  {'':22s}   expected at: {f.path}")
            print(f"  {'':22s}   source:      {f.source}")
        if not files and not ns.missing:
            print(f"  {label:22s} {'(no weights file)':44s} -")
        if packages:
            print(f"  {label:22s}   needs Python package(s), not installed: {'; '.join(packages)}")

    for family in families:
        print(f"== {family} ==")
        try:
            cls = BACKENDS.get(family)
        except Exception as exc:  # a backend module that cannot import is reported, not fatal
            print(f"  cannot import the {family} backend: {type(exc).__name__}: {exc}\n")
            continue
        if family == "deepface":
            print(f"  DeepFace weights folder: {deepface_weights_dir()}; engine: {deepface_engine(ns.engine)}"
                  " (recogniser files differ per engine; --engine to list another)")
            for label, files, packages in cls.weights_listing(ns.engine):
                show(label, files, packages)
        elif hasattr(cls, "weights_listing"):
            for label, files, *rest in cls.weights_listing():
                show(label, files, rest[0] if rest else ())
        else:
            show("default options", cls.required_files({}))
        print()
    print(f"{counts['present']} present, {counts['missing']} missing. evalkit never downloads weights: "
          "put a missing file at its expected path (from its source), then rerun.")
    return 0


def _report(args: list[str]) -> int:
    """Write RUN_DIR/report.html: one self-contained HTML report read from the run folder only."""
    p = argparse.ArgumentParser(prog="evalkit report", description=_report.__doc__)
    p.add_argument("run_dir", help="a run folder (holding metrics.json)")
    ns = p.parse_args(args)
    from .report.html import write_report

    try:
        print(write_report(ns.run_dir))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"evalkit report: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _compare(args: list[str]) -> int:
    from .report.compare import main as compare_main

    return compare_main(args)


def _check(args: list[str]) -> int:
    from .report.check import main as check_main

    return check_main(args)


def _embed(args: list[str]) -> int:
    """``evalkit embed ...`` is ``evalkit run stage=embed ...`` (README "Running on a cluster")."""
    flags = [a for a in args if a.startswith("-")]
    return _run([*flags, "stage=embed", *[a for a in args if not a.startswith("-")]])


def _cache(args: list[str]) -> int:
    from .embeddings import cache_main

    return cache_main(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    handlers = {"run": _run, "data": _data, "weights": _weights, "report": _report,
                "compare": _compare, "check": _check, "cache": _cache, "embed": _embed}
    if cmd not in handlers:
        import difflib

        hint = difflib.get_close_matches(cmd, handlers, n=1)
        print(f"evalkit: unknown command {cmd!r}." + (f" Did you mean {hint[0]!r}?" if hint else ""), file=sys.stderr)
        return 2
    return handlers[cmd](rest)


if __name__ == "__main__":
    sys.exit(main())
