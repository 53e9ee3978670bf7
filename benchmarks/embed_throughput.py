"""Images per second for each backend: the model called directly in a loop, then evalkit's
extraction loop (hashing, cache writes, worker processes) at 1 and 2 workers with an empty cache.

    python benchmarks/embed_throughput.py [n_images] [--backends dlib,lbph,...] [--all] [--onnx-model PATH]

Backends are named by their config in conf/backend/ (options as `evalkit run backend=<name>`
would use them). Default: one config per backend family registered in evalkit.backends
(dlib, deepface-dlib, facenet, lbph, onnx). A backend that cannot run here (family not
registered, weights missing, onnx without --onnx-model) is skipped with the reason printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from evalkit.backends import BACKENDS, build_backend
from evalkit.embeddings import extract

DEFAULT = ["dlib", "deepface-dlib", "facenet", "lbph", "onnx"]


def lfw_images(n: int) -> list[str]:
    root = Path(os.environ.get("EVALKIT_DATA_DIR", "datasets")) / "lfw" / "lfw-deepfunneled"
    files = sorted(root.glob("*/*.jpg"))
    if not files:
        sys.exit(f"no LFW images under {root}: set EVALKIT_DATA_DIR")
    step = max(1, len(files) // n)
    return [str(p) for p in files[::step][:n]]


def backend_config(name: str, extra: list[str]) -> tuple[str, dict]:
    """(family, options) of conf/backend/<name>.yaml, as `evalkit run backend=<name>` builds them."""
    from hydra import compose, initialize_config_dir

    from evalkit import config as config_mod

    config_mod.register()
    with initialize_config_dir(config_dir=str(config_mod.conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"backend={name}", *extra])
    return cfg.backend.family, config_mod.backend_options(cfg.backend)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n_images", nargs="?", type=int, default=200)
    ap.add_argument("--backends", help="comma-separated names of configs in conf/backend/")
    ap.add_argument("--all", action="store_true", help="every config in conf/backend/")
    ap.add_argument("--onnx-model", help="an .onnx file for the onnx config (backend.model_path)")
    args = ap.parse_args()

    from evalkit.config import conf_dir

    if args.all:
        names = sorted(p.stem for p in (conf_dir() / "backend").glob("*.yaml"))
    elif args.backends:
        names = args.backends.split(",")
    else:
        names = DEFAULT
    paths = lfw_images(args.n_images)
    print(f"{len(paths)} LFW images, {os.cpu_count()} cores")
    rows, skipped = [], []
    for name in names:
        extra = [f"backend.model_path={args.onnx_model}"] if name == "onnx" and args.onnx_model else []
        try:
            family, options = backend_config(name, extra)
            if family not in BACKENDS:
                raise RuntimeError(f"backend family {family!r} is not registered in evalkit.backends")
            if options.get("model_path") == "???":
                raise RuntimeError("no model file: pass --onnx-model PATH")
            b = build_backend(family, dict(options))
            b.check_ready()
            b.embed_one(paths[0])  # load the model outside the timing
        except Exception as exc:
            skipped.append((name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
            print(f"skip {name}: {skipped[-1][1]}", flush=True)
            continue
        t = time.perf_counter()
        for p in paths:
            try:
                b.embed_one(p)
            except Exception:
                pass
        direct = len(paths) / (time.perf_counter() - t)
        rates = []
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                res, _, _ = extract(paths, family, options, cache, workers=workers, progress=False)
                rates.append(len(paths) / (time.perf_counter() - t))
        failed = int((~res.ok).sum())
        rows.append(f"| {name} | {direct:.1f} img/s | {rates[0]:.1f} img/s | {rates[1]:.1f} img/s | {failed} |")
        print(f"done {name}", flush=True)
    print()
    print("| backend | direct loop | evalkit, 1 worker | evalkit, 2 workers | images failed |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(r)
    for name, why in skipped:
        print(f"skipped {name}: {why}")


if __name__ == "__main__":
    main()
