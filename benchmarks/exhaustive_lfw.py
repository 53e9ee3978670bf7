"""Every LFW image against every other: the exhaustive protocol at scale, timed.

    EVALKIT_DATA_DIR=../shared/datasets python benchmarks/exhaustive_lfw.py
    python benchmarks/exhaustive_lfw.py --cap 10 --memory-budget 512 --thresholds 0.6

Loads the Dlib embeddings (``backend=dlib`` with its default options) of all 13,233 LFW images
from the evalkit embedding cache (it embeds whatever is missing, so fill the cache first: a full
extraction takes about 10 minutes on 2 cores), compares all 87.5 million pairs with
``evalkit.metrics.exhaustive.exhaustive_counts`` (failed images count as non-matches), and prints
the wall time, comparisons per second, peak memory, and per-group (sex, race) counts at dlib's
0.6 and at the thresholds for FMR 1e-3, 1e-4 and 1e-5 set on all impostor comparisons (read from
the kept top-k smallest impostor scores, exact; per-group counts there come from ``counts_at``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf


def main(argv: list[str]) -> None:
    from evalkit import config as cfg_mod
    from evalkit.config import DlibBackendConfig
    from evalkit.data.lfw import load_lfw
    from evalkit.embeddings import extract
    from evalkit.metrics.exhaustive import exhaustive_protocol

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="LFW root (default $EVALKIT_DATA_DIR/lfw)")
    p.add_argument("--cache", default=None, help="embedding cache (default $EVALKIT_HOME/embeddings)")
    p.add_argument("--cap", type=int, default=None, help="max images per subject (seeded); default: none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--thresholds", type=float, nargs="*", default=[0.6], help="fixed thresholds (dlib: 0.6)")
    p.add_argument("--fmr", type=float, nargs="*", default=[1e-3, 1e-4, 1e-5], help="target FMRs")
    p.add_argument("--memory-budget", type=float, default=1024.0, help="MB (blocks get a quarter)")
    p.add_argument("--topk", type=int, default=1_000_000)
    p.add_argument("--failure-policy", default="nonmatch", choices=["nonmatch", "exclude"])
    args = p.parse_args(argv)

    data = args.data or os.path.join(cfg_mod.default_data_dir(), "lfw")
    cache = args.cache or cfg_mod.default_cache_dir()
    t0 = time.perf_counter()
    samples = load_lfw(data)
    options = cfg_mod.backend_options(OmegaConf.structured(DlibBackendConfig))
    emb, stats, _ = extract(list(samples.paths), "dlib", options, cache, workers=2, progress=False)
    t_load = time.perf_counter() - t0
    print(f"LFW: {len(samples):,} images, {len(np.unique(samples.subjects)):,} subjects; embeddings "
          f"{stats.from_cache:,} from cache, {stats.computed:,} computed, failures {stats.failures} "
          f"({t_load:.1f} s, cache {cache})")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    kept, res = exhaustive_protocol(
        samples, emb.vectors, emb.ok, max_images_per_subject=args.cap, seed=args.seed,
        thresholds=args.thresholds, distance="euclidean", failure_policy=args.failure_policy,
        memory_budget_mb=args.memory_budget, keep_scores="auto", topk=args.topk)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    o = res.overall
    print(f"\nexhaustive: {len(kept):,} images (cap {args.cap}), {res.n_comparisons:,} comparisons "
          f"({o.n_genuine + (0 if args.failure_policy == 'nonmatch' else o.failed_genuine):,} genuine, "
          f"{res.n_comparisons - len(res.genuine_a):,} impostor; {o.failed_genuine + o.failed_impostor:,} "
          f"touch one of {res.n_failed_images} failed images)")
    print(f"wall time {wall:.1f} s, {res.n_comparisons / wall / 1e6:.1f} million comparisons/s, "
          f"{res.n_blocks} blocks of up to {res.block_rows} rows, {os.cpu_count()} cores")
    print(f"peak memory (ru_maxrss) {peak:,.0f} MB (before the exhaustive step: {rss_before:,.0f} MB)")
    print(f"impostor scores kept: {len(res.impostor_scores):,} "
          f"({'all' if res.impostor_complete else f'smallest; cut-off {res.impostor_cutoff:.4f}'})")

    thresholds = list(args.thresholds)
    labels = [f"fixed {t:g}" for t in thresholds]
    for target in args.fmr:
        ch = res.threshold_at_fmr(target)
        thresholds.append(ch.threshold)
        labels.append(f"FMR {target:g}")
        print(f"threshold at FMR {target:g}: {ch.threshold:.4f} (achieved {ch.achieved_fmr:.2e} over "
              f"{ch.n_impostor:,} impostors{'' if ch.resolvable else ', NOT resolvable'})")
    fmr_t = thresholds[len(args.thresholds):]
    over_f, groups_f = res.counts_at(fmr_t) if fmr_t else (None, {})

    def row(name, c_fixed, c_fmr):
        cells = [f"{name:<24}", f"{c_fixed.n_genuine:>9,}", f"{c_fixed.n_impostor:>12,}"]
        for k in range(len(args.thresholds)):
            cells.append(f"{_pct(c_fixed.false_nonmatches[k], c_fixed.n_genuine):>8} "
                         f"{_pct(c_fixed.false_matches[k], c_fixed.n_impostor):>9}")
        for k in range(len(fmr_t)):
            cells.append(f"{_pct(c_fmr.false_nonmatches[k], c_fmr.n_genuine):>8} "
                         f"{_pct(c_fmr.false_matches[k], c_fmr.n_impostor):>9}")
        print(" ".join(cells))

    print("\nFNMR and FMR per group (group = both images labelled so; 'mixed' = the two sides differ)")
    head = [f"{'group':<24}", f"{'genuine':>9}", f"{'impostor':>12}"] + [f"{lab:>18}" for lab in labels]
    print(" ".join(head))
    print(" ".join([" " * 24, " " * 9, " " * 12] + [f"{'FNMR':>8} {'FMR':>9}" for _ in labels]))
    row("all", res.overall, over_f)
    for attr, cc in res.groups.items():
        ccf = groups_f.get(attr)
        for lab in cc.labels:
            row(f"{attr}={lab}", cc.group(lab), ccf.group(lab) if ccf else None)
        row(f"{attr} mixed", cc.mixed(), ccf.mixed() if ccf else None)
    print(f"\n(scores: dlib euclidean, float32; failed images count as "
          f"{'non-matches' if args.failure_policy == 'nonmatch' else 'excluded'})")


def _pct(k, n) -> str:
    if not n:
        return "-"
    r = k / n
    return f"{100 * r:.3g}%" if r >= 1e-4 or r == 0 else f"{r:.1e}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main(sys.argv[1:])
