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
from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

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
    return Interval(float(lo), float(hi), c, n_ok, n_bad, None)


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
                      confidence: float = 0.95) -> BootstrapResult:
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

    Returns:
        :class:`BootstrapResult` with unit "subject".

    Raises:
        ValueError: shapes differ, a mated comparison with two subjects, a non-mated comparison
        of one subject, None labels, bad replicates/confidence.
    """
    r_total = _check_replicates(replicates)
    c = _check_confidence(confidence)
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
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


def disparity_intervals(boot: BootstrapResult, groups=None, reference: str | None = None,
                        alpha: float = 0.5, accuracy_ddof: int = 1,
                        max_undefined: float = MAX_UNDEFINED) -> dict:
    """Percentile intervals of every disparity summary, applying the same array kernels as
    ``evalkit.metrics.disparity`` to the (R, k) replicate matrices.

    Returns:
        ``{name: Interval}`` for each name in ``disparity.SUMMARY_NAMES``, plus
        ``fmr_ratio_to_reference`` / ``fnmr_ratio_to_reference`` as ``{group: Interval}`` (empty
        when ``reference`` is None or not among ``groups``).
    """
    gs = list(boot.groups) if groups is None else [str(g) for g in groups]
    m, n, acc = boot.matrix("fmr", gs), boot.matrix("fnmr", gs), boot.matrix("accuracy", gs)
    values = {
        "fmr_max_min_ratio": disp.max_min_ratio_values(m),
        "fnmr_max_min_ratio": disp.max_min_ratio_values(n),
        "fdr": disp.fdr_values(m, n, alpha),
        "ir": disp.inequity_rate_values(m, n, alpha),
        "garbe": disp.garbe_values(m, n, alpha),
        "ser": disp.ser_values(acc),
        "accuracy_std": disp.std_values(acc, accuracy_ddof),
    }
    out = {name: percentile_interval(v, boot.confidence, max_undefined, name) for name, v in values.items()}
    for kind, mat in (("fmr", m), ("fnmr", n)):
        key = f"{kind}_ratio_to_reference"
        out[key] = {}
        if reference is not None and str(reference) in gs:
            ratios = disp.ratio_to_reference_values(mat, gs.index(str(reference)))
            out[key] = {g: percentile_interval(ratios[:, i], boot.confidence, max_undefined,
                                               f"{kind.upper()} ratio {g}/{reference}")
                        for i, g in enumerate(gs)}
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
        return block
    gs = [str(g) for g in per_group]
    missing = [g for g in gs if g not in boot.groups]
    if missing:
        raise ValueError(f"groups {missing} are not in the bootstrap result ({list(boot.groups)})")
    ref = block["fmr_ratio_to_reference"]["reference"]
    ivs = disparity_intervals(boot, gs, ref, alpha, accuracy_ddof, max_undefined)
    for name in disp.SUMMARY_NAMES:
        _fill(block[name], ivs[name])
    for key in ("fmr_ratio_to_reference", "fnmr_ratio_to_reference"):
        for g, entry in block[key]["by_group"].items():
            if g in ivs[key]:
                _fill(entry, ivs[key][g])
    return block


def _fill(entry: dict, iv: Interval) -> None:
    if entry.get("value") is None:
        entry["ci"], entry["ci_reason"] = None, "the value itself is undefined"
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
    out.update(z=z, se=se, p_value=float(2.0 * stats.norm.sf(abs(z))))
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
                        kind: str = "fnmr", groups=None, centre: str = "pooled") -> list[dict]:
    """:func:`rate_difference_test` for every pair of ``groups`` (default: all groups, sorted),
    with Holm's (1979) step-down adjustment over the defined p-values in ``p_value_holm``
    (the metrics.json ``tests[attr][kind]`` list)."""
    d = _prepare(errors, mated, subject_a, subject_b, group_a, group_b)
    gs = list(d.names) if groups is None else [str(g) for g in groups]
    out = [_test_from_data(d, gs[i], gs[j], kind, centre)
           for i in range(len(gs)) for j in range(i + 1, len(gs))]
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
