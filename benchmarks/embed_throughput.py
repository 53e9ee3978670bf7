"""Images per second for each backend: the model called directly in a loop, then evalkit's
extraction loop (hashing, cache writes, worker processes) at 1 and 2 workers with an empty cache.

    python benchmarks/embed_throughput.py [n_images]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from evalkit.backends import build_backend
from evalkit.embeddings import extract

FORMS = [("dlib", "dlib", {}), ("deepface-dlib", "deepface", {"model_name": "Dlib", "detector_backend": "opencv"})]


def lfw_images(n: int) -> list[str]:
    root = Path(os.environ.get("EVALKIT_DATA_DIR", "datasets")) / "lfw" / "lfw-deepfunneled"
    files = sorted(root.glob("*/*.jpg"))
    if not files:
        sys.exit(f"no LFW images under {root}: set EVALKIT_DATA_DIR")
    step = max(1, len(files) // n)
    return [str(p) for p in files[::step][:n]]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    paths = lfw_images(n)
    print(f"{len(paths)} LFW images, {os.cpu_count()} cores")
    print("| backend | direct loop | evalkit, 1 worker | evalkit, 2 workers |")
    print("|---|---:|---:|---:|")
    for label, family, options in FORMS:
        b = build_backend(family, options)
        b.embed_one(paths[0])  # load the model outside the timing
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
                extract(paths, family, options, cache, workers=workers, progress=False)
                rates.append(len(paths) / (time.perf_counter() - t))
        print(f"| {label} | {direct:.1f} img/s | {rates[0]:.1f} img/s | {rates[1]:.1f} img/s |", flush=True)


if __name__ == "__main__":
    main()
