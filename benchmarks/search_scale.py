"""One-to-many search at scale on synthetic embeddings: engine and metric step timed separately.

    python benchmarks/search_scale.py
    python benchmarks/search_scale.py --probes 20000 --gallery 20000 --memory-budget-mb 128

Seeded synthetic 128-d embeddings (no dataset needed): a gallery of ``--gallery`` enrolled
subjects with one image each, ``--probes`` probes, half mated (another noisy image of their mate,
noise drawn per probe so ranks vary) and half non-mated (one image of each of as many outside
subjects). Identities are drawn in a 16-d subspace, so some subjects look alike; every image adds
isotropic noise in all dimensions. ``evalkit.metrics.search.search`` scores every
probe against every gallery image (euclidean, float32, candidate lists of ``--candidates``) at a few
nested gallery sizes; ``summarise_search`` then builds the metrics.json rate and ``search`` blocks at the
global FPIR 1e-2 threshold with ``--replicates`` probe-subject cluster-bootstrap replicates and two
synthetic attributes (2 and 4 groups, drawn per subject).

Prints the wall time of each step and two peak-memory figures, which measure different things:

- tracemalloc peak: the largest total of memory allocated through Python/numpy during the step,
  above what was already allocated before it (the inputs); this is what ``memory_budget_mb`` bounds
  (plus the per-probe outputs);
- ru_maxrss: the process's peak resident set size so far (OS figure: interpreter, libraries,
  inputs and every step before included); printed before and after each step.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed; OPENBLAS_NUM_THREADS=" + os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    info = [f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info() if i["user_api"] == "blas"]
    return ", ".join(info) or "no BLAS found"


def make_data(n_probes: int, n_gallery: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    # identities live in a 16-d subspace (so that some subjects look alike, as real faces do);
    # every image adds isotropic noise in all dimensions, probes more of it than gallery images
    basis = np.linalg.qr(rng.normal(size=(dim, min(16, dim))))[0]
    identity = rng.normal(size=(n_gallery + n_probes, basis.shape[1])) / np.sqrt(basis.shape[1]) @ basis.T

    def image(ids, scale):
        return (identity[ids] + rng.normal(size=(len(ids), dim)) * np.reshape(scale, (-1, 1)) / np.sqrt(dim)
                ).astype(np.float32)

    gallery = image(np.arange(n_gallery), 0.3)
    n_mated = n_probes // 2
    mate = rng.integers(0, n_gallery, size=n_mated)
    mated = image(mate, rng.uniform(0.3, 1.0, size=n_mated))
    nonmated = image(n_gallery + np.arange(n_probes - n_mated), rng.uniform(0.3, 1.0, size=n_probes - n_mated))
    probes = np.vstack([mated, nonmated]).astype(np.float32)
    probe_mate = np.r_[mate, np.full(n_probes - n_mated, -1)]
    # subjects: a mated probe shows its mate; every non-mated probe is its own outside subject
    probe_subjects = np.r_[[f"g{c}" for c in mate], [f"o{i}" for i in range(n_probes - n_mated)]]
    col_sex = rng.choice(["female", "male"], size=n_gallery, p=[0.3, 0.7])
    col_race = rng.choice(["a", "b", "c", "d"], size=n_gallery, p=[0.6, 0.2, 0.15, 0.05])
    out_sex = rng.choice(["female", "male"], size=n_probes - n_mated, p=[0.3, 0.7])
    out_race = rng.choice(["a", "b", "c", "d"], size=n_probes - n_mated, p=[0.6, 0.2, 0.15, 0.05])
    probe_groups = {"sex": np.r_[col_sex[mate], out_sex], "race": np.r_[col_race[mate], out_race]}
    column_groups = {"sex": col_sex, "race": col_race}
    return probes, gallery, probe_mate, probe_subjects, probe_groups, column_groups


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probes", type=int, default=10_000)
    p.add_argument("--gallery", type=int, default=10_000, help="enrolled subjects, one image each")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--candidates", type=int, default=50, help="candidate-list length L")
    p.add_argument("--sizes", type=int, nargs="*", default=None,
                   help="nested gallery sizes (default: 10%%, 30%% and all of the gallery)")
    p.add_argument("--memory-budget-mb", type=float, default=256.0)
    p.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates of the metric step")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    from evalkit.metrics.search import search
    from evalkit.metrics.search_summary import summarise_search

    sizes = a.sizes or sorted({max(1, a.gallery // 10), max(1, (3 * a.gallery) // 10), a.gallery})
    print(f"cores: {os.cpu_count()}; BLAS: {blas_threads()}")
    probes, gallery, probe_mate, subjects, pgroups, cgroups = make_data(a.probes, a.gallery, a.dim, a.seed)
    gcol = np.arange(a.gallery)
    print(f"{a.probes:,} probes ({int((probe_mate >= 0).sum()):,} mated) x {a.gallery:,} gallery subjects, "
          f"{a.dim}-d float32, sizes {sizes}, L={a.candidates}, euclidean, memory budget {a.memory_budget_mb:g} MB")
    print(f"inputs: {(probes.nbytes + gallery.nbytes) / 2**20:.1f} MB; ru_maxrss before search: {rss_mb():,.0f} MB")

    def run_search():
        return search(probes, gallery, gcol, probe_mate, sizes=sizes, candidates=a.candidates, distance="euclidean",
                      memory_budget_mb=a.memory_budget_mb, dtype=np.float32)

    # timed without tracemalloc (it slows allocation down), then again under tracemalloc for its peak
    t = time.perf_counter()
    res = run_search()
    t_search = time.perf_counter() - t
    rss_search = rss_mb()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    res2 = run_search()
    peak_search = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    tracemalloc.stop()
    assert np.array_equal(res.rank, res2.rank)
    del res2

    t = time.perf_counter()
    metrics = summarise_search(
        res, probe_subjects=subjects, probe_groups=pgroups, column_groups=cgroups, threshold_policy="global_fpir",
        target_fpir=1e-2, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
        image_failures=[None] * (a.probes + a.gallery),
        image_groups={k: np.r_[cgroups[k], pgroups[k]] for k in cgroups}, header={},
        bootstrap={"replicates": a.replicates, "seed": a.seed} if a.replicates else None)
    t_metrics = time.perf_counter() - t
    rss_metrics = rss_mb()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    summarise_search(
        res, probe_subjects=subjects, probe_groups=pgroups, column_groups=cgroups, threshold_policy="global_fpir",
        target_fpir=1e-2, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
        image_failures=[None] * (a.probes + a.gallery),
        image_groups={k: np.r_[cgroups[k], pgroups[k]] for k in cgroups}, header={},
        bootstrap={"replicates": a.replicates, "seed": a.seed} if a.replicates else None)
    peak_metrics = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    tracemalloc.stop()

    comparisons = a.probes * a.gallery
    s = metrics["search"]
    print()
    print("| step | wall s | tracemalloc peak MB (numpy/Python allocations in the step) | ru_maxrss after MB (process peak) |")
    print("|---|---|---|---|")
    print(f"| search (engine, block_rows={res.block_rows}) | {t_search:.2f} | {peak_search:,.0f} | {rss_search:,.0f} |")
    print(f"| summarise_search ({a.replicates} bootstrap replicates, 2 attributes) | {t_metrics:.2f} | "
          f"{peak_metrics:,.0f} | {rss_metrics:,.0f} |")
    print()
    print(f"search: {comparisons / t_search / 1e6:,.0f} M comparisons/s ({comparisons / 1e6:,.0f} M comparisons)")
    thr = metrics["threshold"]
    o = metrics["overall"]
    print(f"threshold (global FPIR 1e-2): {thr['value']:.4f}, achieved FPIR {thr['achieved']:.4f}; "
          f"FNIR {o['fnir']['rate']:.4f}, FNIR rank 1 {o['fnir_rank1']['rate']:.4f}, "
          f"CMC(1) {s['cmc']['overall']['rate'][0]:.4f}, CMC({a.candidates}) {s['cmc']['overall']['rate'][-1]:.4f}")
    for size, e in zip(s["by_gallery_size"]["sizes"], s["by_gallery_size"]["overall"]["fpir"]):
        print(f"  gallery {size:>6,}: FPIR {e['rate']:.4f} [{e['ci_boot'][0] if e['ci_boot'] else float('nan'):.4f}, "
              f"{e['ci_boot'][1] if e['ci_boot'] else float('nan'):.4f}]")


if __name__ == "__main__":
    main(sys.argv[1:])
