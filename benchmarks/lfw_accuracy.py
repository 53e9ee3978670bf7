"""LFW View 2 accuracy of each backend form, through the real `evalkit run`, beside published figures.

    python benchmarks/lfw_accuracy.py                      # the README's table
    python benchmarks/lfw_accuracy.py backend=dlib backend.upsample=2   # any one config

Each row is one run folder under results/benchmarks/; embeddings come from the cache when present.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROWS = [
    ("dlib, HOG; no face -> failure (non-match)", ["backend=dlib"], "99.38% (dlib)"),
    ("dlib, HOG; no face -> centre box (dlib's LFW procedure)", ["backend=dlib", "backend.no_face=center_box"], "99.38% (dlib)"),
    ("dlib, HOG; centre box; 10 jitters (slow: ~30 min)", ["backend=dlib", "backend.no_face=center_box",
                                                         "backend.num_jitters=10"], "99.3% (dlib, 10 jitters)"),
    ("deepface-dlib, opencv detector, cosine", ["backend=deepface-dlib"], "96.8% (DeepFace table)"),
    ("facenet, MTCNN box + 32 px margin, euclidean", ["backend=facenet"],
     "99.05% (davidsandberg/facenet, 20180408-102900)"),
    ("lbph, Haar box, chi-square", ["backend=lbph"], "about 72-73% for LBP on LFW in the literature"),
]


def run(overrides: list[str]) -> dict:
    out = Path("results/benchmarks")
    before = set(out.glob("*/*/metrics.json"))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalkit.cli", "run", *overrides, "results_dir=results/benchmarks",
                    "progress=false"], check=True)
    (new,) = set(out.glob("*/*/metrics.json")) - before
    m = json.loads(new.read_text())
    m["_seconds"] = time.perf_counter() - t
    m["_folder"] = str(new.parent)
    return m


def main(argv: list[str]) -> None:
    rows = [(" ".join(argv), argv, "")] if argv else ROWS
    print("| form | LFW 10-fold accuracy | EER | failed images | FNMR male / female @ FMR 1e-3 | published | run |")
    print("|---|---|---|---|---|---|---|")
    for label, overrides, published in rows:
        m = run(overrides)
        a, f, g = m["lfw_accuracy"], m["failures"]["images"], m["groups"]["sex"]
        fb = sum(f.get("fallbacks", {}).values())
        print(f"| {label} | {100 * a['mean']:.2f}% ± {100 * a['sem']:.2f}% | {100 * m['eer']:.2f}% | "
              f"{f['fte']['errors']}/{f['fte']['n']}" + (f" (+{fb} centre-box)" if fb else "") + " | "
              f"{100 * g['male']['fnmr']['rate']:.2f}% / {100 * g['female']['fnmr']['rate']:.2f}% | {published} | "
              f"{m['_folder']} ({m['_seconds']:.0f} s) |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
