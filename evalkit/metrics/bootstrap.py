"""Uncertainty that respects identity: the subject-clustered bootstrap and a clustered two-group test.

Comparisons share subjects: every genuine comparison of one person depends on how hard that
person is to recognise, and every impostor comparison involving a "wolf" or a "lamb" depends on
that subject. Treating comparisons as independent (binomial / Clopper-Pearson intervals, a
row bootstrap, a two-proportion z-test) understates the uncertainty of a group's FMR and FNMR.
Here the resampling and the variance are at the level of the SUBJECT.

Inputs (one entry per comparison, at one operating threshold):

- ``errors``: bool, True when the comparison is an error at the threshold: a false match for an
  impostor comparison, a false non-match for a genuine one (see :func:`errors_from_decision`).
- ``mated``: bool, True for genuine comparisons (``subject_a == subject_b`` required), False for
  impostor ones (``subject_a != subject_b`` required).
- ``subject_a``, ``subject_b``: subject ids of the two sides.
- ``group_a`` and optionally ``group_b``: the group label of each side (as in
  ``evalkit.metrics.groups``: a comparison belongs to group g when both sides are labelled g; else
  it is "mixed" and enters no group's rate). With ``group_b=None`` ``group_a`` is the comparison's
  own label, used for both sides.

Subject-clustered bootstrap (:func:`cluster_bootstrap`), the "vertex bootstrap" of dyadic data
(Snijders & Borgatti 1999) in the weighted form of Field & Welsh (2007): each replicate draws, for
every stratum of subjects (the subjects sharing the same group label(s); so each group keeps its
number of subjects), as many subjects as the stratum has, with replacement. A subject drawn ``c``
times contributes with multiplicity ``c``; an impostor comparison between subjects ``a`` and ``b``
gets weight ``c_a * c_b`` (every copy of a against every copy of b), a genuine comparison of
subject ``s`` gets weight ``c_s``. A group's replicate rate is (weighted errors) / (weighted
comparisons). All replicates are computed with matrix products (multiplicities ``R x n_subjects``
times per-subject error sums for genuine comparisons; ``c^T E c`` with sparse subject-by-subject
error and count matrices for impostor ones). Percentile intervals (Efron & Tibshirani 1993, ch. 13).

Clustered test (:func:`rate_difference_test`): a z-test of "group A's rate equals group B's" whose
variance is the cluster-robust (sandwich) variance of the difference of two ratio estimators,
clustered by subject. For FNMR (a genuine comparison involves one subject) this is the usual
one-way cluster-robust variance of a ratio estimator (Cochran 1977, Sampling Techniques, sec. 6.4;
the variance behind the Rao & Scott 1992 adjusted chi-square and Donner & Klar 2000's adjusted
tests for clustered binary data). For FMR (an impostor comparison involves two subjects) it is the
dyadic-robust variance of Fafchamps & Gubert (2007) and Aronow, Samii & Assenova (2015): every
pair of comparisons sharing at least one subject contributes its residual cross-product.

Sources:

- Efron, B. & Tibshirani, R. (1993). An Introduction to the Bootstrap. Chapman & Hall.
- Davison, A. C. & Hinkley, D. V. (1997). Bootstrap Methods and their Application, sec. 3.8
  (resampling clusters).
- Field, C. A. & Welsh, A. H. (2007). Bootstrapping clustered data. JRSS B 69(3), 369-390.
- Snijders, T. A. B. & Borgatti, S. P. (1999). Non-parametric standard errors and tests for network
  statistics. Connections 22(2), 161-170 (vertex bootstrap).
- Rao, J. N. K. & Scott, A. J. (1992). A simple method for the analysis of clustered binary data.
  Biometrics 48(2), 577-585.
- Donner, A. & Klar, N. (2000). Design and Analysis of Cluster Randomization Trials in Health
  Research. Arnold.
- Fafchamps, M. & Gubert, F. (2007). The formation of risk sharing networks. J. Development
  Economics 83(2), 326-350.
- Aronow, P. M., Samii, C. & Assenova, V. A. (2015). Cluster-robust variance estimation for dyadic
  data. Political Analysis 23(4), 564-577.
- Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Statistics
  6(2), 65-70.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse, special

from . import disparity as disp
from .rates import check_labels as _labels
from .rates import check_mated
from .uncertainty import _check_confidence

__all__ = [
    "Interval",
    "BootstrapResult",
    "errors_from_decision",
    "cluster_bootstrap",
    "row_bootstrap",
    "percentile_interval",
    "ratio_interval",
    "disparity_intervals",
    "disparity_summaries_with_ci",
    "robust_rate_se",
    "rate_difference_test",
    "pairwise_rate_tests",
]

#: The group name of ``cluster_bootstrap(..., mixed=True)``: comparisons whose sides differ in group.
MIXED_GROUP = "mixed"

#: Fraction of undefined replicates above which an interval is not given (NaN with a reason).
MAX_UNDEFINED = 0.05

#: Upper bound on the entries of one replicates-by-subjects block (memory: 8 bytes each).
_BLOCK_ENTRIES = 2_000_000


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """A percentile interval from bootstrap replicates.

    ``lo``/``hi`` are NaN when no interval is given, and ``reason`` says why. ``n_used`` replicates
    entered the quantiles; ``n_undefined`` were dropped because the statistic was undefined in them
    (e.g. a zero denominator)."""

    lo: float
    hi: float
    confidence: float
    n_used: int
    n_undefined: int
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def as_list(self) -> list | None:
        """``[lo, hi]`` as floats, or None when undefined (the metrics.json form)."""
        return [float(self.lo), float(self.hi)] if self.defined else None

    def to_dict(self) -> dict:
        return {"ci": self.as_list(), "confidence": self.confidence, "n_used": self.n_used,
                "n_undefined": self.n_undefined, "reason": self.reason}


def percentile_interval(values, confidence: float = 0.95, max_undefined: float = MAX_UNDEFINED,
                        what: str = "the statistic") -> Interval:
    """Percentile interval ``[q(a/2), q(1 - a/2)]`` of the finite replicate values, ``a = 1 - confidence``
    (Efron & Tibshirani 1993, ch. 13; numpy's default linear quantile interpolation).

    Replicates where the statistic is undefined (NaN) are dropped and counted. When more than
    ``max_undefined`` of them (a fraction) are undefined the interval is not given: ``lo = hi =
    NaN`` with a reason, because the defined replicates are then a biased subset.
    """
    c = _check_confidence(confidence)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    r = v.size
    ok = np.isfinite(v)
    n_ok = int(ok.sum())
    n_bad = r - n_ok
    if r == 0:
        return Interval(math.nan, math.nan, c, 0, 0, "no bootstrap replicates")
    if n_ok == 0 or n_bad > max_undefined * r:
        return Interval(math.nan, math.nan, c, n_ok, n_bad,
                        f"{what} is undefined in {n_bad} of {r} bootstrap replicates (more than "
                        f"{max_undefined:.0%}), e.g. a zero rate in a denominator")
    a = 1.0 - c
    lo, hi = np.quantile(v[ok], [a / 2.0, 1.0 - a / 2.0])
    if not hi > lo:
        return Interval(math.nan, math.nan, c, n_ok, n_bad,
                        f"the bootstrap replicates of {what} do not vary ({float(lo):.4g} in the central "
                        f"{c:.0%}): a degenerate bootstrap (e.g. one subject, or no errors), not certainty")
    return Interval(float(lo), float(hi), c, n_ok, n_bad, None)


def korn_graubard_interval(k: int, n: int, replicates, confidence: float = 0.95,
                           max_undefined: float = MAX_UNDEFINED, what: str = "the rate") -> Interval:
    """Clopper-Pearson interval at the effective sample size (Korn & Graubard 1998, "Confidence
    intervals for proportions with small expected number of positive counts estimated from survey
    data", Survey Methodology 24(2); Dean & Pagano 2015 compare it with alternatives).

    Definition: ``p = k / n``, ``v`` the variance of the bootstrap replicates (subjects resampled),
    design effect ``deff = max(1, v / (p (1 - p) / n))``, effective size ``n* = n / deff`` and
    effective count ``k* = p n*``; the interval is Clopper-Pearson's for ``k*`` of ``n*`` (the Beta
    quantiles accept non-integer counts). It stays inside [0, 1], is exact when comparisons are
    independent (deff = 1) and widens with clustering; the percentile interval of a clustered
    bootstrap undercovers small rates (92% at a nominal 95% in benchmarks/coverage_study.py).
    Not estimable with fewer than 2 defined replicates, more than ``max_undefined`` undefined
    ones, or ``k`` in (0, n) violated (see :meth:`BootstrapResult.interval`)."""
    c = _check_confidence(confidence)
    v = np.asarray(replicates, dtype=np.float64).reshape(-1)
    ok = np.isfinite(v)
    n_ok, n_bad = int(ok.sum()), int(v.size - ok.sum())
    if n_ok < 2 or n_bad > max_undefined * v.size:
        return Interval(math.nan, math.nan, c, n_ok, n_bad,
                        f"{what} is undefined in {n_bad} of {v.size} bootstrap replicates")
    p = k / n
    var = float(v[ok].var(ddof=1))
    spread = float(v[ok].max() - v[ok].min())
    if not (spread > 1e-9 * max(1.0, float(np.abs(v[ok]).max()))):
        return Interval(math.nan, math.nan, c, n_ok, n_bad,
                        f"the bootstrap replicates of {what} do not vary: a degenerate bootstrap (e.g. one subject)")
    deff = max(1.0, var / (p * (1.0 - p) / n))
    n_eff = n / deff
    k_eff = p * n_eff
    a = 1.0 - c
    lo = float(special.betaincinv(k_eff, n_eff - k_eff + 1, a / 2.0))
    hi = float(special.betaincinv(k_eff + 1, n_eff - k_eff, 1.0 - a / 2.0))
    return Interval(lo, hi, c, n_ok, n_bad, None)


# --------------------------------------------------------------------------- input handling


def errors_from_decision(decision, mated) -> np.ndarray:
    """Error flags at the threshold from ``decision = score - threshold`` (a match when <= 0):
    a false match for an impostor (``decision <= 0``), a false non-match for a genuine comparison
    (``decision > 0``; ``+inf`` failures included). NaN decisions raise."""
    d = np.asarray(decision, dtype=np.float64)
    m = np.asarray(mated, dtype=bool)
    if d.shape != m.shape or d.ndim != 1:
        raise ValueError(f"decision and mated must be 1-D of equal length, got {d.shape} and {m.shape}")
    if np.isnan(d).any():
        raise ValueError("decision contains NaN")
    return np.where(m, d > 0, d <= 0)


@dataclass
class _Data:
    errors: np.ndarray      # bool (n,)
    mated: np.ndarray       # bool (n,)
    sa: np.ndarray          # int subject codes (n,)
    sb: np.ndarray
    n_subjects: int
    comp_group: np.ndarray  # int code per comparison, -1 = mixed
    names: tuple            # group names by code
    strata: np.ndarray      # int stratum per subject code
    n_strata: int


def _prepare(errors, mated, subject_a, subject_b, group_a, group_b) -> _Data:
    e = np.asarray(errors)
    if e.ndim != 1:
        raise ValueError(f"errors must be 1-D, got shape {e.shape}")
    n = e.shape[0]
    e = check_mated(e, n, "errors")   # the same rule as mated: 1-D, length n, booleans or 0/1
    m = check_mated(mated, n, "mated")
    sa, sb = np.asarray(subject_a), np.asarray(subject_b)
    for arr, name in ((sa, "subject_a"), (sb, "subject_b")):
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"{name} must be 1-D of length {n}, got shape {arr.shape}")
    _, inv = np.unique(np.concatenate([sa.astype(str), sb.astype(str)]), return_inverse=True)
    inv = inv.reshape(-1)
    ca, cb = inv[:n], inv[n:]
    n_subj = int(inv.max()) + 1 if n else 0
    bad_gen = m & (ca != cb)
    if bad_gen.any():
        i = int(np.flatnonzero(bad_gen)[0])
        raise ValueError(f"comparison {i} is mated but its subjects differ ({sa[i]!r} vs {sb[i]!r})")
    bad_imp = ~m & (ca == cb)
    if bad_imp.any():
        i = int(np.flatnonzero(bad_imp)[0])
        raise ValueError(f"comparison {i} is non-mated but both sides are subject {sa[i]!r}")
    ga = _labels(group_a, n, "group_a")
    gb = ga if group_b is None else _labels(group_b, n, "group_b")
    same = ga == gb
    names, codes = np.unique(ga[same], return_inverse=True)
    comp_group = np.full(n, -1, dtype=np.int64)
    comp_group[same] = codes.reshape(-1)
    # stratum of a subject: the set of labels its sides carry (one label in the usual case)
    lab_names, lab_codes = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    pairs = np.unique(inv * len(lab_names) + lab_codes.reshape(-1))
    subj_of, lab_of = pairs // len(lab_names), pairs % len(lab_names)
    keys: dict[int, list[int]] = {}
    for s, lab in zip(subj_of.tolist(), lab_of.tolist()):
        keys.setdefault(s, []).append(lab)
    key_codes: dict[tuple, int] = {}
    strata = np.empty(n_subj, dtype=np.int64)
    for s in range(n_subj):
        strata[s] = key_codes.setdefault(tuple(keys[s]), len(key_codes))
    return _Data(e, m, ca, cb, n_subj, comp_group, tuple(str(x) for x in names), strata, len(key_codes))


# --------------------------------------------------------------------------- weighted group rates


@dataclass
class _GroupPlan:
    """Per-group precomputed sums for weighted rates from a multiplicity matrix."""

    gen_subjects: np.ndarray   # subject codes with genuine comparisons in the group
    gen_err: np.ndarray        # false non-matches per such subject
    gen_n: np.ndarray          # genuine comparisons per such subject
    imp_subjects: np.ndarray   # subject codes in the group's impostor comparisons
    imp_err: sparse.csc_matrix  # (k, k) false matches between local subjects
    imp_n: sparse.csc_matrix    # (k, k) impostor comparisons between local subjects
    fm: int
    n_imp: int
    fnm: int
    n_gen: int
    n_subjects: int


def _plans(d: _Data) -> list[_GroupPlan]:
    plans = []
    for g in range(len(d.names)):
        sel = d.comp_group == g
        gen = sel & d.mated
        imp = sel & ~d.mated
        gs, ginv = np.unique(d.sa[gen], return_inverse=True)
        ginv = ginv.reshape(-1)
        g_err = np.bincount(ginv, weights=d.errors[gen].astype(np.float64), minlength=gs.size)
        g_n = np.bincount(ginv, minlength=gs.size).astype(np.float64)
        a, b = d.sa[imp], d.sb[imp]
        isub, iinv = np.unique(np.concatenate([a, b]), return_inverse=True)
        iinv = iinv.reshape(-1)
        la, lb = iinv[: a.size], iinv[a.size:]
        k = isub.size
        err = sparse.coo_matrix((d.errors[imp].astype(np.float64), (la, lb)), shape=(k, k)).tocsc()
        cnt = sparse.coo_matrix((np.ones(a.size), (la, lb)), shape=(k, k)).tocsc()
        plans.append(_GroupPlan(gs, g_err, g_n, isub, err, cnt,
                                int(d.errors[imp].sum()), int(imp.sum()),
                                int(d.errors[gen].sum()), int(gen.sum()),
                                int(np.union1d(np.union1d(gs, isub), d.sa[sel]).size)))
    return plans


def _quad(c: np.ndarray, m: sparse.csc_matrix) -> np.ndarray:
    """Row-wise ``c_r^T M c_r`` for a dense (R, k) ``c`` and sparse (k, k) ``M``."""
    if m.shape[0] == 0:
        return np.zeros(c.shape[0])
    cm = np.asarray((m.T @ c.T).T)          # (R, k): sum_i c_ri M_ij
    return np.einsum("rj,rj->r", cm, c)


def _weighted_sums(counts: np.ndarray, plan: _GroupPlan) -> tuple[np.ndarray, ...]:
    """(weighted false matches, weighted impostors, weighted false non-matches, weighted genuine)
    for every row of the multiplicity matrix ``counts`` (R, n_subjects)."""
    cg = counts[:, plan.gen_subjects]
    fnm = cg @ plan.gen_err
    ngen = cg @ plan.gen_n
    ci = counts[:, plan.imp_subjects]
    fm = _quad(ci, plan.imp_err)
    nimp = _quad(ci, plan.imp_n)
    return fm, nimp, fnm, ngen


def _ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


# --------------------------------------------------------------------------- bootstrap results


@dataclass
class BootstrapResult:
    """Replicate rates per group.

    Attributes:
        groups: group labels (sorted), the keys of the dicts below.
        fmr, fnmr, accuracy: group -> (R,) array of replicate values (NaN where the replicate has
            no comparison of that kind for the group). ``accuracy`` is 1 - (weighted false matches +
            weighted false non-matches) / (weighted comparisons).
        estimate: group -> {fmr, fnmr, accuracy} on the data as observed (every multiplicity 1).
        counts: group -> {false_matches, n_impostor, false_nonmatches, n_genuine, n_subjects}.
        replicates, seed, confidence: as given. unit: "subject" (clustered) or "comparison" (rows).
    """

    groups: tuple
    fmr: dict
    fnmr: dict
    accuracy: dict
    estimate: dict
    counts: dict
    replicates: int
    seed: int | None
    confidence: float
    unit: str
    method: str = ""

    def info(self) -> dict:
        """The metrics.json ``bootstrap`` block: ``{replicates, seed, confidence, unit}``."""
        return {"replicates": int(self.replicates), "seed": self.seed, "confidence": self.confidence,
                "unit": self.unit}

    def values(self, kind: str, group: str) -> np.ndarray:
        """Replicates of ``kind`` ("fmr", "fnmr" or "accuracy") for ``group``."""
        table = self._table(kind)
        g = str(group)
        if g not in table:
            raise ValueError(f"unknown group {g!r} (groups: {list(self.groups)})")
        return table[g]

    def matrix(self, kind: str, groups=None) -> np.ndarray:
        """(R, k) replicate matrix of ``kind`` over ``groups`` (default: all, in order)."""
        gs = self.groups if groups is None else [str(g) for g in groups]
        if not gs:
            return np.empty((self.replicates, 0))
        return np.stack([self.values(kind, g) for g in gs], axis=1)

    def _table(self, kind: str) -> dict:
        if kind not in ("fmr", "fnmr", "accuracy"):
            raise ValueError(f"kind must be 'fmr', 'fnmr' or 'accuracy', got {kind!r}")
        return getattr(self, kind)

    def interval(self, kind: str, group: str, max_undefined: float = MAX_UNDEFINED) -> Interval:
        """Percentile interval of a group's rate. Not given (NaN with a reason) when the group has
        no comparison of that kind, or when it has no error (or only errors) of that kind: a
        resampling interval is then degenerate at the observed 0 (or 1); report the exact
        upper bound instead."""
        g = str(group)
        v = self.values(kind, g)
        c = self.counts[g]
        if kind in ("fmr", "fnmr"):
            k, n = ((c["false_matches"], c["n_impostor"]) if kind == "fmr"
                    else (c["false_nonmatches"], c["n_genuine"]))
            name = kind.upper()
            if n == 0:
                return Interval(math.nan, math.nan, self.confidence, 0, v.size,
                                f"group {g} has no {'impostor' if kind == 'fmr' else 'genuine'} comparisons")
            if k == 0 or k == n:
                return Interval(math.nan, math.nan, self.confidence, v.size, 0,
                                f"group {g} has {'no' if k == 0 else 'only'} {name} errors ({k} of {n}): "
                                "a resampling interval is degenerate there; see the exact bound")
        if kind in ("fmr", "fnmr"):
            return korn_graubard_interval(k, n, v, self.confidence, max_undefined, f"{kind.upper()} of group {g}")
        return percentile_interval(v, self.confidence, max_undefined, f"{kind.upper()} of group {g}")

    def group_intervals(self, max_undefined: float = MAX_UNDEFINED) -> dict:
        """group -> ``{"fmr_ci_boot": [lo, hi] | None, "fnmr_ci_boot": ..., "fmr_ci_boot_reason":
        str | None, "fnmr_ci_boot_reason": ...}`` (the metrics.json per-group fields)."""
        out = {}
        for g in self.groups:
            e = {}
            for kind in ("fmr", "fnmr"):
                iv = self.interval(kind, g, max_undefined)
                e[f"{kind}_ci_boot"] = iv.as_list()
                e[f"{kind}_ci_boot_reason"] = iv.reason
            out[g] = e
        return out


def _multiplicities(rng: np.random.Generator, strata: np.ndarray, n_strata: int, rows: int) -> np.ndarray:
    """(rows, n_subjects) subject multiplicities: within every stratum, as many draws with
    replacement as the stratum has subjects."""
    counts = np.empty((rows, strata.size), dtype=np.float64)
    for s in range(n_strata):
        idx = np.flatnonzero(strata == s)
        k = idx.size
        counts[:, idx] = rng.multinomial(k, np.full(k, 1.0 / k), size=rows)
    return counts


def _check_replicates(replicates) -> int:
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")
    return int(replicates)


def cluster_bootstrap(errors, mated, subject_a, subject_b, group_a, group_b=None, *,
                      replicates: int = 1000, seed: int | None = 0,
                      confidence: float = 0.95, mixed: bool = False) -> BootstrapResult:
    """Subject-clustered (vertex) bootstrap of every group's FMR, FNMR and accuracy.

    Resamples subjects with replacement within strata of subjects sharing the same group label(s)
    (each group keeps its number of subjects); a replicate's weight for a comparison is the
    product of its two subjects' multiplicities (one factor for a genuine comparison, whose two
    sides are one subject). Seeded with ``np.random.default_rng(seed)``; the same inputs and seed
    give the same replicates. Vectorised: memory is bounded by processing the replicates in blocks
    of at most ~2 million (replicate x subject) entries; the block size depends only on the number
    of subjects, so results do not depend on anything else.

    FMR caveat: for impostor comparisons (two subjects each) no resampling scheme reproduces the
    dyadic variance exactly (McCullagh 2000, "Resampling and exchangeable arrays", Bernoulli 6(2);
    Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)). The product weight is
    conservative: it counts a comparison's own (binomial) variance about three times where the
    dyadic sandwich counts it once, so when subjects appear in few impostor comparisons (LFW View 2:
    mostly one or two) the FMR interval is up to ~sqrt(3) times too wide. FNMR (one subject per
    comparison) is the ordinary cluster bootstrap and has no such excess. :func:`robust_rate_se`
    gives the dyadic sandwich standard error for comparison.

    ``mixed=True``: the one group is instead the MIXED comparisons (two sides in different groups,
    e.g. RFW's cross-race impostors), named :data:`MIXED_GROUP`; the strata (each subject's own
    label(s)) and so every replicate's multiplicities are those of the groups' bootstrap with the
    same seed, and a comparison's weight is again the product of its subjects' multiplicities.

    Returns:
        :class:`BootstrapResult` with unit "subject".

    Raises:
        ValueError: shapes differ, a mated comparison with two subjects, a non-mated comparison
        of one subject, None labels, bad replicates/confidence.
    """
    r_total = _check_replicates(replicates)
    c = _check_confidence(confidence)
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    if mixed:   # one group: the comparisons across groups; strata (hence the draws) unchanged
        d = replace(d, comp_group=np.where(d.comp_group < 0, 0, -1), names=(MIXED_GROUP,))
    plans = _plans(d)
    rng = np.random.default_rng(seed)
    block = max(1, min(r_total, _BLOCK_ENTRIES // max(d.n_subjects, 1)))
    k = len(plans)
    sums = [np.empty((r_total, k)) for _ in range(4)]
    for start in range(0, r_total, block):
        rows = min(block, r_total - start)
        counts = _multiplicities(rng, d.strata, d.n_strata, rows)
        for j, plan in enumerate(plans):
            for arr, val in zip(sums, _weighted_sums(counts, plan)):
                arr[start:start + rows, j] = val
    fm, nimp, fnm, ngen = sums
    return _result(d, plans, fm, nimp, fnm, ngen, r_total, seed, c, "subject",
                   "subject-clustered (vertex) bootstrap, stratified by group; percentile intervals")


def _result(d, plans, fm, nimp, fnm, ngen, r_total, seed, c, unit, method) -> BootstrapResult:
    ones = np.ones((1, d.n_subjects))
    fmr, fnmr, acc, est, counts = {}, {}, {}, {}, {}
    for j, (g, plan) in enumerate(zip(d.names, plans)):
        fmr[g] = _ratio(fm[:, j], nimp[:, j])
        fnmr[g] = _ratio(fnm[:, j], ngen[:, j])
        acc[g] = 1.0 - _ratio(fm[:, j] + fnm[:, j], nimp[:, j] + ngen[:, j])
        o = [float(x[0]) for x in _weighted_sums(ones, plan)]
        est[g] = {"fmr": float(_ratio(o[0], o[1])), "fnmr": float(_ratio(o[2], o[3])),
                  "accuracy": float(1.0 - _ratio(o[0] + o[2], o[1] + o[3]))}
        counts[g] = {"false_matches": plan.fm, "n_impostor": plan.n_imp, "false_nonmatches": plan.fnm,
                     "n_genuine": plan.n_gen, "n_subjects": plan.n_subjects}
    return BootstrapResult(d.names, fmr, fnmr, acc, est, counts, r_total, seed, c, unit, method)


def row_bootstrap(errors, mated, subject_a, subject_b, group_a, group_b=None, *,
                  replicates: int = 1000, seed: int | None = 0,
                  confidence: float = 0.95) -> BootstrapResult:
    """Naive bootstrap resampling COMPARISONS (rows), stratified by group and by genuine/impostor,
    for comparison with :func:`cluster_bootstrap`. It ignores that comparisons share subjects, so
    its intervals are too narrow when errors cluster by subject.

    Resampling ``n`` rows with replacement from ``n`` rows of which ``k`` are errors gives a
    Binomial(n, k/n) number of errors, which is what is drawn (exactly the same distribution,
    without materialising the rows). Subjects are only used for the checks and the group's
    subject count.
    """
    r_total = _check_replicates(replicates)
    c = _check_confidence(confidence)
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    plans = _plans(d)
    rng = np.random.default_rng(seed)
    k = len(plans)
    fm, nimp, fnm, ngen = (np.empty((r_total, k)) for _ in range(4))
    for j, p in enumerate(plans):
        fm[:, j] = rng.binomial(p.n_imp, p.fm / p.n_imp, size=r_total) if p.n_imp else 0
        nimp[:, j] = p.n_imp
        fnm[:, j] = rng.binomial(p.n_gen, p.fnm / p.n_gen, size=r_total) if p.n_gen else 0
        ngen[:, j] = p.n_gen
    return _result(d, plans, fm, nimp, fnm, ngen, r_total, seed, c, "comparison",
                   "row (comparison) bootstrap, stratified by group and kind; percentile intervals")


# --------------------------------------------------------------------------- disparity intervals


def ratio_interval(boot: BootstrapResult, kind: str, numerator: str, denominator: str,
                   max_undefined: float = MAX_UNDEFINED) -> Interval:
    """Percentile interval of ``rate(numerator) / rate(denominator)`` computed replicate-wise
    (``kind`` "fmr" or "fnmr"); replicates with a zero denominator are undefined, dropped and
    counted (no interval when more than ``max_undefined`` of them)."""
    v = _ratio(boot.values(kind, numerator), boot.values(kind, denominator))
    return percentile_interval(v, boot.confidence, max_undefined,
                               f"{kind.upper()} ratio {numerator}/{denominator}")


# --------------------------------------------------------------------------- one interval rule for disparity


#: How the interval of every disparity summary is found (written into metrics.json).
INTERVAL_RULE = (
    "simultaneous sup-t bootstrap bounds (Montiel Olea & Plagborg-Moller 2019): every quantity the "
    "summary depends on (the between-group differences of the rate, on the log scale for ratios; "
    "the groups' own rates and mean where the summary uses them) gets the interval estimate +/- c * "
    "se, se its bootstrap standard deviation and c the confidence-quantile of the largest "
    "standardised replicate deviation over those quantities; the summary's interval is the range of "
    "values it takes while every quantity stays inside its interval. For two groups this is the "
    "interval of the NAMED highest group over the NAMED lowest; with more groups c widens for having "
    "picked the pair from the data. The lower end of a max/min ratio or max - min keeps the data's order, "
    "so it falls below equality (1, or 0) when the order of the groups could be the other way round")


@dataclass(frozen=True)
class SupT:
    """Simultaneous bounds ``est -/+ c * se`` for several quantities, or why there are none."""

    lo: np.ndarray
    hi: np.ndarray
    c: float
    n_used: int
    n_undefined: int
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.reason is None


def sup_t_bounds(replicates, estimate, confidence: float = 0.95, max_undefined: float = MAX_UNDEFINED,
                 what: str = "the summary") -> SupT:
    """Simultaneous ``confidence`` bounds for the columns of ``replicates`` (R, m) around ``estimate`` (m,).

    Definition (the sup-t band of Montiel Olea & Plagborg-Moller 2019, J. Applied Econometrics
    34(1); the bootstrap max-t of Romano & Wolf 2005): ``se_j`` is the standard deviation of column
    j over the replicates, ``T_r = max_j |x_rj - est_j| / se_j`` and ``c`` the ``confidence``
    quantile of ``T``; the bounds are ``est_j -/+ c * se_j``. With one column this is the normal
    interval with the bootstrap standard error and a bootstrap critical value.

    Not estimable (``reason`` set, bounds NaN): an estimate that is not finite, more than
    ``max_undefined`` of the replicates undefined in some column (e.g. a zero rate under a log),
    or a column whose replicates do not vary (a degenerate bootstrap: one subject, no errors).
    """
    c = _check_confidence(confidence)
    x = np.asarray(replicates, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != est.size:
        raise ValueError(f"replicates must be (R, {est.size}), got {x.shape}")
    nan = np.full(est.size, np.nan)
    r = x.shape[0]
    if r == 0:
        return SupT(nan, nan, math.nan, 0, 0, "no bootstrap replicates")
    if est.size == 0 or not np.isfinite(est).all():
        return SupT(nan, nan, math.nan, 0, r, f"{what} depends on a quantity that is undefined in the data")
    ok = np.isfinite(x).all(axis=1)
    n_ok = int(ok.sum())
    if n_ok < 2 or r - n_ok > max_undefined * r:
        return SupT(nan, nan, math.nan, n_ok, r - n_ok,
                    f"{what} is undefined in {r - n_ok} of {r} bootstrap replicates (more than "
                    f"{max_undefined:.0%}), e.g. a zero rate in a denominator or under a logarithm")
    xs = x[ok]
    se = xs.std(axis=0, ddof=1)
    scale = np.maximum(np.abs(est), 1.0)
    if (se <= 1e-12 * scale).any():
        return SupT(nan, nan, math.nan, n_ok, r - n_ok,
                    f"the bootstrap replicates of {what} do not vary (a degenerate bootstrap: too few "
                    "subjects, or no errors to resample)")
    t = (np.abs(xs - est) / se).max(axis=1)
    crit = float(np.quantile(t, c))
    return SupT(est - crit * se, est + crit * se, crit, n_ok, r - n_ok, None)


def _log(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.asarray(x, dtype=np.float64))
    out[~np.isfinite(out)] = np.nan
    return out


def _pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(k, 1)
    return i, j


def _pair_diffs(x):
    """(..., k) -> (..., k(k-1)/2) differences x_i - x_j over i < j."""
    i, j = _pairs(x.shape[-1])
    return x[..., i] - x[..., j]


def _weighted_span(fam, weights) -> tuple[float, float]:
    """sum_w w * (largest lower, largest upper) bound over each rate's family of pairwise bounds
    (log_range and range_ share it)."""
    lo = hi = 0.0
    for w, (l, h) in zip(weights, fam):
        la, ha = _named_bounds(l, h)
        lo, hi = lo + w * la.max(), hi + w * ha.max()
    return lo, hi


def _named_bounds(lo, hi):
    """Bounds on |d| from lo <= d <= hi, keeping the data's order: the lower bound is that of the
    difference in the direction observed (negative when the order could be the other way round),
    as for the interval of the named highest over the named lowest group."""
    est_sign = np.sign(lo + hi)
    est_sign[est_sign == 0] = 1.0
    lo_named = np.where(est_sign > 0, lo, -hi)
    return lo_named, np.maximum(np.abs(lo), np.abs(hi))


def _abs_bounds(lo, hi):
    """Bounds on |d| from bounds lo <= d <= hi."""
    lo_abs = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return lo_abs, np.maximum(np.abs(lo), np.abs(hi))


class _NotEstimable(Exception):
    pass


class SummaryIntervals:
    """Intervals of disparity summaries over the groups ``gs`` of a replicate set, by the one rule
    :data:`INTERVAL_RULE`. ``rep`` and ``est`` map a rate name ("fmr", "fnmr", "error" = 1 - accuracy)
    to an (R, k) replicate matrix and the (k,) observed rates; every method returns an
    :class:`Interval` (``reason`` set when not estimable; a zero-width interval is never returned)."""

    def __init__(self, rep: dict, est: dict, confidence: float, max_undefined: float = MAX_UNDEFINED,
                 names=()):
        self.rep, self.est, self.confidence, self.max_undefined = rep, est, confidence, max_undefined
        self.names = tuple(names)
        for name in [m for m in dir(self) if not m.startswith("_")]:
            fn = getattr(self, name)
            if callable(fn):
                setattr(self, name, self._guard(fn))

    def _guard(self, fn):
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except _NotEstimable as exc:
                return Interval(math.nan, math.nan, self.confidence, 0, 0, str(exc))
        return wrapped

    # building blocks ------------------------------------------------------------------------
    def _family(self, parts, what):
        """parts: list of (replicate (R, m), estimate (m,)). One sup-t over all of them; returns
        the per-part bounds [(lo, hi), ...] or an Interval saying why not."""
        reps = np.concatenate([p[0] for p in parts], axis=1)
        est = np.concatenate([p[1] for p in parts])
        b = sup_t_bounds(reps, est, self.confidence, self.max_undefined, what)
        if not b.defined:
            return Interval(math.nan, math.nan, self.confidence, b.n_used, b.n_undefined, b.reason)
        out, s = [], 0
        for p in parts:
            m = p[1].size
            out.append((b.lo[s:s + m], b.hi[s:s + m]))
            s += m
        self._last = b
        return out

    def _degenerate(self, rate):
        """A reason when some group's replicates of ``rate`` do not vary (one subject, no errors or
        only errors): its uncertainty is then unknown to the bootstrap, so no summary of it gets an
        interval."""
        x = self.rep[rate]
        flat = []
        for j in range(x.shape[1]):
            v = x[:, j][np.isfinite(x[:, j])]
            if v.size < 2 or not (v.max() - v.min() > 1e-9 * max(1.0, float(np.abs(v).max()))):
                flat.append(j)
        if flat:
            names = ", ".join(str(self.names[j]) if self.names else str(j) for j in flat)
            label = {"error": "error rate (1 - accuracy)"}.get(rate, rate.upper())
            return (f"the bootstrap of the {label} of group(s) {names} is degenerate (one subject, or no "
                    "errors or only errors to resample): their uncertainty is unknown, so no interval")
        return None

    def _part(self, rate, kind):
        why = self._degenerate(rate)
        if why:
            raise _NotEstimable(why)
        x, e = self.rep[rate], np.asarray(self.est[rate], dtype=np.float64)
        if kind == "logpairs":
            return _pair_diffs(_log(x)), _pair_diffs(_log(e[None])[0])
        if kind == "pairs":
            return _pair_diffs(x), _pair_diffs(e)
        if kind == "mean":
            return x.mean(axis=1, keepdims=True), np.array([e.mean()])
        if kind == "rates":
            return x, e
        if kind == "logrates":
            return _log(x), _log(e[None])[0]
        raise ValueError(kind)

    def _iv(self, lo, hi, what):
        b = self._last
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            return Interval(math.nan, math.nan, self.confidence, b.n_used, b.n_undefined,
                            f"the interval of {what} is degenerate (zero width)")
        return Interval(lo, hi, self.confidence, b.n_used, b.n_undefined, None)

    # summaries ------------------------------------------------------------------------------
    def log_range(self, rates, weights=None, what="the max/min ratio"):
        """exp(sum_w w * (max log x - min log x)): max/min ratio (one rate), IR (two, weighted)."""
        weights = weights or [1.0] * len(rates)
        fam = self._family([self._part(r, "logpairs") for r in rates], what)
        if isinstance(fam, Interval):
            return fam
        lo, hi = _weighted_span(fam, weights)
        return self._iv(math.exp(lo), math.exp(hi), what)

    def range_(self, rates, weights=None, what="the max-min difference"):
        """sum_w w * (max x - min x) (max-min; FDR = 1 - this with weights alpha, 1 - alpha)."""
        weights = weights or [1.0] * len(rates)
        fam = self._family([self._part(r, "pairs") for r in rates], what)
        if isinstance(fam, Interval):
            return fam
        lo, hi = _weighted_span(fam, weights)
        return self._iv(lo, hi, what)

    def fdr(self, alpha):
        used = [(r, w) for r, w in (("fmr", alpha), ("fnmr", 1 - alpha)) if w > 0]
        iv = self.range_([r for r, _ in used], [w for _, w in used], "FDR")
        if not iv.defined:
            return iv
        # FDR <= 1 by definition: the weighted largest gap is at least 0
        return self._iv(1.0 - iv.hi, 1.0 - max(0.0, iv.lo), "FDR")

    def ir(self, alpha):
        used = [(r, w) for r, w in (("fmr", alpha), ("fnmr", 1 - alpha)) if w > 0]
        return self.log_range([r for r, _ in used], [w for _, w in used], "IR")

    def gini(self, rates, weights=None, what="the Gini coefficient"):
        """sum_w w * G(x), G = sum_{i<j} |x_i - x_j| / (k (k-1) mean x) (GARBE with alpha weights)."""
        weights = weights or [1.0] * len(rates)
        parts = []
        for r in rates:
            parts += [self._part(r, "pairs"), self._part(r, "mean")]
        fam = self._family(parts, what)
        if isinstance(fam, Interval):
            return fam
        if self.est[rates[0]].size == 2:
            # two groups: G = |x - y| / (x + y) = tanh(|log x - log y| / 2), monotone in the log ratio
            fam = self._family([self._part(r, "logpairs") for r in rates], what)
            if isinstance(fam, Interval):
                return fam
            lo = hi = 0.0
            for w, (l, h) in zip(weights, fam):
                la, ha = _abs_bounds(l, h)
                lo, hi = lo + w * math.tanh(float(la[0]) / 2), hi + w * math.tanh(float(ha[0]) / 2)
            return self._iv(lo, hi, what)
        lo = hi = 0.0
        for n, w in enumerate(weights):
            (pl, ph), (ml, mh) = fam[2 * n], fam[2 * n + 1]
            k = self.est[rates[n]].size
            la, ha = _abs_bounds(pl, ph)
            with np.errstate(invalid="ignore", divide="ignore"):
                glo = la.sum() / (k * (k - 1) * max(float(mh[0]), 1e-300))
                ghi = 1.0 if ml[0] <= 0 else min(1.0, ha.sum() / (k * (k - 1) * float(ml[0])))
            lo, hi = lo + w * min(glo, 1.0), hi + w * ghi
        return self._iv(lo, hi, what)

    def garbe(self, alpha):
        used = [(r, w) for r, w in (("fmr", alpha), ("fnmr", 1 - alpha)) if w > 0]
        return self.gini([r for r, _ in used], [w for _, w in used], "GARBE")

    def std(self, rate, ddof=1, what="the standard deviation"):
        """sqrt(sum_{i<j} (x_i - x_j)^2 / (k (k - ddof)))  (the sample std for ddof=1, population for 0)."""
        fam = self._family([self._part(rate, "pairs")], what)
        if isinstance(fam, Interval):
            return fam
        k = self.est[rate].size
        la, ha = _abs_bounds(*fam[0])
        # sum_{i<j} d^2 = k * sum (x - mean)^2, so var(ddof) = sum_{i<j} d^2 / (k (k - ddof))
        return self._iv(math.sqrt((la ** 2).sum() / (k * (k - ddof))), math.sqrt((ha ** 2).sum() / (k * (k - ddof))),
                        what)

    def extreme(self, rate, which, what):
        """min or max over the groups of one rate."""
        fam = self._family([self._part(rate, "rates")], what)
        if isinstance(fam, Interval):
            return fam
        l, h = fam[0]
        f = np.max if which == "max" else np.min
        return self._iv(max(0.0, float(f(l))), min(1.0, float(f(h))), what)

    def max_over_mean(self, rate, what):
        fam = self._family([self._part(rate, "rates"), self._part(rate, "mean")], what)
        if isinstance(fam, Interval):
            return fam
        (l, h), (ml, mh) = fam
        if ml[0] <= 0:
            return Interval(math.nan, math.nan, self.confidence, self._last.n_used, self._last.n_undefined,
                            f"the lower bound of the mean rate is not positive: {what} has no upper bound")
        k = l.size
        return self._iv(max(1.0, float(l.max()) / float(mh[0])), min(float(k), float(h.max()) / float(ml[0])), what)

    def max_over_geomean(self, rate, what):
        """max/geometric mean = exp(max_g mean_j (log x_g - log x_j))."""
        why = self._degenerate(rate)
        if why:
            raise _NotEstimable(why)
        x, e = self.rep[rate], np.asarray(self.est[rate], dtype=np.float64)
        lx, le = _log(x), _log(e[None])[0]
        k = e.size
        # all ordered differences log x_g - log x_j (j != g) ...
        gi, gj = np.nonzero(~np.eye(k, dtype=bool))
        fam = self._family([(lx[:, gi] - lx[:, gj], le[gi] - le[gj])], what)
        if isinstance(fam, Interval):
            return fam
        l, h = fam[0]
        lo = np.zeros(k); hi = np.zeros(k)
        np.add.at(lo, gi, l)
        np.add.at(hi, gi, h)
        return self._iv(math.exp(max(0.0, float((lo / k).max()))), math.exp(float((hi / k).max())), what)


def summary_intervals(boot: BootstrapResult, groups=None, max_undefined: float = MAX_UNDEFINED) -> SummaryIntervals:
    """The :class:`SummaryIntervals` of ``boot`` over ``groups`` (default: all)."""
    gs = list(boot.groups) if groups is None else [str(g) for g in groups]
    rep = {"fmr": boot.matrix("fmr", gs), "fnmr": boot.matrix("fnmr", gs),
           "error": 1.0 - boot.matrix("accuracy", gs)}
    est = {"fmr": np.array([boot.estimate[g]["fmr"] for g in gs], dtype=np.float64),
           "fnmr": np.array([boot.estimate[g]["fnmr"] for g in gs], dtype=np.float64),
           "error": 1.0 - np.array([boot.estimate[g]["accuracy"] for g in gs], dtype=np.float64)}
    return SummaryIntervals(rep, est, boot.confidence, max_undefined, gs)


def disparity_intervals(boot: BootstrapResult, groups=None, reference: str | None = None,
                        alpha: float = 0.5, accuracy_ddof: int = 1,
                        max_undefined: float = MAX_UNDEFINED) -> dict:
    """The interval of every disparity summary by the one rule :data:`INTERVAL_RULE`.

    Returns:
        ``{name: Interval}`` for each name in ``disparity.SUMMARY_NAMES``, plus
        ``fmr_ratio_to_reference`` / ``fnmr_ratio_to_reference`` as ``{group: Interval}`` (empty
        when ``reference`` is None or not among ``groups``; the reference itself gets a "not
        estimable" Interval: its ratio is 1 by definition, not a measurement).
    """
    gs = list(boot.groups) if groups is None else [str(g) for g in groups]
    si = summary_intervals(boot, gs, max_undefined)
    out = {
        "fmr_max_min_ratio": si.log_range(["fmr"], what="the FMR max/min ratio"),
        "fnmr_max_min_ratio": si.log_range(["fnmr"], what="the FNMR max/min ratio"),
        "fdr": si.fdr(alpha),
        "ir": si.ir(alpha),
        "garbe": si.garbe(alpha),
        "ser": si.log_range(["error"], what="SER"),
        "accuracy_std": si.std("error", accuracy_ddof, "the standard deviation of accuracy"),
    }
    for kind in ("fmr", "fnmr"):
        key = f"{kind}_ratio_to_reference"
        out[key] = {}
        if reference is not None and str(reference) in gs:
            ref = str(reference)
            for g in gs:
                if g == ref:
                    out[key][g] = Interval(math.nan, math.nan, boot.confidence, 0, 0,
                                           "the reference group itself: its ratio is 1 by definition")
                    continue
                why = SummaryIntervals({kind: boot.matrix(kind, [g, ref])}, {}, boot.confidence,
                                       max_undefined, [g, ref])._degenerate(kind)
                if why:
                    out[key][g] = Interval(math.nan, math.nan, boot.confidence, 0, 0, why)
                    continue
                x = _log(boot.matrix(kind, [g]))[:, 0] - _log(boot.matrix(kind, [ref]))[:, 0]
                e = float(_log(np.array([boot.estimate[g][kind] / boot.estimate[ref][kind]
                                         if boot.estimate[ref][kind] else math.nan]))[0])
                b = sup_t_bounds(x[:, None], [e], boot.confidence, max_undefined,
                                 f"the {kind.upper()} ratio {g}/{ref}")
                iv = (Interval(math.exp(b.lo[0]), math.exp(b.hi[0]), boot.confidence, b.n_used, b.n_undefined)
                      if b.defined else Interval(math.nan, math.nan, boot.confidence, b.n_used, b.n_undefined,
                                                 b.reason))
                out[key][g] = iv
    return out


def disparity_summaries_with_ci(per_group: Mapping, boot: BootstrapResult | None,
                                reference: str | None = None, alpha: float = 0.5,
                                accuracy_ddof: int = 1, max_undefined: float = MAX_UNDEFINED) -> dict:
    """``disparity.disparity_summaries`` with every ``ci`` filled from ``boot`` (the metrics.json
    ``disparity[attr]`` block). A ci stays None when the summary's value is undefined or the
    interval is not given; then ``ci_reason`` says why. ``per_group`` decides which groups enter
    (pass the non-small ones); they must be groups of ``boot``."""
    block = disp.disparity_summaries(per_group, reference, alpha, accuracy_ddof)
    if boot is None:
        for name in disp.SUMMARY_NAMES:
            _fill(block[name], None)
        for key in ("fmr_ratio_to_reference", "fnmr_ratio_to_reference"):
            for entry in block[key]["by_group"].values():
                _fill(entry, None)
        return block
    gs = [str(g) for g in per_group]
    missing = [g for g in gs if g not in boot.groups]
    if missing:
        raise ValueError(f"groups {missing} are not in the bootstrap result ({list(boot.groups)})")
    ref = block["fmr_ratio_to_reference"]["reference"]
    ivs = disparity_intervals(boot, gs, ref, alpha, accuracy_ddof, max_undefined)
    for name in disp.SUMMARY_NAMES:
        _fill(block[name], ivs[name])
        block[name]["ci_method"] = INTERVAL_RULE
    for kind, rate in (("fmr", "fmr_max_min_ratio"), ("fnmr", "fnmr_max_min_ratio")):
        vals = {g: per_group[g][kind] for g in gs}
        if block[rate]["value"] is not None:
            hi, lo = max(gs, key=lambda g: vals[g]), min(gs, key=lambda g: vals[g])
            block[rate]["ci_of"] = f"{hi} / {lo}"
    for key in ("fmr_ratio_to_reference", "fnmr_ratio_to_reference"):
        for g, entry in block[key]["by_group"].items():
            if g in ivs[key]:
                _fill(entry, ivs[key][g])
    return block


NO_BOOTSTRAP = "no subject-clustered bootstrap in this run (bootstrap.replicates=0 or a protocol that keeps counts only)"


def _fill(entry: dict, iv: Interval | None) -> None:
    """Set ``ci`` / ``ci_reason``: one "not estimable" state (ci None, a reason) for an undefined
    value, a missing bootstrap, an interval that is not estimable, or the reference's own ratio."""
    if entry.get("value") is None:
        entry["ci"], entry["ci_reason"] = None, "the value itself is undefined"
    elif iv is None:
        entry["ci"], entry["ci_reason"] = None, NO_BOOTSTRAP
    else:
        entry["ci"], entry["ci_reason"] = iv.as_list(), iv.reason


# --------------------------------------------------------------------------- clustered test


def _robust_variance(psi: np.ndarray, sa: np.ndarray, sb: np.ndarray, n_subjects: int) -> tuple[float, int]:
    """Cluster-robust variance of ``sum(psi)`` clustered by subject, each comparison belonging to
    its two subjects (dyadic; Fafchamps & Gubert 2007, Aronow et al. 2015) or to its one subject
    (genuine, ``sa == sb``: the ordinary one-way cluster-robust variance).

    ``V = sum over pairs (c, c') sharing at least one subject of psi_c psi_c'
        = sum_s T_s^2 - sum_{a<b} D_ab^2``,
    with ``T_s`` the sum of psi over comparisons involving subject s (each counted once) and
    ``D_ab`` the sum over comparisons between subjects a and b (counted twice in ``sum T^2``).
    Multiplied by ``G / (G - 1)``, G the number of subjects involved (small-sample factor as in
    the CR1 estimator). Returns (V, G)."""
    two = sa != sb
    t = np.bincount(sa, weights=psi, minlength=n_subjects) + np.bincount(sb[two], weights=psi[two],
                                                                         minlength=n_subjects)
    lo, hi = np.minimum(sa[two], sb[two]), np.maximum(sa[two], sb[two])
    _, pinv = np.unique(lo.astype(np.int64) * n_subjects + hi, return_inverse=True)
    dsum = np.bincount(pinv.reshape(-1), weights=psi[two]) if two.any() else np.zeros(0)
    involved = np.zeros(n_subjects, dtype=bool)
    involved[sa] = True
    involved[sb] = True
    g = int(involved.sum())
    v = float((t ** 2).sum() - (dsum ** 2).sum())
    return (v * g / (g - 1) if g > 1 else math.nan), g


def _test_from_data(d: _Data, a: str, b: str, kind: str, centre: str) -> dict:
    if kind not in ("fmr", "fnmr"):
        raise ValueError(f"kind must be 'fmr' or 'fnmr', got {kind!r}")
    if centre not in ("pooled", "group"):
        raise ValueError(f"centre must be 'pooled' or 'group', got {centre!r}")
    for g in (a, b):
        if g not in d.names:
            raise ValueError(f"unknown group {g!r} (groups: {list(d.names)})")
    if a == b:
        raise ValueError("the two groups must differ")
    ia, ib = d.names.index(a), d.names.index(b)
    want = d.mated if kind == "fnmr" else ~d.mated
    in_a, in_b = want & (d.comp_group == ia), want & (d.comp_group == ib)
    ya, ma = int(d.errors[in_a].sum()), int(in_a.sum())
    yb, mb = int(d.errors[in_b].sum()), int(in_b.sum())
    what = "genuine" if kind == "fnmr" else "impostor"
    method = (f"cluster-robust z-test of the {kind.upper()} difference, clustered by subject "
              + ("(one-way sandwich variance of ratio estimators; Rao & Scott 1992, Donner & Klar 2000)"
                 if kind == "fnmr" else
                 "(dyadic sandwich variance: comparisons sharing a subject are dependent; "
                 "Fafchamps & Gubert 2007, Aronow, Samii & Assenova 2015)")
              + f", residuals centred on the {'pooled' if centre == 'pooled' else 'per-group'} rate")
    out = {"a": a, "b": b, "rate_a": ya / ma if ma else math.nan, "rate_b": yb / mb if mb else math.nan,
           "errors_a": ya, "n_a": ma, "errors_b": yb, "n_b": mb}
    out["difference"] = out["rate_a"] - out["rate_b"]
    out.update({"z": math.nan, "se": math.nan, "p_value": math.nan, "method": method, "reason": None})
    if ma == 0 or mb == 0:
        out["reason"] = f"group {a if ma == 0 else b} has no {what} comparisons"
        return out
    if ya + yb == 0 or ya + yb == ma + mb:
        out.update(z=0.0, se=0.0, p_value=1.0,
                   reason=f"{'no' if ya + yb == 0 else 'only'} {kind.upper()} errors in both groups: "
                          "no evidence of a difference")
        return out
    if ya in (0, ma) or yb in (0, mb):
        out["reason"] = (f"group {a if ya in (0, ma) else b} has {'no' if min(ya, yb) == 0 else 'only'} "
                         f"{kind.upper()} errors: the cluster-robust variance cannot be estimated from a "
                         "group without variation (use the permutation test)")
        return out
    p0 = (ya + yb) / (ma + mb)
    ca = p0 if centre == "pooled" else ya / ma
    cb = p0 if centre == "pooled" else yb / mb
    sel = in_a | in_b
    e = d.errors[sel].astype(np.float64)
    is_a = in_a[sel]
    psi = np.where(is_a, (e - ca) / ma, -(e - cb) / mb)
    v, g = _robust_variance(psi, d.sa[sel], d.sb[sel], d.n_subjects)
    out["n_subjects"] = g
    if not (v > 0):
        out["reason"] = ("the cluster-robust variance is not positive (too few subjects or "
                         "residuals cancelling); no p-value")
        return out
    se = math.sqrt(v)
    z = out["difference"] / se
    out.update(z=z, se=se, p_value=float(2.0 * special.ndtr(-abs(z))))
    return out


# --------------------------------------------------------------------------- subject permutation test


#: Permutations drawn by :func:`permutation_rate_test` when the assignments are not enumerated.
PERMUTATIONS = 2000

PERMUTATION_METHOD = (
    "subject-level permutation test of the {rate} difference: the group labels of the subjects of the "
    "two groups are permuted (every comparison of a subject moves with it), the rate of each group "
    "recomputed, two-sided p = (1 + #{{|d*| >= |d|}}) / (1 + permutations) (exact enumeration when "
    "there are at most {n} assignments); valid at zero counts, needs no variance estimate "
    "(Good 2005, Permutation, Parametric and Bootstrap Tests of Hypotheses, ch. 3; Fisher's exact test "
    "when every subject has one comparison)")


def permutation_rate_test(errors, mated, subject_a, subject_b, group_a, group_b=None, *, a: str, b: str,
                          kind: str = "fnmr", permutations: int = PERMUTATIONS, seed: int | None = 0) -> dict:
    """Test "group ``a``'s FNMR (or FMR) equals group ``b``'s" by permuting subjects between the groups.

    Method (:data:`PERMUTATION_METHOD`): the units are the subjects of the two groups (a subject's
    comparisons in group ``a`` form one unit). Under the null hypothesis that the units of the two
    groups are exchangeable, relabelling them at random (keeping each group's number of units) and
    recomputing ``d* = rate_a* - rate_b*`` gives the null distribution of the observed difference
    ``d = errors_a / n_a - errors_b / n_b``. FNMR: a unit's genuine comparisons and false
    non-matches move with it. FMR: an impostor comparison counts for a group when both its units
    carry that group's label after relabelling; comparisons between a unit of ``a`` and one of
    ``b`` (the mixed ones) enter a group when relabelling puts both of their subjects into it.
    p-value ``(1 + #{|d*| >= |d|}) / (1 + P)`` over ``P`` seeded random relabellings, or the exact
    proportion over all assignments when there are at most ``permutations`` of them.

    Not estimable (``p_value`` None-able NaN, ``estimable`` False, a reason): a group without
    comparisons of that kind, or fewer than 20 distinct assignments (the test could never reach 5%).
    Returns ``{a, b, rate_a, rate_b, difference, p_value, method, errors_a, n_a, errors_b, n_b,
    n_subjects, permutations, estimable, reason}``.
    """
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    return _perm_from_data(d, str(a), str(b), kind, int(permutations), seed)


def _perm_from_data(d: _Data, a: str, b: str, kind: str, permutations: int, seed) -> dict:
    if kind not in ("fmr", "fnmr"):
        raise ValueError(f"kind must be 'fmr' or 'fnmr', got {kind!r}")
    for g in (a, b):
        if g not in d.names:
            raise ValueError(f"unknown group {g!r} (groups: {list(d.names)})")
    if a == b:
        raise ValueError("the two groups must differ")
    if isinstance(permutations, bool) or permutations < 1:
        raise ValueError(f"permutations must be a positive integer, got {permutations!r}")
    ia, ib = d.names.index(a), d.names.index(b)
    want = d.mated if kind == "fnmr" else ~d.mated
    in_a, in_b = want & (d.comp_group == ia), want & (d.comp_group == ib)
    ya, ma, yb, mb = int(d.errors[in_a].sum()), int(in_a.sum()), int(d.errors[in_b].sum()), int(in_b.sum())
    what = "genuine" if kind == "fnmr" else "impostor"
    out = {"a": a, "b": b, "rate_a": ya / ma if ma else math.nan, "rate_b": yb / mb if mb else math.nan,
           "errors_a": ya, "n_a": ma, "errors_b": yb, "n_b": mb}
    out["difference"] = out["rate_a"] - out["rate_b"]
    out.update({"p_value": math.nan, "method": PERMUTATION_METHOD.format(rate=kind.upper(), n=permutations),
                "n_subjects": 0, "permutations": 0, "estimable": False, "reason": None})
    if ma == 0 or mb == 0:
        out["reason"] = f"group {a if ma == 0 else b} has no {what} comparisons"
        return out
    # units: subjects of a, then subjects of b (a subject labelled both ways is two units)
    ua = np.unique(np.concatenate([d.sa[in_a], d.sb[in_a]]))
    ub = np.unique(np.concatenate([d.sa[in_b], d.sb[in_b]]))
    na_u, nb_u = ua.size, ub.size
    n_units = na_u + nb_u
    out["n_subjects"] = n_units
    n_assign = math.comb(n_units, na_u)
    if n_assign < 20:
        out["reason"] = (f"too few subjects to test: {na_u} and {nb_u} subjects give {n_assign} distinct "
                         "assignments, so no p-value could fall below 5%")
        return out
    if ya + yb == 0 or ya + yb == ma + mb:
        out.update(p_value=1.0, estimable=True,
                   reason=f"{'no' if ya + yb == 0 else 'only'} {kind.upper()} errors in both groups: "
                          "no evidence of a difference")
        return out
    pos_a = {int(s): i for i, s in enumerate(ua)}
    pos_b = {int(s): na_u + i for i, s in enumerate(ub)}
    if kind == "fnmr":
        ea = np.bincount([pos_a[int(s)] for s in d.sa[in_a]], weights=d.errors[in_a], minlength=n_units)
        eb = np.bincount([pos_b[int(s)] for s in d.sa[in_b]], weights=d.errors[in_b], minlength=n_units)
        ca = np.bincount([pos_a[int(s)] for s in d.sa[in_a]], minlength=n_units)
        cb = np.bincount([pos_b[int(s)] for s in d.sa[in_b]], minlength=n_units)
        err_u, cnt_u = ea + eb, (ca + cb).astype(np.float64)
    else:
        # impostor comparisons among the units: within a, within b, and a-b ones (mixed)
        unit_of_a = np.full(d.n_subjects, -1)
        unit_of_b = np.full(d.n_subjects, -1)
        unit_of_a[ua] = np.arange(na_u)
        unit_of_b[ub] = na_u + np.arange(nb_u)
        ga_codes = np.full(d.comp_group.shape, -1)
        ga_codes[in_a], ga_codes[in_b] = ia, ib
        imp = ~d.mated
        rows, cols, errs = [], [], []
        for sel, ra, rb in ((in_a, unit_of_a, unit_of_a), (in_b, unit_of_b, unit_of_b)):
            rows.append(ra[d.sa[sel]]); cols.append(rb[d.sb[sel]]); errs.append(d.errors[sel])
        cross = imp & (d.comp_group == -1)
        for ra, rb in ((unit_of_a, unit_of_b), (unit_of_b, unit_of_a)):
            x, y = ra[d.sa], rb[d.sb]
            sel = cross & (x >= 0) & (y >= 0)
            rows.append(x[sel]); cols.append(y[sel]); errs.append(d.errors[sel])
        r_, c_, e_ = (np.concatenate(v) for v in (rows, cols, errs))
        err_m = sparse.coo_matrix((e_.astype(np.float64), (r_, c_)), shape=(n_units, n_units)).tocsc()
        cnt_m = sparse.coo_matrix((np.ones(r_.size), (r_, c_)), shape=(n_units, n_units)).tocsc()
    base = np.zeros(n_units)
    base[:na_u] = 1.0
    exact = n_assign <= min(permutations, 100_000)
    if exact:
        from itertools import combinations
        assign = np.zeros((n_assign, n_units))
        for r, idx in enumerate(combinations(range(n_units), na_u)):
            assign[r, list(idx)] = 1.0
    else:
        rng = np.random.default_rng(seed)
        assign = rng.permuted(np.broadcast_to(base, (permutations, n_units)).copy(), axis=1)

    def diffs(p: np.ndarray) -> np.ndarray:
        q = 1.0 - p
        if kind == "fnmr":
            return _ratio(p @ err_u, p @ cnt_u) - _ratio(q @ err_u, q @ cnt_u)
        return _ratio(_quad(p, err_m), _quad(p, cnt_m)) - _ratio(_quad(q, err_m), _quad(q, cnt_m))

    obs = float(diffs(base[None])[0])
    block = max(1, _BLOCK_ENTRIES // max(n_units, 1))
    dstar = np.concatenate([diffs(assign[i:i + block]) for i in range(0, assign.shape[0], block)])
    dstar = np.where(np.isfinite(dstar), dstar, 0.0)   # a relabelling leaving a group empty: no difference
    tol = 1e-12 * max(1.0, abs(obs))
    extreme = int((np.abs(dstar) >= abs(obs) - tol).sum())
    p = extreme / dstar.size if exact else (1 + extreme) / (1 + dstar.size)
    out.update(p_value=float(min(1.0, p)), permutations=int(dstar.size), estimable=True, exact=bool(exact))
    return out


def robust_rate_se(errors, mated, subject_a, subject_b, group_a, group_b=None, *, group: str,
                   kind: str = "fnmr") -> dict:
    """Cluster-robust standard error of one group's FMR or FNMR (the variance of
    :func:`rate_difference_test` for a single ratio estimator, residuals centred on the group's
    rate): one-way by subject for FNMR, dyadic for FMR. Returns ``{rate, se, errors, n,
    n_subjects, reason}``; ``se`` NaN with a reason when the group has no comparison of that kind
    or fewer than 2 subjects."""
    if kind not in ("fmr", "fnmr"):
        raise ValueError(f"kind must be 'fmr' or 'fnmr', got {kind!r}")
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    g = str(group)
    if g not in d.names:
        raise ValueError(f"unknown group {g!r} (groups: {list(d.names)})")
    sel = (d.mated if kind == "fnmr" else ~d.mated) & (d.comp_group == d.names.index(g))
    y, n = int(d.errors[sel].sum()), int(sel.sum())
    out = {"rate": y / n if n else math.nan, "se": math.nan, "errors": y, "n": n, "n_subjects": 0,
           "reason": None}
    if n == 0:
        out["reason"] = f"group {g} has no {'genuine' if kind == 'fnmr' else 'impostor'} comparisons"
        return out
    psi = (d.errors[sel] - y / n) / n
    v, subjects = _robust_variance(psi.astype(np.float64), d.sa[sel], d.sb[sel], d.n_subjects)
    out["n_subjects"] = subjects
    if math.isfinite(v) and v >= 0:
        out["se"] = math.sqrt(v)
    else:
        out["reason"] = "fewer than 2 subjects or a negative dyadic variance estimate"
    return out


def rate_difference_test(errors, mated, subject_a, subject_b, group_a, group_b=None, *, a: str, b: str,
                         kind: str = "fnmr", centre: str = "pooled") -> dict:
    """Test "group ``a``'s FNMR (or FMR) equals group ``b``'s" with a p-value respecting subjects.

    Method: ``z = (p_a - p_b) / sqrt(V)``, two-sided normal p-value, where ``p_g`` is the group's
    rate (errors / comparisons of that kind, a ratio estimator over subjects) and ``V`` the
    cluster-robust (sandwich) variance of ``p_a - p_b`` with influence values
    ``psi_c = (e_c - p*) / n_a`` for comparisons of a and ``-(e_c - p*) / n_b`` for those of b,
    summed over every pair of comparisons sharing a subject (:func:`_robust_variance`). For FNMR
    (one subject per comparison) this is the one-way cluster-robust variance behind Rao & Scott's
    (1992) design-effect adjustment and Donner & Klar's (2000) adjusted tests; for FMR (two
    subjects per comparison) the dyadic-robust variance (Fafchamps & Gubert 2007; Aronow, Samii &
    Assenova 2015). With ``centre="pooled"`` (default) the residuals are centred on the pooled rate
    ``p* = (y_a + y_b) / (n_a + n_b)``, the null hypothesis (a score-type test that stays defined
    when one group has no error); ``centre="group"`` centres on each group's own rate (Wald).
    No multiplicity adjustment here; see :func:`pairwise_rate_tests`.

    Returns:
        ``{a, b, rate_a, rate_b, difference, p_value, method, z, se, errors_a, n_a, errors_b, n_b,
        n_subjects, reason}``; ``p_value`` NaN with a reason when a group has no comparison of that
        kind or the variance is not positive; 1.0 with a reason when neither group has an error.
    """
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    return _test_from_data(d, str(a), str(b), kind, centre)


def pairwise_rate_tests(errors, mated, subject_a, subject_b, group_a, group_b=None, *,
                        kind: str = "fnmr", groups=None, method: str = "permutation",
                        permutations: int = PERMUTATIONS, seed: int | None = 0, centre: str = "pooled") -> list[dict]:
    """A two-group test for every pair of ``groups`` (default: all groups, sorted), with Holm's
    (1979) step-down adjustment over the defined p-values in ``p_value_holm`` (the metrics.json
    ``tests[attr][kind]`` list). ``method="permutation"`` (default): :func:`permutation_rate_test`,
    valid at zero counts; ``"z"``: the cluster-robust :func:`rate_difference_test` (not estimable
    when a group has no errors). Every entry has ``estimable`` and ``reason``."""
    if method not in ("permutation", "z"):
        raise ValueError(f"method must be 'permutation' or 'z', got {method!r}")
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    gs = list(d.names) if groups is None else [str(g) for g in groups]
    pairs = [(gs[i], gs[j]) for i in range(len(gs)) for j in range(i + 1, len(gs))]
    if method == "permutation":
        out = [_perm_from_data(d, x, y, kind, permutations, None if seed is None else seed + n)
               for n, (x, y) in enumerate(pairs)]
    else:
        out = [_test_from_data(d, x, y, kind, centre) for x, y in pairs]
        for t in out:
            t["estimable"] = math.isfinite(t["p_value"])
    p = np.array([t["p_value"] for t in out], dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(p))
    holm = np.full(p.size, np.nan)
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        m = ok.size
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
        holm[order] = adj
    for t, h in zip(out, holm):
        t["p_value_holm"] = float(h)
    return out


# --------------------------------------------------------------------------- NIST table with intervals


def nist_table_with_ci(rates: Mapping, boot: BootstrapResult | None, kind: str, overall=None,
                       overall_ci=None, max_undefined: float = MAX_UNDEFINED) -> dict:
    """``disparity.nist_table`` for ``kind`` ("fmr" or "fnmr") with every ``ci`` by the one
    interval rule (:data:`INTERVAL_RULE`) from ``boot`` over the groups of ``rates``; ``overall``
    carries the exact (Clopper-Pearson) ``overall_ci`` given. The max/min ratio's interval is the
    same computation as the disparity block's ``{kind}_max_min_ratio`` (one ratio, one interval)."""
    block = disp.nist_table(rates, overall, kind.upper())
    block["overall"]["ci"] = list(overall_ci) if overall_ci and None not in overall_ci else None
    block["overall"]["ci_reason"] = None if block["overall"]["ci"] else "no comparisons"
    block["overall"]["ci_method"] = "Clopper-Pearson (exact binomial; comparisons treated as independent)"
    gs = [str(g) for g in rates]
    ivs = {}
    if boot is not None and len(gs) >= 2:
        si = summary_intervals(boot, gs, max_undefined)
        ivs = {"min": si.extreme(kind, "min", f"the minimum {kind.upper()}"),
               "max": si.extreme(kind, "max", f"the maximum {kind.upper()}"),
               "max_min_ratio": si.log_range([kind], what=f"the {kind.upper()} max/min ratio"),
               "max_minus_min": si.range_([kind], what=f"the {kind.upper()} max - min"),
               "max_over_mean": si.max_over_mean(kind, f"the {kind.upper()} max/mean"),
               "max_over_geomean": si.max_over_geomean(kind, f"the {kind.upper()} max/geometric mean"),
               "gini": si.gini([kind], what=f"the Gini coefficient of {kind.upper()}")}
    for name in disp.NIST_NAMES:
        if name == "overall":
            continue
        _fill(block[name], ivs.get(name))
        block[name]["ci_method"] = INTERVAL_RULE
    return block
