"""Uncertainty of an error rate estimated from ``k`` errors in ``n`` comparisons.

These intervals treat the ``n`` comparisons as independent Bernoulli trials. Comparisons that share
subjects are not independent, so for pairs these intervals are a lower bound on the uncertainty
(a subject-level bootstrap is the honest complement). Zero observed errors is not a zero rate: the
summary reports an upper bound.

Sources:

- Clopper, C. J. & Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated in
  the case of the binomial. Biometrika 26(4), 404-413.
- Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
  JASA 22(158), 209-212.
- Rule of three: Hanley, J. A. & Lippman-Hand, A. (1983). If nothing goes wrong, is everything all
  right? JAMA 249(13), 1743-1745; Jovanovic, B. D. & Levy, P. S. (1997). A look at the rule of
  three. The American Statistician 51(2), 137-139.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from scipy import special

__all__ = ["clopper_pearson", "wilson", "rule_of_three", "zero_errors_upper_bound", "rate_summary"]


def _check_count(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    if isinstance(value, (Integral, np.integer)):
        v = int(value)
    elif isinstance(value, (Real, np.floating)) and float(value).is_integer():
        v = int(value)
    else:
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def _check_kn(k, n) -> tuple[int, int]:
    k = _check_count(k, "k")
    n = _check_count(n, "n")
    if k > n:
        raise ValueError(f"k ({k}) cannot exceed n ({n})")
    return k, n


def _check_confidence(confidence) -> float:
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return c


def clopper_pearson(k, n, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) two-sided binomial confidence interval for ``k / n``.

    Definition: with ``a = 1 - confidence``, ``lo = Beta(a/2; k, n-k+1)`` quantile and
    ``hi = Beta(1-a/2; k+1, n-k)`` quantile; ``lo = 0`` when ``k = 0`` and ``hi = 1`` when
    ``k = n``. Returns ``(nan, nan)`` when ``n == 0``. The quantile is
    ``scipy.special.betaincinv`` (the inverse regularised incomplete beta function, the value
    ``scipy.stats.beta.ppf`` returns, without importing scipy.stats: a second off every run).
    """
    k, n = _check_kn(k, n)
    c = _check_confidence(confidence)
    if n == 0:
        return float("nan"), float("nan")
    a = 1.0 - c
    lo = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, a / 2.0))
    hi = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1.0 - a / 2.0))
    return lo, hi


def wilson(k, n, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval for ``k / n``, without continuity correction.

    Definition: with ``p = k / n`` and ``z`` the ``1 - (1 - confidence) / 2`` normal quantile,
    ``(p + z^2/(2n) -+ z * sqrt(p(1-p)/n + z^2/(4n^2))) / (1 + z^2/n)``; exactly 0 at ``k = 0``
    and 1 at ``k = n``. Returns ``(nan, nan)`` when ``n == 0``.
    """
    k, n = _check_kn(k, n)
    c = _check_confidence(confidence)
    if n == 0:
        return float("nan"), float("nan")
    z = float(special.ndtri(1.0 - (1.0 - c) / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)


def rule_of_three(n) -> float:
    """Approximate one-sided 95% upper bound on a rate when 0 events are seen in ``n`` trials.

    Definition: ``3 / n`` (Hanley & Lippman-Hand 1983; Jovanovic & Levy 1997), the large-``n``
    approximation of the exact bound ``1 - 0.05 ** (1 / n)`` since ``-ln(0.05) ~= 3``. Always the
    95% bound, whatever confidence is used elsewhere. NaN when ``n == 0``.
    """
    n = _check_count(n, "n")
    return 3.0 / n if n else float("nan")


def zero_errors_upper_bound(n, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound on a rate when 0 events are seen in ``n`` trials.

    Definition: the p solving ``(1 - p) ** n = 1 - confidence``, i.e. ``1 - (1 - confidence) ** (1 / n)``
    (the one-sided Clopper-Pearson bound at k = 0; Jovanovic & Levy 1997). Unlike the rule of three
    it stays below 1 for small ``n``; for large ``n`` at 95% it approaches ``3 / n``. NaN when n == 0.
    """
    n = _check_count(n, "n")
    c = _check_confidence(confidence)
    return 1.0 - (1.0 - c) ** (1.0 / n) if n else float("nan")


def rate_summary(k, n, confidence: float = 0.95) -> dict:
    """A JSON-safe summary of ``k`` errors in ``n`` comparisons.

    Returns ``{"errors": k, "n": n, "rate": k / n, "ci": [lo, hi], "interval": "clopper-pearson",
    "confidence": confidence, "upper_bound_if_zero": bound}`` where ``ci`` is the Clopper-Pearson
    (1934) interval and ``upper_bound_if_zero`` is the exact one-sided bound at the same confidence
    (``zero_errors_upper_bound``; about 3/n at 95%, the rule of three) when ``k == 0``, else None. When ``n == 0`` the rate, interval and bound are None (never NaN).
    Values are Python ints, floats or None.
    """
    k, n = _check_kn(k, n)
    c = _check_confidence(confidence)
    if n == 0:
        rate, ci, bound = None, [None, None], None
    else:
        lo, hi = clopper_pearson(k, n, c)
        rate, ci = k / n, [lo, hi]
        bound = zero_errors_upper_bound(n, c) if k == 0 else None
    return {
        "errors": k,
        "n": n,
        "rate": rate,
        "ci": ci,
        "interval": "clopper-pearson",
        "confidence": c,
        "upper_bound_if_zero": bound,
    }
