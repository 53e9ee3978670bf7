"""Seeded simulation study: coverage of every 95% interval and size of every 5% test evalkit prints.

    nice python benchmarks/coverage_study.py                 # the README table (500 datasets per setting)
    python benchmarks/coverage_study.py --datasets 100       # quicker, noisier
    python benchmarks/coverage_study.py --parts score_shifts --subjects 10   # score shifts only, 10 subjects per group

Each dataset is a 1:1 comparison table with per-subject correlated scores (a subject random
effect on every genuine distance, one on each side of every impostor distance: "goats", "wolves"
and "lambs"), several groups of subjects, a fixed threshold, and rates whose true values are
known in closed form:

    genuine distance  = mu_gen_g + u_s + e,      u_s ~ N(0, su^2),  e ~ N(0, se^2)
    impostor distance = mu_imp_g - v_a - v_b + e, v ~ N(0, sv^2)     (both subjects in group g)
    FNMR_g = 1 - Phi((t - mu_gen_g) / sqrt(su^2 + se^2)),  FMR_g = Phi((t - mu_imp_g) / sqrt(2 sv^2 + se^2))

Every subject has ``images`` images (all their genuine pairs) and impostor comparisons with
``partners`` random subjects of its own group plus ``cross`` of other groups (mixed pairs, which
enter no group's rate). Everything goes through evalkit's own functions: ``errors_from_decision``,
``cluster_bootstrap`` (subjects resampled), ``BootstrapResult.group_intervals``,
``disparity_summaries_with_ci`` (the one interval rule) and ``pairwise_rate_tests`` (the subject
permutation test), and ``stats.score_shifts`` (ISO/IEC 19795-10-style comparison-score shifts: each
group's mean mated and non-mated score minus the overall mean, raw and standardised, with their
cluster-robust intervals). A summary's true value is the same summary of the true group rates; a
score shift's true value is the same shift of the true means given the design (every group's mated
distances have mean ``mu_gen_g``, its impostor distances ``mu_imp_g``, cross-group impostors a
common mean; the standardised shift divides by the true sd of the mixture, sqrt(1 + the weighted
variance of the means), every distance having variance 1 around its group mean). No test of a score
shift exists in evalkit, so none has a size to report.

Output: per setting and per summary, the share of datasets where the interval is estimable and,
among those, the share that covers the truth; for the tests (equal settings), the share of
datasets rejecting at 5%. The "old rule" row is the percentile interval of the max/min of the
resampled rates (what evalkit printed before issue 12), for contrast.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.metrics import bootstrap as bs  # noqa: E402
from evalkit.metrics import disparity as disp  # noqa: E402
from evalkit.metrics import stats as st  # noqa: E402


@dataclass(frozen=True)
class Setting:
    name: str
    fnmr: tuple          # true FNMR per group
    fmr: tuple           # true FMR per group
    subjects: int = 50   # per group
    images: int = 4
    partners: int = 12
    cross: int = 3
    su: float = 0.8      # subject effect, genuine (relative to unit total sd)
    sv: float = 0.45     # subject effect, impostor (each side)
    threshold: float = 0.0

    @property
    def groups(self) -> tuple:
        return tuple(f"g{i}" for i in range(len(self.fnmr)))

    @property
    def equal(self) -> bool:
        return len(set(self.fnmr)) == 1 and len(set(self.fmr)) == 1


SETTINGS = (
    Setting("2 groups, equal", (0.10, 0.10), (0.05, 0.05)),
    Setting("2 groups, unequal", (0.06, 0.14), (0.03, 0.07)),
    Setting("4 groups, equal", (0.10,) * 4, (0.05,) * 4),
    Setting("4 groups, unequal", (0.05, 0.08, 0.11, 0.15), (0.03, 0.04, 0.055, 0.07)),
)

INTERVALS = ("fnmr (per group)", "fmr (per group)", "fnmr_max_min_ratio", "fmr_max_min_ratio",
             "fnmr_ratio_to_reference", "fmr_ratio_to_reference", "fdr", "ir", "garbe", "ser",
             "accuracy_std", "old rule: fnmr max/min of resampled rates")
SHIFTS = ("score shift: mean, mated", "score shift: mean, non-mated", "score shift: standardised, mated",
          "score shift: standardised, non-mated", "normal quantile instead of t: mean, mated",
          "normal quantile instead of t: mean, non-mated")
TESTS = ("fnmr permutation test", "fmr permutation test")


def simulate(setting: Setting, rng: np.random.Generator) -> dict:
    """One dataset: arrays (errors, mated, subject_a, subject_b, group) and the true group rates."""
    sd_e_gen = math.sqrt(1.0 - setting.su ** 2)
    sd_e_imp = math.sqrt(1.0 - 2 * setting.sv ** 2)
    t = setting.threshold
    k, n = len(setting.groups), setting.subjects
    # genuine: distance ~ N(mu, 1) marginally, error when > t: FNMR = 1 - Phi(t - mu)
    mu_gen = [t - stats.norm.ppf(1 - f) for f in setting.fnmr]
    mu_imp = [t - stats.norm.ppf(f) for f in setting.fmr]       # impostor error when <= t
    subj = np.arange(k * n)
    grp = np.repeat(np.arange(k), n)
    u = rng.normal(0, setting.su, subj.size)
    v = rng.normal(0, setting.sv, subj.size)
    ia, ib = np.triu_indices(setting.images, 1)
    per = ia.size
    gs = np.repeat(subj, per)
    gen_d = np.asarray(mu_gen)[grp[gs]] + u[gs] + rng.normal(0, sd_e_gen, gs.size)
    # impostors: partners inside the group (a random offset, no self pair) and a few across groups
    a_in = np.repeat(subj, setting.partners)
    off = rng.integers(1, n, a_in.size)
    b_in = grp[a_in] * n + (a_in % n + off) % n
    a_x = np.repeat(subj, setting.cross)
    b_x = (a_x + n * rng.integers(1, k, a_x.size) + rng.integers(0, n, a_x.size)) % (k * n) if k > 1 else a_x
    a_x, b_x = a_x[grp[a_x] != grp[b_x]], b_x[grp[a_x] != grp[b_x]]
    ia_, ib_ = np.concatenate([a_in, a_x]), np.concatenate([b_in, b_x])
    same = grp[ia_] == grp[ib_]
    mu_i = np.where(same, np.asarray(mu_imp)[grp[ia_]], np.max(mu_imp) + 0.5)   # cross pairs: fewer false matches
    imp_d = mu_i - v[ia_] - v[ib_] + rng.normal(0, sd_e_imp, ia_.size)
    dist = np.concatenate([gen_d, imp_d])
    mated = np.concatenate([np.ones(gs.size, bool), np.zeros(ia_.size, bool)])
    sa = np.concatenate([gs, ia_])
    sb = np.concatenate([gs, ib_])
    names = np.array(setting.groups)
    errors = bs.errors_from_decision(dist - t, mated)
    n_gen = np.bincount(grp[gs], minlength=k)
    n_imp = np.bincount(grp[ia_[same]], minlength=k)
    true_err = (n_gen * np.array(setting.fnmr) + n_imp * np.array(setting.fmr)) / (n_gen + n_imp)
    return {"errors": errors, "decision": dist - t, "mated": mated, "sa": sa, "sb": sb,
            "ga": names[grp[sa]], "gb": names[grp[sb]],
            "truth": {"fnmr": dict(zip(setting.groups, setting.fnmr)), "fmr": dict(zip(setting.groups, setting.fmr)),
                      "accuracy": dict(zip(setting.groups, 1 - true_err)),
                      "shifts": true_shifts(setting.groups, np.asarray(mu_gen) - t, n_gen,
                                            np.asarray(mu_imp) - t, n_imp, np.max(mu_imp) + 0.5 - t,
                                            int((~same).sum()))}}


def true_shifts(groups, mu_gen, n_gen, mu_imp, n_imp, mu_cross, n_cross) -> dict:
    """group -> {"mated"|"non_mated": (mean shift, standardised shift)}: the score shifts of the
    true means given the design's counts (every score has variance 1 around its mean)."""
    out = {g: {} for g in groups}
    for kind, means, counts in (("mated", np.asarray(mu_gen), np.asarray(n_gen)),
                                ("non_mated", np.append(mu_imp, mu_cross), np.append(n_imp, n_cross))):
        w = counts / counts.sum()
        m_all = float((w * means).sum())
        sd_all = math.sqrt(1.0 + float((w * (means - m_all) ** 2).sum()))
        for i, g in enumerate(groups):
            out[g][kind] = (float(means[i]) - m_all, (float(means[i]) - m_all) / sd_all)
    return out


def true_block(truth: dict, reference: str, alpha: float = 0.5) -> dict:
    per = {g: {"fmr": truth["fmr"][g], "fnmr": truth["fnmr"][g], "accuracy": truth["accuracy"][g]}
           for g in truth["fnmr"]}
    return disp.disparity_summaries(per, reference, alpha)


def _covers(ci, value) -> bool:
    return ci[0] - 1e-12 <= value <= ci[1] + 1e-12


@dataclass
class Tally:
    shown: dict = field(default_factory=dict)
    covered: dict = field(default_factory=dict)
    total: dict = field(default_factory=dict)
    rejected: dict = field(default_factory=dict)
    tested: dict = field(default_factory=dict)

    def add(self, key, ci, value):
        self.total[key] = self.total.get(key, 0) + 1
        if ci is not None:
            self.shown[key] = self.shown.get(key, 0) + 1
            self.covered[key] = self.covered.get(key, 0) + bool(_covers(ci, value))

    def test(self, key, p):
        if p is not None and math.isfinite(p):
            self.tested[key] = self.tested.get(key, 0) + 1
            self.rejected[key] = self.rejected.get(key, 0) + bool(p < 0.05)

    def row(self, key) -> tuple:
        n, s = self.total.get(key, 0), self.shown.get(key, 0)
        return (s / n if n else math.nan, self.covered.get(key, 0) / s if s else math.nan, n)


def add_score_shifts(tally: Tally, d: dict, groups) -> None:
    """Tally the coverage of evalkit's score-shift intervals (``stats.score_shifts``) on one dataset."""
    entries = {g: {"small_fnmr": False, "small_fmr": False} for g in groups}
    block = st.score_shifts(d["decision"], d["mated"], d["sa"], d["sb"], d["ga"], d["gb"], entries, 0.95)
    for g, row in block["by_group"].items():
        for kind, label in (("mated", "mated"), ("non_mated", "non-mated")):
            e, (mean_true, std_true) = row[kind], d["truth"]["shifts"][g][kind]
            tally.add(f"score shift: mean, {label}", e.get("ci"), mean_true)
            tally.add(f"score shift: standardised, {label}", e.get("standardised_ci"), std_true)
            z = None
            if e.get("ci"):   # for contrast: the same interval with the normal quantile (before the t correction)
                lo, hi = e["ci"]
                k = stats.norm.ppf(0.975) / stats.t.ppf(0.975, e["subjects"] - 1)
                z = [e["mean_shift"] - k * (hi - lo) / 2, e["mean_shift"] + k * (hi - lo) / 2]
            tally.add(f"normal quantile instead of t: mean, {label}", z, mean_true)


def run_setting(setting: Setting, datasets: int = 500, replicates: int = 400, permutations: int = 500,
                seed: int = 0, parts=("rates", "score_shifts")) -> Tally:
    tally = Tally()
    ref = setting.groups[0]
    for i in range(datasets):
        rng = np.random.default_rng([seed, i, len(setting.groups), int(setting.equal)])
        d = simulate(setting, rng)
        if "score_shifts" in parts:
            add_score_shifts(tally, d, setting.groups)
        if "rates" not in parts:
            continue
        boot = bs.cluster_bootstrap(d["errors"], d["mated"], d["sa"], d["sb"], d["ga"], d["gb"],
                                    replicates=replicates, seed=i)
        per = {g: {**boot.estimate[g], "n_subjects": boot.counts[g]["n_subjects"]} for g in setting.groups}
        block = bs.disparity_summaries_with_ci(per, boot, reference=ref)
        truth = true_block(d["truth"], ref)
        for g, ivs in boot.group_intervals().items():
            tally.add("fnmr (per group)", ivs["fnmr_ci_boot"], d["truth"]["fnmr"][g])
            tally.add("fmr (per group)", ivs["fmr_ci_boot"], d["truth"]["fmr"][g])
        for name in disp.SUMMARY_NAMES:
            tally.add(name, block[name]["ci"], truth[name]["value"])
        for key in ("fnmr_ratio_to_reference", "fmr_ratio_to_reference"):
            for g, e in block[key]["by_group"].items():
                if g != ref:
                    tally.add(key, e.get("ci"), truth[key]["by_group"][g]["value"])
        old = bs.percentile_interval(disp.max_min_ratio_values(boot.matrix("fnmr", list(setting.groups))))
        tally.add("old rule: fnmr max/min of resampled rates", old.as_list(), truth["fnmr_max_min_ratio"]["value"])
        if setting.equal:
            for kind in ("fnmr", "fmr"):
                for t in bs.pairwise_rate_tests(d["errors"], d["mated"], d["sa"], d["sb"], d["ga"], d["gb"],
                                                kind=kind, permutations=permutations, seed=i):
                    tally.test(f"{kind} permutation test", t["p_value"])
    return tally


def table(results: dict) -> str:
    names = list(results)
    head = "| interval (95%) | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for key in INTERVALS + SHIFTS:
        if not any(results[s].total.get(key) for s in names):
            continue
        cells = []
        for s in names:
            shown, cov, n = results[s].row(key)
            cells.append("-" if not n else (f"{100 * cov:.1f}%" if shown == shown and shown > 0 else "n/e")
                         + (f" ({100 * (1 - shown):.0f}% n/e)" if n and shown < 1 else ""))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if not any(results[s].tested for s in names):
        return "\n".join(lines)
    lines.append("| **test, rejection rate at 5% under equality** | " + " | ".join("" for _ in names) + " |")
    for key in TESTS:
        cells = []
        for s in names:
            n = results[s].tested.get(key, 0)
            cells.append(f"{100 * results[s].rejected.get(key, 0) / n:.1f}% of {n}" if n else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=500)
    ap.add_argument("--replicates", type=int, default=400)
    ap.add_argument("--permutations", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subjects", type=int, default=None, help="subjects per group (default: each setting's, 50)")
    ap.add_argument("--parts", default="rates,score_shifts",
                    help="comma-separated: rates (rates, disparity summaries, tests), score_shifts")
    args = ap.parse_args(argv)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    if not parts or set(parts) - {"rates", "score_shifts"}:
        ap.error(f"--parts takes rates and/or score_shifts, got {args.parts!r}")
    results = {}
    settings = SETTINGS if args.subjects is None else tuple(
        replace(s, subjects=args.subjects, partners=min(s.partners, 3 * args.subjects)) for s in SETTINGS)
    for s in settings:
        t0 = time.perf_counter()
        results[s.name] = run_setting(s, args.datasets, args.replicates, args.permutations, args.seed, parts)
        print(f"# {s.name}: {args.datasets} datasets in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"{args.datasets} datasets per setting, {settings[0].subjects} subjects per group, "
          f"{args.replicates} subject-bootstrap replicates, "
          f"{args.permutations} permutations, seed {args.seed}; coverage among the datasets where the "
          "interval is estimable (n/e: share not estimable, reported with its reason instead)\n")
    print(table(results))


if __name__ == "__main__":
    main()
