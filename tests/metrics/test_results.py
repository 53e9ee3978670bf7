"""The one result model: RateEstimate against an independent computation, the small-group rule at
its boundaries, the threshold record, and the flat rows the API turns into tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evalkit.metrics import results
from evalkit.metrics.results import RateEstimate, ThresholdRecord, by_group_rows, disparity_rows, small_rule
from evalkit.metrics.summary import summarise
from evalkit.schema import validate_metrics
from tests.metrics.test_summary import COMMON, T, table


@pytest.mark.parametrize("k,n", [(0, 1), (0, 37), (3, 37), (37, 37), (12, 5000)])
def test_rate_estimate_equals_an_independent_computation(k, n):
    e = RateEstimate.from_counts(k, n, 9, 0.9, rate_name="fnmr")
    assert e.rate == k / n and (e.errors, e.n, e.subjects) == (k, n, 9) and e.estimable and e.reason is None
    lo = 0.0 if k == 0 else stats.beta.ppf(0.05, k, n - k + 1)          # two-sided 90%
    hi = 1.0 if k == n else stats.beta.ppf(0.95, k + 1, n - k)
    assert e.ci == pytest.approx([lo, hi], abs=1e-12)
    if k == 0:   # (1 - p)^n = 0.1 at the one-sided 90% bound
        assert (1 - e.upper) ** n == pytest.approx(0.1, rel=1e-9)
    else:
        assert e.upper is None
    assert e.ci_boot is None and e.ci_boot_reason == results.BOOT_OFF
    assert RateEstimate.from_dict(e.to_dict()) == e


def test_zero_trials_is_not_estimable_and_never_zero():
    e = RateEstimate.from_counts(0, 0, 0, 0.95, rate_name="fpir")
    assert e.rate is None and e.ci is None and e.upper is None and not e.estimable
    assert e.reason == "no non-mated searches: the rate is not estimable"


def test_bootstrap_interval_or_its_reason():
    e = RateEstimate.from_counts(3, 40, 12, 0.95, rate_name="fmr", ci_boot=[0.01, 0.2], ci_boot_reason="ignored")
    assert e.ci_boot == [0.01, 0.2] and e.ci_boot_reason is None
    e = RateEstimate.from_counts(3, 40, 12, 0.95, rate_name="fmr", ci_boot=[float("nan"), 0.2],
                                 ci_boot_reason="too few replicates defined")
    assert e.ci_boot is None and e.ci_boot_reason == "too few replicates defined"
    assert e.with_boot([0.0, 0.1], None).ci_boot == [0.0, 0.1]


def test_the_small_group_rule_at_its_boundaries():
    mc = (10, 30)
    assert small_rule(10, 30, mc, "fmr") == (False, None)
    assert small_rule(9, 30, mc, "fmr") == (True, "9 subjects < 10")
    assert small_rule(10, 29, mc, "fnmr") == (True, "29 genuine comparisons < 30")
    assert small_rule(2, 4, mc, "fpir") == (True, "2 probe subjects < 10; 4 non-mated searches < 30")
    assert small_rule(0, 0, mc, "fte") == (True, "0 subjects < 10; 0 images < 30")
    assert small_rule(0, 0, None, "fnir") == (False, None)
    e = RateEstimate.from_counts(1, 29, 50, 0.95, rate_name="fnir", min_count=mc)
    assert e.small and e.small_reason == "29 mated searches < 30"


def test_threshold_record_from_the_fmr_policies_block():
    block = {"policy": "per_group_fmr", "value": None, "global_value": 0.6, "target_fmr": 0.01, "achieved_fmr": 0.009,
             "resolvable": True, "n_impostor": 1000, "attribute": "sex", "label": "PER-GROUP", "calibration": None,
             "per_group": {"sex": {"f": {"value": 0.55, "achieved_fmr": 0.01, "resolvable": True, "n_impostor": 400},
                                   "x": {"value": 0.6, "achieved_fmr": None, "resolvable": False, "n_impostor": 0,
                                         "note": "global"}}}}
    r = ThresholdRecord.from_choice(block).to_dict()
    assert (r["rate"], r["target"], r["achieved"], r["n"], r["global_value"]) == ("fmr", 0.01, 0.009, 1000, 0.6)
    assert r["per_group"]["sex"]["f"] == {"value": 0.55, "achieved": 0.01, "n": 400, "resolvable": True}
    assert r["per_group"]["sex"]["x"]["note"] == "global" and r["direction"] == "distance"
    assert ThresholdRecord.from_dict(r).to_dict() == r


def _metrics():
    return summarise(table(**T), failure_policy="nonmatch", **{**COMMON, "image_subjects": np.array(["F1", "M1", "M2"])})


def test_summarise_writes_the_schema():
    m = _metrics()
    validate_metrics({**m, "dataset": {"name": "d", "n_samples": 3, "n_subjects": 4},
                      "protocol": {"name": "p", "n_comparisons": 8},
                      "backend": {"name": "b", "family": "f", "distance": "euclidean", "fingerprint": {}}})
    fte = m["failures"]["by_group"]["sex"]["m"]["fte"]
    assert (fte["errors"], fte["n"], fte["subjects"]) == (1, 2, 2)


def test_by_group_rows_hold_every_estimate_once():
    m = _metrics()
    rows = by_group_rows(m)
    assert all(list(r) == list(results.ROW_COLUMNS) for r in rows)
    want = ([("overall", "all", r) for r in ("fnmr", "fmr")]
            + [("sex", g, r) for g in ("f", "m") for r in ("fnmr", "fmr")] + [("sex", "mixed", r) for r in ("fnmr", "fmr")]
            + [("sex", g, "fte") for g in ("f", "m")])
    assert [(r["attribute"], r["group"], r["rate_name"]) for r in rows] == want
    for r in rows:
        e = (m["overall"] if r["attribute"] == "overall" else m["mixed"]["sex"] if r["group"] == "mixed"
             else m["failures"]["by_group"]["sex"][r["group"]] if r["rate_name"] == "fte" else m["groups"]["sex"][r["group"]])
        e = e[r["rate_name"]]
        assert (r["rate"], r["errors"], r["n"], r["subjects"], r["small"]) == (e["rate"], e["errors"], e["n"],
                                                                              e["subjects"], e["small"])
        assert [r["ci_low"], r["ci_high"]] == (e["ci"] or [None, None])
    f = next(r for r in rows if (r["group"], r["rate_name"]) == ("f", "fnmr"))
    assert (f["errors"], f["n"]) == (1, 2) and f["small"] and f["reason"] == "2 subjects < 10; 2 genuine comparisons < 30"


def test_disparity_rows_flatten_summaries_and_ratios_to_a_reference():
    m = {"disparity": {"sex": {
        "fnmr_max_min_ratio": {"value": 2.0, "ci": [1.1, 3.0], "reason": None, "definition": "d", "source": "s",
                               "groups": ["f", "m"]},
        "fnmr_ratio_to_reference": {"reference": "m", "definition": "d", "source": "s",
                                    "by_group": {"f": {"value": 2.0, "ci": None, "reason": None}}}}}}
    rows = disparity_rows(m)
    assert [(r["summary"], r["group"], r["value"], r["ci_low"]) for r in rows] == [
        ("fnmr_max_min_ratio", None, 2.0, 1.1), ("fnmr_ratio_to_reference", "f", 2.0, None)]
    assert rows[1]["reference"] == "m" and rows[0]["groups"] == ["f", "m"]
    assert all(list(r) == list(results.DISPARITY_COLUMNS) for r in rows)
