"""A BFW-sized score import: peak memory and time of ``evalkit run +experiment=bfw
backend=bfw-scores`` over a synthetic datatable the size of the real one (about 920,000 pairs).

    python benchmarks/bfw_scores_scale.py                  # 923,898 rows drawn, duplicates dropped
    python benchmarks/bfw_scores_scale.py --rows 100000

The datatable has BFW's columns and codes (8 subgroups of 100 subjects, 25 images each, 5 folds,
about 10% genuine pairs, seeded) and random vendor scores; the images are empty files (the score
backend never opens them; the dataset adapter only checks they exist). The run goes through the
real adapter, the score-file backend, the BFW protocol, metrics (bootstrap included), report and
figures, in a fresh process under ``/usr/bin/time``-style accounting (``ru_maxrss`` of the child).
The numbers mean nothing about any model: this measures evalkit, not a system.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROUPS = {"asian_females": "AF", "asian_males": "AM", "black_females": "BF", "black_males": "BM",
          "indian_females": "IF", "indian_males": "IM", "white_females": "WF", "white_males": "WM"}
HEADER = ["fold", "p1", "p2", "label", "id1", "id2", "att1", "att2", "vgg16", "resnet50", "senet50",
          "a1", "a2", "g1", "g2", "e1", "e2"]


def write_fixture(root: Path, rows: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    subjects = [(g, f"n{j * 100 + i:06d}") for j, g in enumerate(GROUPS) for i in range(100)]
    seen: set[frozenset] = set()
    images: set[str] = set()
    with open(root / "bfw-v0.1.5-datatable.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for _ in range(rows):
            g1, s1 = rng.choice(subjects)
            same = rng.random() < 0.1
            g2, s2 = (g1, s1) if same else rng.choice(subjects)
            p1 = f"{g1}/{s1}/{rng.randint(1, 25):04d}_01.jpg"
            p2 = f"{g2}/{s2}/{rng.randint(1, 25):04d}_01.jpg"
            key = frozenset((p1, p2))
            if p1 == p2 or (not same and s1 == s2) or key in seen:
                continue
            seen.add(key)
            images.update((p1, p2))
            a1, a2 = GROUPS[g1], GROUPS[g2]
            w.writerow([rng.randint(1, 5), p1, p2, int(same), 0, 0, g1, g2, round(rng.random(), 6),
                        round(rng.random(), 6), round(rng.random(), 6), a1, a2, a1[1], a2[1], a1[0], a2[0]])
    for p in images:
        f = root / "bfw" / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
    return len(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=923_898, help="rows drawn (duplicates are dropped)")
    ap.add_argument("--column", default="senet50")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bfw_data"
        root.mkdir()
        t = time.perf_counter()
        n = write_fixture(root, ns.rows)
        print(f"datatable: {n:,} pairs over {len(list((root / 'bfw').rglob('*.jpg'))):,} images "
              f"(written in {time.perf_counter() - t:.1f} s)", flush=True)
        env = dict(os.environ, EVALKIT_HOME=str(Path(tmp) / "home"))
        cmd = [sys.executable, "-m", "evalkit.cli", "run", "+experiment=bfw", "backend=bfw-scores",
               f"backend.score_column={ns.column}", f"dataset.root={root}", "progress=false",
               f"hydra.run.dir={Path(tmp) / 'run'}"]
        t = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if out.returncode:
            sys.exit(f"run failed ({out.returncode}):\n{out.stderr[-3000:]}")
        import json

        timings = json.loads((Path(tmp) / "run" / "record.json").read_text())["timings_seconds"]
        print(f"evalkit run: {wall:.1f} s wall, peak {peak:,.0f} MB (ru_maxrss); stages {timings}")


if __name__ == "__main__":
    main()
