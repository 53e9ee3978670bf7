"""The ``evalkit`` command.

    evalkit run [hydra overrides...]        one run (or a sweep with -m) -> results/<experiment>/<time>/
    evalkit data download lfw [--dest DIR]  fetch LFW and its label files, verify SHA-256
    evalkit data verify lfw                 check a local copy against the fixed SHA-256s (no network)
    evalkit data info lfw                   what the local copy holds (counts, label coverage)
    evalkit weights                         what each backend needs, where, present or not
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


def _weights(args: list[str]) -> int:
    from .backends.weights import (cached_sha256, deepface_required_files, face_recognition_models_file,
                                   place_packaged_weights)

    place_packaged_weights()  # evalkit manages DeepFace's folder: packaged weights go in place first
    rows = []
    for backend, f in [("dlib", face_recognition_models_file("dlib_face_recognition_resnet_model_v1.dat")),
                       ("dlib", face_recognition_models_file("shape_predictor_5_face_landmarks.dat")),
                       ("dlib (detector=cnn)", face_recognition_models_file("mmod_human_face_detector.dat"))]:
        rows.append((backend, f))
    rows += [("deepface-dlib", f) for f in deepface_required_files("Dlib")]
    for backend, f in rows:
        state = f"present sha256={cached_sha256(f.path)[:16]}..." if f.present else "MISSING"
        print(f"{backend:22s} {f.name}\n    expected at: {f.path}\n    {state}\n    source: {f.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    handlers = {"run": _run, "data": _data, "weights": _weights}
    if cmd not in handlers:
        import difflib

        hint = difflib.get_close_matches(cmd, handlers, n=1)
        print(f"evalkit: unknown command {cmd!r}." + (f" Did you mean {hint[0]!r}?" if hint else ""), file=sys.stderr)
        return 2
    return handlers[cmd](rest)


if __name__ == "__main__":
    sys.exit(main())
