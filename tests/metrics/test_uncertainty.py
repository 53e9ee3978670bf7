"""uncertainty.py against scipy.stats.binomtest intervals and binomial tail probabilities."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from evalkit.metrics.uncertainty import clopper_pearson, rate_summary, rule_of_three, wilson

CASES = [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (1, 1000), (0, 5000), (37, 250), (499, 500)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_clopper_pearson_matches_binomtest(k, n, confidence):
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    lo, hi = clopper_pearson(k, n, confidence)
    assert lo == pytest.approx(ref.low, rel=1e-9, abs=1e-15)
    assert hi == pytest.approx(ref.high, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("k,n", [(3, 10), (1, 1000), (37, 250)])
def test_clopper_pearson_tail_definition(k, n):
    # exact interval: P(X >= k | lo) = alpha/2 and P(X <= k | hi) = alpha/2
    lo, hi = clopper_pearson(k, n, 0.95)
    assert binom.sf(k - 1, n, lo) == pytest.approx(0.025, rel=1e-6)
    assert binom.cdf(k, n, hi) == pytest.approx(0.025, rel=1e-6)


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 20)[0] == 0.0
    assert clopper_pearson(20, 20)[1] == 1.0
    lo, hi = clopper_pearson(0, 0)
    assert math.isnan(lo) and math.isnan(hi)
    # known value: 0 of 10 at 95% -> upper 1 - 0.025 ** (1/10)
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** 0.1)


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_wilson_matches_binomtest(k, n, confidence):
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = wilson(k, n, confidence)
    assert lo == pytest.approx(ref.low, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(ref.high, rel=1e-9, abs=1e-12)


def test_wilson_known_value_and_edges():
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(0, 7)[0] == 0.0 and wilson(7, 7)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_rule_of_three():
    assert rule_of_three(300) == pytest.approx(0.01)
    assert math.isnan(rule_of_three(0))
    # approximates the exact one-sided 95% bound for large n
    n = 10_000
    assert rule_of_three(n) == pytest.approx(1 - 0.05 ** (1 / n), rel=2e-3)


@pytest.mark.parametrize("bad", [(-1, 5), (6, 5), (1.5, 5), (1, 5.5), (True, 5), ("1", 5)])
def test_bad_counts_raise(bad):
    with pytest.raises(ValueError):
        clopper_pearson(*bad)
    with pytest.raises(ValueError):
        rate_summary(*bad)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95, -0.5])
def test_bad_confidence_raises(confidence):
    with pytest.raises(ValueError):
        clopper_pearson(1, 5, confidence)
    with pytest.raises(ValueError):
        wilson(1, 5, confidence)


def test_rate_summary_values():
    s = rate_summary(np.int64(3), np.int64(40))
    ref = binomtest(3, 40).proportion_ci(method="exact")
    assert s["errors"] == 3 and s["n"] == 40
    assert type(s["errors"]) is int and type(s["n"]) is int
    assert s["rate"] == pytest.approx(0.075)
    assert s["ci"] == [pytest.approx(ref.low), pytest.approx(ref.high)]
    assert all(type(x) is float for x in s["ci"])
    assert s["interval"] == "clopper-pearson"
    assert s["upper_bound_if_zero"] is None


def test_rate_summary_zero_errors_and_empty():
    s = rate_summary(0, 600)
    assert s["rate"] == 0.0
    assert s["ci"][0] == 0.0 and s["ci"][1] > 0.0
    assert s["upper_bound_if_zero"] == pytest.approx(1 - 0.05 ** (1 / 600))
    assert s["upper_bound_if_zero"] == pytest.approx(rule_of_three(600), rel=1e-2)  # ~ the rule of three
    e = rate_summary(0, 0)
    assert e["rate"] is None and e["ci"] == [None, None] and e["upper_bound_if_zero"] is None
    for summary in (s, e, rate_summary(5, 5)):
        json.dumps(summary, allow_nan=False)  # raises on NaN / inf / numpy scalars
