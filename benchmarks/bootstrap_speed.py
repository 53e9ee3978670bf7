"""Wall time of 1,000 subject-clustered bootstrap replicates over LFW View 2 (6,000 comparisons).

    python benchmarks/bootstrap_speed.py                 # 1,000 replicates, seed 0
    python benchmarks/bootstrap_speed.py 5000            # any number of replicates

The pair structure (subjects and their sex/race labels) is the real LFW View 2 protocol, loaded with
evalkit.data.lfw from $EVALKIT_DATA_DIR/lfw (default /work/shared/datasets/lfw). The error flags
are REAL when a previous `evalkit run` of dlib on LFW View 2 left a scores.csv under results/ whose
pairs match the protocol (errors at the threshold giving FMR 1e-2 on all impostors, so that false
matches exist); otherwise they are SYNTHETIC (a per-subject random effect on the error
probability). The script says which. Target: under 10 s for 1,000 replicates per attribute.

It also prints, per group, the FMR standard error three ways: the vertex (product-weight) bootstrap,
the dyadic cluster-robust sandwich (bootstrap.robust_rate_se) and the row bootstrap. On LFW's sparse
impostor pairs (most subjects in one or two impostor comparisons) the vertex bootstrap is about
sqrt(3) times the sandwich: its weight c_a * c_b has variance 3 where a comparison's own variance
counts once (conservative; McCullagh 2000, Owen 2007).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

from evalkit.data.lfw import lfw_protocol, load_lfw
from evalkit.metrics import bootstrap as bs
from evalkit.metrics import rates

TARGET_FMR = 1e-2


def real_errors(samples, pairs) -> tuple[np.ndarray, str] | None:
    """Error flags from the newest dlib LFW View 2 scores.csv under results/, if its pairs match."""
    found = sorted(Path("results").glob("**/lfw-lfw_view2-dlib/*/scores.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    path = found[-1]
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    ids_a, ids_b = samples.ids[pairs.a], samples.ids[pairs.b]
    if len(rows) != len(ids_a) or any(r["sample_a"] != a or r["sample_b"] != b
                                      for r, a, b in zip(rows, ids_a, ids_b)):
        return None
    score = np.array([np.inf if r["failed"] == "1" else float(r["score"]) for r in rows])   # a failure: empty score
    mated = pairs.mated
    t = rates.threshold_at_fmr(score[~mated], TARGET_FMR).threshold
    return bs.errors_from_decision(score - t, mated), f"REAL dlib distances from {path}, threshold at FMR {TARGET_FMR:g}"


def synthetic_errors(subjects: np.ndarray, mated: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-subject random effect u_s ~ N(0, 1): FNM probability expit(-3 + u_s) for genuine pairs,
    FM probability expit(-5 + u_a + u_b) for impostor pairs."""
    _, code = np.unique(subjects, return_inverse=True)
    u = rng.normal(0.0, 1.0, code.max() + 1)
    n = mated.size
    ca, cb = code[:n], code[n:]
    p = np.where(mated, expit(-3.0 + u[ca]), expit(-5.0 + u[ca] + u[cb]))
    return rng.random(n) < p


def sd(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(v.std()) if v.size > 1 else float("nan")


def main(argv: list[str]) -> None:
    replicates = int(argv[0]) if argv else 1000
    root = Path(os.environ.get("EVALKIT_DATA_DIR", "/work/shared/datasets")) / "lfw"
    samples = load_lfw(root)
    pairs = lfw_protocol(samples, root, "view2")
    sa, sb = samples.subjects[pairs.a], samples.subjects[pairs.b]
    mated = pairs.mated
    got = real_errors(samples, pairs)
    if got is None:
        errors = synthetic_errors(np.concatenate([sa, sb]), mated, np.random.default_rng(0))
        source = "SYNTHETIC error flags (per-subject random effect) on the real LFW View 2 pair structure"
    else:
        errors, source = got
    n_subj = np.unique(np.concatenate([sa, sb])).size
    print(f"LFW View 2: {mated.size} comparisons ({mated.sum()} genuine), {n_subj} subjects; "
          f"errors: {source}; {int(errors[mated].sum())} false non-matches, "
          f"{int(errors[~mated].sum())} false matches")
    for attr in ("sex", "race"):
        labels = samples.attributes[attr]
        ga, gb = labels[pairs.a], labels[pairs.b]
        t0 = time.perf_counter()
        boot = bs.cluster_bootstrap(errors, mated, sa, sb, ga, gb, replicates=replicates, seed=0)
        seconds = time.perf_counter() - t0
        print(f"\n{attr}: {replicates} subject-clustered replicates in {seconds:.2f} s "
              f"({'under' if seconds < 10 else 'OVER'} the 10 s target)")
        print("| group | subjects | FNMR | clustered 95% | row 95% | FMR | clustered 95% | row 95% | "
              "FMR SE: vertex bootstrap / dyadic sandwich / row |")
        print("|---|---|---|---|---|---|---|---|---|")
        row = bs.row_bootstrap(errors, mated, sa, sb, ga, gb, replicates=replicates, seed=0)

        def fmt(iv):
            return f"[{iv.lo:.4f}, {iv.hi:.4f}]" if iv.defined else f"- ({iv.reason.split(':')[0]})"

        for g in boot.groups:
            c, est = boot.counts[g], boot.estimate[g]
            if c["n_genuine"] + c["n_impostor"] < 30:
                continue
            print(f"| {g} | {c['n_subjects']} | {est['fnmr']:.4f} | {fmt(boot.interval('fnmr', g))} | "
                  f"{fmt(row.interval('fnmr', g))} | {est['fmr']:.4f} | {fmt(boot.interval('fmr', g))} | "
                  f"{fmt(row.interval('fmr', g))} | {sd(boot.fmr[g]):.4f} / "
                  f"{bs.robust_rate_se(errors, mated, sa, sb, ga, gb, group=g, kind='fmr')['se']:.4f} / "
                  f"{sd(row.fmr[g]):.4f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
