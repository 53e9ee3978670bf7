"""Disparity summaries: one number saying how much per-group error rates differ.

Every summary is a pure function of per-group rates (a mapping ``group -> rate`` or a 1-D array)
at ONE operating threshold. Each returns a :class:`DisparityResult` with

- ``value``: a float, or NaN when the summary is undefined for these rates (a zero rate in a
  denominator, fewer than two groups, a group whose rate is itself undefined, ...). Never ``inf``.
- ``reason``: None when ``value`` is defined, else one sentence saying why it is not.
- ``definition`` and ``source``: the formula and where it comes from (they go into metrics.json).
- ``groups``: the groups that entered the summary.

Every summary also has an array "kernel" (``*_values``) working on arrays of shape ``(..., k)``
(``k`` groups on the last axis, e.g. ``(R, k)`` bootstrap replicates) and returning shape
``(...)``, NaN where undefined; the scalar functions call the kernels, so replicate-wise intervals
(``evalkit.metrics.bootstrap``) use exactly the same arithmetic.

Direction: for every summary except FDR, larger means MORE disparity (ratios and IR are 1 when all
groups are equal, GARBE, SER - 1 and the standard deviation are 0). FDR is 1 when fair and smaller
when less fair.

Sources:

- NIST differentials: Grother, Ngan, Hanaoka (2019), "Face Recognition Vendor Test (FRVT) Part 3:
  Demographic Effects", NISTIR 8280 (FMR and FNMR of each group at one threshold, reported as
  ratios to a reference group and as max/min spreads).
- FDR: de Freitas Pereira, T. & Marcel, S. (2021), "Fairness in Biometrics: a figure of merit to
  assess biometric verification systems", IEEE Trans. Biometrics, Behavior, and Identity Science
  4(1) (arXiv 2011.02395).
- IR and GARBE: Howard, J. J., Laird, E. J., Rubin, R. E., Sirotin, Y. B., Tipton, J. L. &
  Vemury, A. R. (2022), "Evaluating proposed fairness models for face recognition algorithms",
  arXiv 2203.05051 (IR is there attributed to NIST's proposal for ISO/IEC 19795-10; GARBE is
  Howard et al.'s own). In all three of FDR, IR and GARBE the weight ``alpha`` multiplies the FMR
  term and ``1 - alpha`` the FNMR term; evalkit's default is ``alpha = 0.5``.
- SER and the standard deviation of accuracy: Wang, M. & Deng, W. (2020), "Mitigating bias in
  face recognition using skewness-aware reinforcement learning", CVPR 2020 (RFW benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DisparityResult",
    "max_min_ratio",
    "fmr_max_min_ratio",
    "fnmr_max_min_ratio",
    "ratio_to_reference",
    "fdr",
    "inequity_rate",
    "gini",
    "garbe",
    "skewed_error_ratio",
    "accuracy_std",
    "disparity_summaries",
    "max_min_ratio_values",
    "ratio_to_reference_values",
    "fdr_values",
    "inequity_rate_values",
    "gini_values",
    "garbe_values",
    "ser_values",
    "std_values",
    "SUMMARY_NAMES",
    "DEFINITIONS",
]

#: The scalar summaries of the metrics.json ``disparity`` block, in order.
SUMMARY_NAMES = ("fmr_max_min_ratio", "fnmr_max_min_ratio", "fdr", "ir", "garbe", "ser", "accuracy_std")

_NIST = ("Grother, Ngan & Hanaoka (2019), FRVT Part 3: Demographic Effects, NISTIR 8280")
_FDR_SRC = ("de Freitas Pereira & Marcel (2021), Fairness in Biometrics: a figure of merit to assess "
            "biometric verification systems, IEEE T-BIOM (arXiv 2011.02395)")
_HOWARD = ("Howard, Laird, Rubin, Sirotin, Tipton & Vemury (2022), Evaluating proposed fairness models "
           "for face recognition algorithms, arXiv 2203.05051")
_WANG = ("Wang & Deng (2020), Mitigating bias in face recognition using skewness-aware reinforcement "
         "learning, CVPR")

#: name -> (definition, source), as written into metrics.json.
DEFINITIONS = {
    "fmr_max_min_ratio": ("max_g FMR_g / min_g FMR_g over the groups, at one threshold (1 = equal; "
                          "undefined when the smallest FMR is 0)", _NIST),
    "fnmr_max_min_ratio": ("max_g FNMR_g / min_g FNMR_g over the groups, at one threshold (1 = equal; "
                           "undefined when the smallest FNMR is 0)", _NIST),
    "fmr_ratio_to_reference": ("FMR_g / FMR_ref for each group g, at one threshold (undefined when "
                               "FMR_ref is 0)", _NIST),
    "fnmr_ratio_to_reference": ("FNMR_g / FNMR_ref for each group g, at one threshold (undefined when "
                                "FNMR_ref is 0)", _NIST),
    "fdr": ("FDR = 1 - (alpha * A + (1 - alpha) * B), A = max_{i,j} |FMR_i - FMR_j|, "
            "B = max_{i,j} |FNMR_i - FNMR_j| (1 = fair, lower = less fair)", _FDR_SRC),
    "ir": ("IR = (max FMR / min FMR)^alpha * (max FNMR / min FNMR)^(1 - alpha) (1 = fair; a term "
           "with weight 0 is left out; undefined when a weighted minimum is 0)",
           _HOWARD + "; proposed by NIST for ISO/IEC 19795-10"),
    "garbe": ("GARBE = alpha * G(FMR) + (1 - alpha) * G(FNMR), with the sample-corrected Gini "
              "coefficient G(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)) over the n "
              "groups (0 = fair; undefined when a weighted mean rate is 0)", _HOWARD),
    "ser": ("SER = max_g (1 - accuracy_g) / min_g (1 - accuracy_g), accuracy_g = correct decisions "
            "/ comparisons of group g at the threshold (1 = equal; undefined when the smallest error "
            "is 0)", _WANG),
    "accuracy_std": ("sample standard deviation (divisor k - 1) of the k per-group accuracies "
                     "(0 = equal)", _WANG + " (the paper does not state the divisor)"),
}


@dataclass(frozen=True)
class DisparityResult:
    """One disparity summary: ``value`` (float, NaN if undefined), ``reason`` (None if defined),
    ``definition``, ``source`` and the ``groups`` that entered it (in input order)."""

    value: float
    reason: str | None
    definition: str
    source: str
    groups: tuple = field(default_factory=tuple)

    @property
    def defined(self) -> bool:
        return math.isfinite(self.value)

    def to_dict(self) -> dict:
        """JSON-safe: ``{value, reason, definition, source, groups}`` with ``value`` None if undefined."""
        return {
            "value": float(self.value) if self.defined else None,
            "reason": self.reason,
            "definition": self.definition,
            "source": self.source,
            "groups": [str(g) for g in self.groups],
        }


# --------------------------------------------------------------------------- input handling


def _as_rates(rates, name: str) -> tuple[tuple, np.ndarray]:
    """(group names, float array) from a mapping group -> rate or a 1-D array-like."""
    if isinstance(rates, Mapping):
        names = tuple(str(g) for g in rates.keys())
        vals = [np.nan if v is None else v for v in rates.values()]
    else:
        arr = np.asarray(rates, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a mapping group -> rate or a 1-D array, got shape {arr.shape}")
        names = tuple(str(i) for i in range(arr.size))
        vals = arr
    try:
        x = np.asarray(vals, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers (rates) or None, got {list(vals)!r}") from exc
    bad = np.isfinite(x) & ((x < 0) | (x > 1))
    if bad.any():
        raise ValueError(f"{name} must be rates in [0, 1]; got {dict(zip(np.array(names)[bad], x[bad]))}")
    if np.isinf(x).any():
        raise ValueError(f"{name} contains inf, which is not a rate")
    return names, x


def _paired(fmr, fnmr) -> tuple[tuple, np.ndarray, np.ndarray]:
    names_m, m = _as_rates(fmr, "fmr")
    names_n, n = _as_rates(fnmr, "fnmr")
    if isinstance(fmr, Mapping) and isinstance(fnmr, Mapping):
        if set(names_m) != set(names_n):
            raise ValueError(f"fmr and fnmr must cover the same groups: {sorted(names_m)} vs {sorted(names_n)}")
        order = {g: i for i, g in enumerate(names_n)}
        n = n[[order[g] for g in names_m]]
    elif m.size != n.size:
        raise ValueError(f"fmr and fnmr must have the same number of groups ({m.size} vs {n.size})")
    return names_m, m, n


def _check_alpha(alpha) -> float:
    a = float(alpha)
    if not (0.0 <= a <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return a


def _weighted_inputs(fmr, fnmr, alpha) -> tuple:
    """For IR and GARBE: ``(alpha, names, FMR, FNMR, used, reason)`` where ``used`` lists the
    ``(rates, label)`` terms with a non-zero weight (a term with weight 0 is left out) and
    ``reason`` says why the inputs leave the summary undefined (None if they do not)."""
    a = _check_alpha(alpha)
    names, m, n = _paired(fmr, fnmr)
    used = ([(m, "FMR")] if a > 0 else []) + ([(n, "FNMR")] if a < 1 else [])
    return a, names, m, n, used, _undefined_inputs(names, *used)


def _undefined_inputs(names, *arrays_and_labels) -> str | None:
    """A reason if fewer than 2 groups or any input rate is NaN; else None."""
    if len(names) < 2:
        return f"needs at least 2 groups, got {len(names)} ({', '.join(names) or 'none'})"
    for x, label in arrays_and_labels:
        nan = [g for g, v in zip(names, x) if not math.isfinite(v)]
        if nan:
            return f"{label} is undefined (no comparisons) for group(s) {', '.join(nan)}"
    return None


def _result(key: str, value, reason, names, definition: str | None = None) -> DisparityResult:
    d, s = DEFINITIONS[key]
    v = float(value)
    if not math.isfinite(v):
        v = math.nan
        reason = reason or "undefined for these rates"
    else:
        reason = None
    return DisparityResult(v, reason, definition or d, s, tuple(names))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    return np.where(np.isfinite(out) & (np.asarray(den) != 0), out, np.nan)


# --------------------------------------------------------------------------- array kernels


def max_min_ratio_values(x) -> np.ndarray:
    """``max / min`` over the last axis; NaN where the minimum is 0, any entry is NaN or k < 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < 2:
        return np.full(x.shape[:-1], np.nan)
    return _safe_div(x.max(axis=-1), x.min(axis=-1))   # max/min propagate NaN


def ratio_to_reference_values(x, ref_index: int) -> np.ndarray:
    """``x[..., g] / x[..., ref_index]`` for every g (same shape as ``x``); NaN where the reference is 0."""
    x = np.asarray(x, dtype=np.float64)
    return _safe_div(x, x[..., ref_index:ref_index + 1])


def _max_abs_diff(x: np.ndarray) -> np.ndarray:
    return x.max(axis=-1) - x.min(axis=-1)   # = max_{i,j} |x_i - x_j|


def fdr_values(fmr, fnmr, alpha: float = 0.5) -> np.ndarray:
    """FDR over the last axis (de Freitas Pereira & Marcel 2021); NaN if any rate is NaN or k < 2."""
    m, n = np.asarray(fmr, dtype=np.float64), np.asarray(fnmr, dtype=np.float64)
    a = _check_alpha(alpha)
    if m.shape[-1] < 2:
        return np.full(m.shape[:-1], np.nan)
    return 1.0 - (a * _max_abs_diff(m) + (1.0 - a) * _max_abs_diff(n))


def inequity_rate_values(fmr, fnmr, alpha: float = 0.5) -> np.ndarray:
    """IR over the last axis; a term whose weight is 0 is left out (its factor is 1)."""
    a = _check_alpha(alpha)
    m, n = np.asarray(fmr, dtype=np.float64), np.asarray(fnmr, dtype=np.float64)
    out = np.ones(m.shape[:-1])
    if a > 0:
        out = out * max_min_ratio_values(m) ** a
    if a < 1:
        out = out * max_min_ratio_values(n) ** (1.0 - a)
    if m.shape[-1] < 2:
        out = np.full(m.shape[:-1], np.nan)
    return out


def gini_values(x) -> np.ndarray:
    """Sample-corrected Gini over the last axis (Howard et al. 2022):
    ``n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``; NaN when the mean is 0 or n < 2."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        return np.full(x.shape[:-1], np.nan)
    # sum_{i,j} |x_i - x_j| = 2 * sum_k (2k - n + 1) x_(k) over the sorted values (k = 0..n-1)
    s = np.sort(x, axis=-1)
    coef = 2.0 * np.arange(n) - n + 1.0
    pair_sum = 2.0 * (s * coef).sum(axis=-1)
    return (n / (n - 1.0)) * _safe_div(pair_sum, 2.0 * n * n * x.mean(axis=-1))


def garbe_values(fmr, fnmr, alpha: float = 0.5) -> np.ndarray:
    """GARBE over the last axis; a term whose weight is 0 is left out."""
    a = _check_alpha(alpha)
    m, n = np.asarray(fmr, dtype=np.float64), np.asarray(fnmr, dtype=np.float64)
    out = np.zeros(m.shape[:-1])
    if a > 0:
        out = out + a * gini_values(m)
    if a < 1:
        out = out + (1.0 - a) * gini_values(n)
    if m.shape[-1] < 2:
        out = np.full(m.shape[:-1], np.nan)
    return out


def ser_values(accuracy) -> np.ndarray:
    """SER over the last axis: ``max(1 - acc) / min(1 - acc)``; NaN where the smallest error is 0."""
    return max_min_ratio_values(1.0 - np.asarray(accuracy, dtype=np.float64))


def std_values(x, ddof: int = 1) -> np.ndarray:
    """Standard deviation over the last axis with divisor ``k - ddof``; NaN when ``k - ddof < 1``."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] - ddof < 1:
        return np.full(x.shape[:-1], np.nan)
    return x.std(axis=-1, ddof=ddof)


# --------------------------------------------------------------------------- scalar summaries


def max_min_ratio(rates, rate_name: str = "rate", key: str | None = None) -> DisparityResult:
    """``max_g rate_g / min_g rate_g`` over the groups (NIST's max/min differential, NISTIR 8280).

    Undefined (NaN with a reason) when fewer than 2 groups, when a group's rate is undefined, or
    when the smallest rate is 0 (a ratio to zero is not a number; report the rates instead).
    ``key`` picks the definition/source text (``fmr_max_min_ratio`` / ``fnmr_max_min_ratio``).
    """
    names, x = _as_rates(rates, rate_name)
    key = key or "fmr_max_min_ratio"
    reason = _undefined_inputs(names, (x, rate_name))
    if reason is None and x.min() == 0:
        zero = [g for g, v in zip(names, x) if v == 0]
        reason = (f"{rate_name} is 0 for group(s) {', '.join(zero)}: the max/min ratio has a zero "
                  "denominator")
    value = math.nan if reason else float(max_min_ratio_values(x[None, :])[0])
    return _result(key, value, reason, names)


def fmr_max_min_ratio(fmr) -> DisparityResult:
    """FMR max/min ratio across groups at one threshold (NISTIR 8280's FMR differential)."""
    return max_min_ratio(fmr, "FMR", "fmr_max_min_ratio")


def fnmr_max_min_ratio(fnmr) -> DisparityResult:
    """FNMR max/min ratio across groups at one threshold (NISTIR 8280's FNMR differential)."""
    return max_min_ratio(fnmr, "FNMR", "fnmr_max_min_ratio")


def ratio_to_reference(rates, reference, rate_name: str = "FMR") -> dict[str, DisparityResult]:
    """``rate_g / rate_reference`` for every group g (NISTIR 8280 reports FMR and FNMR relative to
    a reference group). Returns group -> :class:`DisparityResult` (the reference itself gets 1.0
    when its rate is positive). Undefined for every group when the reference rate is 0 or
    undefined; undefined for a group whose own rate is undefined.

    Raises:
        ValueError: ``reference`` is not one of the groups.
    """
    names, x = _as_rates(rates, rate_name)
    ref = str(reference)
    if ref not in names:
        raise ValueError(f"reference group {ref!r} is not among the groups {list(names)}")
    key = "fmr_ratio_to_reference" if rate_name.upper() == "FMR" else "fnmr_ratio_to_reference"
    i = names.index(ref)
    ratios = ratio_to_reference_values(x, i)
    out = {}
    for g, v, r in zip(names, x, ratios):
        if not math.isfinite(x[i]):
            reason = f"{rate_name} of the reference group {ref} is undefined (no comparisons)"
        elif x[i] == 0:
            reason = f"{rate_name} of the reference group {ref} is 0: the ratio has a zero denominator"
        elif not math.isfinite(v):
            reason = f"{rate_name} of group {g} is undefined (no comparisons)"
        else:
            reason = None
        out[g] = _result(key, math.nan if reason else r, reason, (g, ref))
    return out


def fdr(fmr, fnmr, alpha: float = 0.5) -> DisparityResult:
    """Fairness Discrepancy Rate (de Freitas Pereira & Marcel 2021) at one threshold.

    Definition: ``FDR = 1 - (alpha * A + (1 - alpha) * B)`` with ``A = max_{i,j} |FMR_i - FMR_j|``
    and ``B = max_{i,j} |FNMR_i - FNMR_j|`` over the groups; ``alpha`` weighs false matches
    (default 0.5). 1 means every group has the same FMR and FNMR; it is defined with zero rates.
    Undefined with fewer than 2 groups or an undefined group rate.
    """
    a = _check_alpha(alpha)
    names, m, n = _paired(fmr, fnmr)
    reason = _undefined_inputs(names, (m, "FMR"), (n, "FNMR"))
    value = math.nan if reason else float(fdr_values(m[None], n[None], a)[0])
    return _result("fdr", value, reason, names)


def inequity_rate(fmr, fnmr, alpha: float = 0.5) -> DisparityResult:
    """Inequity Rate (NIST's proposal, as evaluated by Howard et al. 2022) at one threshold.

    Definition: ``IR = (max_g FMR_g / min_g FMR_g)^alpha * (max_g FNMR_g / min_g FNMR_g)^(1 - alpha)``;
    ``alpha`` weighs the FMR term (default 0.5). 1 means equal rates. A term with weight 0 is left
    out. Undefined when a weighted term has a zero minimum (Howard et al. point out that IR grows
    without bound as a group's error rate approaches 0), with fewer than 2 groups, or an undefined
    group rate.
    """
    a, names, m, n, used, reason = _weighted_inputs(fmr, fnmr, alpha)
    if reason is None:
        zero = [lab for x, lab in used if x.min() == 0]
        if zero:
            reason = (f"the smallest {' and '.join(zero)} is 0: IR's max/min ratio has a zero "
                      "denominator")
    value = math.nan if reason else float(inequity_rate_values(m[None], n[None], a)[0])
    return _result("ir", value, reason, names)


def gini(x) -> float:
    """Sample-corrected Gini coefficient of the per-group values ``x`` (as used by GARBE):
    ``G = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``. NaN when n < 2 or mean(x) == 0."""
    arr = np.asarray(list(x.values()) if isinstance(x, Mapping) else x, dtype=np.float64).reshape(-1)
    if (arr < 0).any():
        raise ValueError("gini needs non-negative values")
    return float(gini_values(arr[None, :])[0])


def garbe(fmr, fnmr, alpha: float = 0.5) -> DisparityResult:
    """Gini Aggregation Rate for Biometric Equitability (Howard et al. 2022) at one threshold.

    Definition: ``GARBE = alpha * G(FMR) + (1 - alpha) * G(FNMR)`` where ``G`` is the
    sample-corrected Gini coefficient over the ``n`` groups,
    ``G(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``; ``alpha`` weighs the FMR term
    (default 0.5). 0 means equal rates; each Gini term is at most 1. A term with weight 0 is left
    out. Undefined when a weighted rate is 0 for every group (Gini is 0/0), with fewer than 2 groups
    or an undefined group rate.
    """
    a, names, m, n, used, reason = _weighted_inputs(fmr, fnmr, alpha)
    if reason is None:
        zero = [lab for x, lab in used if x.mean() == 0]
        if zero:
            reason = (f"{' and '.join(zero)} is 0 for every group: the Gini coefficient is 0/0")
    value = math.nan if reason else float(garbe_values(m[None], n[None], a)[0])
    return _result("garbe", value, reason, names)


def skewed_error_ratio(accuracy) -> DisparityResult:
    """Skewed Error Ratio (Wang & Deng 2020): ``max_g e_g / min_g e_g`` with ``e_g = 1 - accuracy_g``.

    Undefined when the most accurate group makes no error (zero denominator), with fewer than 2
    groups or an undefined accuracy.
    """
    names, acc = _as_rates(accuracy, "accuracy")
    reason = _undefined_inputs(names, (acc, "accuracy"))
    if reason is None and acc.max() == 1:
        perfect = [g for g, v in zip(names, acc) if v == 1]
        reason = (f"group(s) {', '.join(perfect)} make no error (accuracy 1): SER has a zero "
                  "denominator")
    value = math.nan if reason else float(ser_values(acc[None])[0])
    return _result("ser", value, reason, names)


def accuracy_std(accuracy, ddof: int = 1) -> DisparityResult:
    """Standard deviation of per-group accuracy (Wang & Deng 2020, "STD" on RFW).

    Definition: ``sqrt(sum_g (acc_g - mean)^2 / (k - ddof))`` over the ``k`` groups. Default
    ``ddof=1``: the SAMPLE standard deviation (divisor k - 1); ``ddof=0`` gives the population one
    (divisor k). Wang & Deng do not state the divisor. Undefined with fewer than 2 groups or an
    undefined accuracy.
    """
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population) or 1 (sample), got {ddof!r}")
    names, acc = _as_rates(accuracy, "accuracy")
    reason = _undefined_inputs(names, (acc, "accuracy"))
    value = math.nan if reason else float(std_values(acc[None], ddof)[0])
    definition = None
    if ddof == 0:
        definition = "population standard deviation (divisor k) of the k per-group accuracies (0 = equal)"
    return _result("accuracy_std", value, reason, names, definition)


# --------------------------------------------------------------------------- the metrics.json block


def choose_reference(per_group: Mapping) -> tuple[str, str]:
    """Default reference group and the rule used: the group with most subjects when the entries
    carry ``n_subjects`` (ties: first in sorted order), else the first group in sorted order."""
    names = sorted(str(g) for g in per_group)
    if not names:
        raise ValueError("no groups")
    counts = {str(g): v.get("n_subjects") for g, v in per_group.items()}
    if all(isinstance(c, (int, np.integer)) for c in counts.values()):
        best = max(names, key=lambda g: (counts[g], -names.index(g)))
        return best, "the group with most subjects"
    return names[0], "the first group in sorted order (no subject counts given)"


def disparity_summaries(per_group: Mapping, reference: str | None = None, alpha: float = 0.5,
                        accuracy_ddof: int = 1) -> dict:
    """The metrics.json ``disparity[attr]`` block, without intervals.

    Args:
        per_group: group -> ``{"fmr", "fnmr", "accuracy"}`` (floats in [0, 1] or None when
            undefined; other keys are ignored except ``n_subjects``, used to pick the default
            reference). Pass only the groups that should enter a summary (small=false).
        reference: reference group for the ratios; None picks :func:`choose_reference`.
        alpha: weight of the FMR term in FDR, IR and GARBE.
        accuracy_ddof: 1 (sample, default) or 0 (population) standard deviation of accuracy.

    Returns:
        ``{name: {value, ci: None, reason, definition, source, groups}}`` for every name in
        :data:`SUMMARY_NAMES`, plus ``fmr_ratio_to_reference`` and ``fnmr_ratio_to_reference`` as
        ``{reference, reference_rule, definition, source, by_group: {g: {value, ci: None, reason}}}``.
        JSON-safe (``value`` None when undefined). With no groups at all every value is None with a
        reason and the ratio blocks have ``reference`` None.
    """
    a = _check_alpha(alpha)
    groups = [str(g) for g in per_group]
    fmr, fnmr, acc = ({str(g): e.get(k) for g, e in per_group.items()} for k in ("fmr", "fnmr", "accuracy"))
    results = {
        "fmr_max_min_ratio": fmr_max_min_ratio(fmr),
        "fnmr_max_min_ratio": fnmr_max_min_ratio(fnmr),
        "fdr": fdr(fmr, fnmr, a),
        "ir": inequity_rate(fmr, fnmr, a),
        "garbe": garbe(fmr, fnmr, a),
        "ser": skewed_error_ratio(acc),
        "accuracy_std": accuracy_std(acc, accuracy_ddof),
    }
    out = {name: {**results[name].to_dict(), "ci": None} for name in SUMMARY_NAMES}
    for name in ("fdr", "ir", "garbe"):
        out[name]["alpha"] = a
    if groups:
        if reference is None:
            ref, rule = choose_reference(per_group)
        else:
            ref, rule = str(reference), "given"
    else:
        ref, rule = None, "no groups"
    for kind, rates in (("fmr", fmr), ("fnmr", fnmr)):
        key = f"{kind}_ratio_to_reference"
        d, s = DEFINITIONS[key]
        by_group = {}
        if ref is not None and ref not in rates:
            why = (f"reference group {ref} is not among the groups entering the summaries "
                   f"({', '.join(groups)}): absent or flagged small")
            by_group = {g: {"value": None, "ci": None, "reason": why} for g in groups}
        elif ref is not None:
            for g, r in ratio_to_reference(rates, ref, kind.upper()).items():
                rd = r.to_dict()
                by_group[g] = {"value": rd["value"], "ci": None, "reason": rd["reason"]}
        out[key] = {"reference": ref, "reference_rule": rule, "definition": d, "source": s,
                    "by_group": by_group}
    return out


# --------------------------------------------------------------------------- NIST FRTE demographic table

_FRTE = ("NIST FRTE 1:1 demographic differentials tables (Grother et al., FRTE 1:1 Verification report, "
         "section 'Demographic differentials': per algorithm FNMR and FMR overall, min, max with the worst "
         "group, max/min, max - min, max/mean, max/geometric mean and a Gini coefficient); Gini as in Howard "
         "et al. (2022)")

#: name -> definition of the NIST FRTE table measures (each over the groups entering the summary).
NIST_DEFINITIONS = {
    "overall": "the rate over all comparisons of the run (every group and the mixed ones)",
    "min": "min_g rate_g",
    "max": "max_g rate_g (worst names the group)",
    "max_min_ratio": "max_g rate_g / min_g rate_g (undefined when the minimum is 0)",
    "max_minus_min": "max_g rate_g - min_g rate_g (in the rate's unit, a fraction)",
    "max_over_mean": "max_g rate_g / ((1/k) sum_g rate_g) (undefined when every rate is 0)",
    "max_over_geomean": "max_g rate_g / (prod_g rate_g)^(1/k) (undefined when a rate is 0)",
    "gini": ("sample-corrected Gini coefficient k/(k-1) * sum_i sum_j |x_i - x_j| / (2 k^2 mean x) "
             "(undefined when every rate is 0)"),
}
NIST_NAMES = tuple(NIST_DEFINITIONS)


def max_minus_min_values(x) -> np.ndarray:
    """``max - min`` over the last axis; NaN for k < 2 or a NaN entry."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < 2:
        return np.full(x.shape[:-1], np.nan)
    return _max_abs_diff(x)


def max_over_mean_values(x) -> np.ndarray:
    """``max / mean`` over the last axis; NaN when the mean is 0 or k < 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < 2:
        return np.full(x.shape[:-1], np.nan)
    return _safe_div(x.max(axis=-1), x.mean(axis=-1))


def max_over_geomean_values(x) -> np.ndarray:
    """``max / geometric mean`` over the last axis; NaN when any entry is 0 or k < 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < 2:
        return np.full(x.shape[:-1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        gm = np.exp(np.log(x).mean(axis=-1))
    return _safe_div(x.max(axis=-1), np.where(np.isfinite(gm), gm, 0.0))


def nist_table(rates, overall=None, rate_name: str = "FNMR") -> dict:
    """NIST FRTE's demographic table for one rate over the groups (mapping group -> rate).

    Returns ``{name: {value, reason, definition}}`` for every name in :data:`NIST_NAMES`, plus
    ``worst`` (the group with the highest rate; ties: first in input order), ``best`` (lowest),
    ``source``, ``groups`` and ``rate``. ``overall`` is passed through (a fraction or None). Values
    are None with a reason where undefined (fewer than 2 groups, a zero denominator, an undefined
    group rate).
    """
    names, x = _as_rates(rates, rate_name)
    base = _undefined_inputs(names, (x, rate_name))
    row = x[None, :]
    values = {
        "min": (float(x.min()) if x.size and base is None else math.nan),
        "max": (float(x.max()) if x.size and base is None else math.nan),
        "max_min_ratio": float(max_min_ratio_values(row)[0]),
        "max_minus_min": float(max_minus_min_values(row)[0]),
        "max_over_mean": float(max_over_mean_values(row)[0]),
        "max_over_geomean": float(max_over_geomean_values(row)[0]),
        "gini": float(gini_values(row)[0]),
    }
    zero = [g for g, v in zip(names, x) if v == 0]
    why_zero = {
        "max_min_ratio": f"{rate_name} is 0 for group(s) {', '.join(zero)}: a zero denominator",
        "max_over_geomean": f"{rate_name} is 0 for group(s) {', '.join(zero)}: the geometric mean is 0",
        "max_over_mean": f"{rate_name} is 0 for every group: a zero denominator",
        "gini": f"{rate_name} is 0 for every group: the Gini coefficient is 0/0",
    }
    out = {"rate": rate_name, "source": _FRTE, "groups": [str(g) for g in names]}
    ov = None if overall is None or not math.isfinite(float(overall)) else float(overall)
    out["overall"] = {"value": ov, "reason": None if ov is not None else "no comparisons",
                      "definition": NIST_DEFINITIONS["overall"]}
    for name, v in values.items():
        reason = None
        if base is not None and name not in ("min", "max"):
            reason = base
        elif base is not None:
            reason = base if not x.size or not np.isfinite(x).all() else None
        if reason is None and not math.isfinite(v):
            reason = why_zero.get(name, "undefined for these rates")
        out[name] = {"value": v if reason is None and math.isfinite(v) else None,
                     "reason": reason, "definition": NIST_DEFINITIONS[name]}
    ok = base is None or (x.size and np.isfinite(x).all())
    out["worst"] = str(names[int(np.argmax(x))]) if x.size and ok else None
    out["best"] = str(names[int(np.argmin(x))]) if x.size and ok else None
    return out


# --------------------------------------------------------------------------- ISO/IEC 19795-10 score shifts

_ISO10 = ("ISO/IEC 19795-10:2024, Quantifying biometric system performance variation across demographic "
          "groups: performance variation includes 'shifts in comparison score' of each group's mated and "
          "non-mated distributions. The standard's text was not available here; evalkit's measures are "
          "defined below and are its own operationalisation")

SCORE_SHIFT_DEFINITIONS = {
    "mean_shift": ("mean_g - mean_all: the group's mean comparison score minus the mean over all comparisons "
                   "of that kind (mated or non-mated), in the score's unit (distance minus the comparison's "
                   "threshold: with one threshold for everyone, a plain difference of distances)"),
    "standardised_shift": ("(mean_g - mean_all) / sd_all, sd_all the standard deviation of all comparisons of "
                           "that kind (Cohen's d against the overall distribution)"),
    "ks": ("Kolmogorov-Smirnov distance sup_x |F_g(x) - F_all(x)| between the group's empirical score "
           "distribution and the overall one of that kind (0 = identical, 1 = disjoint)"),
}


def ks_distance(x, y) -> float:
    """sup_t |F_x(t) - F_y(t)| of two samples' empirical CDFs (two-sample Kolmogorov-Smirnov
    statistic); NaN when either sample is empty."""
    x, y = np.sort(np.asarray(x, dtype=np.float64)), np.sort(np.asarray(y, dtype=np.float64))
    if not x.size or not y.size:
        return math.nan
    t = np.concatenate([x, y])
    return float(np.abs(np.searchsorted(x, t, side="right") / x.size
                        - np.searchsorted(y, t, side="right") / y.size).max())
