"""Peak memory and time of ``evalkit.scoring.pair_distances`` for 1 million pairs at 128, 512,
4,096 and 16,384 dimensions (dlib / FaceNet / a wide ONNX model / LBPH widths).

    python benchmarks/memory_pairs.py                 # every width, euclidean and chi2, new code
    python benchmarks/memory_pairs.py --legacy        # also the pre-issue-13 code where it fits

Each case runs in a fresh subprocess (so one case's peak does not hide another's) on a seeded
float32 matrix of ``--images`` rows (2,000: 131 MB at 16,384-d) and 1,000,000 seeded random pairs,
and prints the process's peak resident memory (``ru_maxrss``: the matrix, the pair indices and
the result included) and the wall and CPU time of the call, best of ``--repeat`` runs (CPU time
is the steadier figure on a shared machine). ``--legacy`` runs
the earlier implementation (a float64 copy of the whole matrix, chunks of 65,536 pairs whatever
the width), copied below, only at the widths where its temporaries stay under ``--legacy-max-gb``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

DIMS = (128, 512, 4096, 16384)
N_PAIRS = 1_000_000


def legacy_pair_distances(emb, a, b, distance, chunk=65536):
    """The implementation before issue 13 (commit 9465723), for the comparison only."""
    emb = np.asarray(emb, dtype=np.float64)
    if distance in ("euclidean_l2", "cosine"):
        with np.errstate(invalid="ignore", divide="ignore"):
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        x, y = emb[a[s:s + chunk]], emb[b[s:s + chunk]]
        if distance == "cosine":
            out[s:s + chunk] = 1.0 - np.einsum("ij,ij->i", x, y)
        elif distance == "chi2":
            num, den = (x - y) ** 2, x + y
            with np.errstate(invalid="ignore", divide="ignore"):
                terms = np.where(den != 0, num / np.where(den != 0, den, 1), 0.0)
            terms[np.isnan(den)] = np.nan
            out[s:s + chunk] = terms.sum(axis=1)
        else:
            out[s:s + chunk] = np.linalg.norm(x - y, axis=1)
    return out


def _case(dim: int, distance: str, impl: str, images: int, pairs: int, repeat: int, budget_mb: float) -> dict:
    import resource

    rng = np.random.default_rng(dim)
    # float32 from the start (a float64 draw would put its own temporary into the peak);
    # non-negative: valid chi2 input too
    X = np.abs(rng.standard_normal(size=(images, dim), dtype=np.float32))
    a = rng.integers(0, images, pairs)
    b = rng.integers(0, images, pairs)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if impl == "legacy":
        def fn():
            return legacy_pair_distances(X, a, b, distance)
    else:
        from evalkit.scoring import pair_distances

        def fn():
            return pair_distances(X, a, b, distance, memory_budget_bytes=int(budget_mb * 2 ** 20))
    best = best_cpu = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        d = fn()
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"dim": dim, "distance": distance, "impl": impl, "pairs": pairs, "images": images,
            "seconds": round(best, 3), "cpu_seconds": round(best_cpu, 3), "peak_mb": round(peak / 1024, 1),
            "inputs_mb": round((X.nbytes + a.nbytes + b.nbytes + d.nbytes) / 2 ** 20, 1),
            "rss_before_call_mb": round(base / 1024, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    p.add_argument("--distances", nargs="+", default=["euclidean", "chi2"])
    p.add_argument("--pairs", type=int, default=N_PAIRS)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--budget-mb", type=float, default=256.0, help="pair_distances memory budget (default 256)")
    p.add_argument("--legacy", action="store_true", help="also time the pre-issue-13 implementation")
    p.add_argument("--legacy-max-gb", type=float, default=3.0)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)   # internal: run one case, print JSON
    ns = p.parse_args()
    if ns.one:
        dim, distance, impl = ns.one.split(",")
        print(json.dumps(_case(int(dim), distance, impl, ns.images, ns.pairs, ns.repeat, ns.budget_mb)))
        return
    print(f"pair_distances: {ns.pairs:,} pairs over {ns.images:,} float32 images; peak = ru_maxrss of a fresh "
          f"process (matrix, indices and result included); time = best of {ns.repeat}; budget {ns.budget_mb:g} MiB")
    print(f"{'dim':>6} {'distance':>10} {'impl':>7} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'inputs MB':>9}")
    for dim in ns.dims:
        for distance in ns.distances:
            impls = ["new"]
            legacy_gb = 65536 * dim * 8 * (6 if distance == "chi2" else 3) / 2 ** 30 + ns.images * dim * 8 / 2 ** 30
            if ns.legacy and legacy_gb <= ns.legacy_max_gb:
                impls.append("legacy")
            for impl in impls:
                out = subprocess.run([sys.executable, __file__, "--one", f"{dim},{distance},{impl}",
                                      "--pairs", str(ns.pairs), "--images", str(ns.images), "--repeat", str(ns.repeat),
                                      "--budget-mb", str(ns.budget_mb)], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{r['dim']:>6} {r['distance']:>10} {r['impl']:>7} {r['seconds']:>8.3f} {r['cpu_seconds']:>8.3f} "
                      f"{r['peak_mb']:>8.1f} "
                      f"{r['inputs_mb']:>9.1f}", flush=True)
            if ns.legacy and "legacy" not in impls:
                print(f"{dim:>6} {distance:>10} {'legacy':>7}  skipped: its temporaries alone would be about "
                      f"{legacy_gb:.1f} GB (over --legacy-max-gb {ns.legacy_max_gb:g})", flush=True)


if __name__ == "__main__":
    main()
