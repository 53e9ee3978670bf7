"""Impostor-only and enrolment-only summaries against hand counts and scipy's binomial interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from evalkit.metrics.impostor_only import (FNMR_NOT_MEASURABLE, cross_fmr, enrolment_summary, estimate,
                                           impostor_only_summary)


def cp(k, n, c=0.95):
    a = 1 - c
    return [0.0 if k == 0 else beta.ppf(a / 2, k, n - k + 1), 1.0 if k == n else beta.ppf(1 - a / 2, k + 1, n - k)]


def test_estimate_matches_clopper_pearson_and_zero_bound():
    e = estimate(3, 40, 12, 0.95, "impostor comparisons")
    assert e["rate"] == 3 / 40 and np.allclose(e["ci"], cp(3, 40)) and e["upper"] is None and not e["small"]
    z = estimate(0, 50, 20, 0.95, "impostor comparisons")
    assert z["rate"] == 0 and z["upper"] == pytest.approx(1 - 0.05 ** (1 / 50))
    none = estimate(0, 0, 0, 0.95, "impostor comparisons")
    assert none["rate"] is None and not none["estimable"] and "not estimable" in none["reason"]
    small = estimate(1, 20, 5, 0.95, "impostor comparisons")
    assert small["small"] and small["small_reason"] == "5 subjects < 10; 20 impostor comparisons < 30"


def test_impostor_only_groups_cross_and_fnmr_not_measurable():
    # subjects s0..s5: sex f f f m m m; one image each; every pair is an impostor comparison
    sex = {f"s{i}": ("f" if i < 3 else "m") for i in range(6)}
    a, b = zip(*[(f"s{i}", f"s{j}") for i in range(6) for j in range(i + 1, 6)])
    a, b = np.array(a), np.array(b)
    rng = np.random.default_rng(3)
    match = rng.random(len(a)) < 0.4
    ga, gb = np.array([sex[x] for x in a]), np.array([sex[x] for x in b])
    out = impostor_only_summary(match, a, b, {"sex": (ga, gb)}, 0.95, min_count=(0, 0))
    for g in ("f", "m"):
        sel = (ga == g) & (gb == g)
        e = out["groups"]["sex"][g]["fmr"]
        assert (e["errors"], e["n"], e["subjects"]) == (match[sel].sum(), 3, 3)
        assert np.allclose(e["ci"], cp(match[sel].sum(), 3))
        f = out["groups"]["sex"][g]["fnmr"]
        assert f["rate"] is None and not f["estimable"] and f["reason"] == FNMR_NOT_MEASURABLE
    mixed = out["mixed"]["sex"]["fmr"]
    assert (mixed["errors"], mixed["n"]) == (match[ga != gb].sum(), 9)
    assert out["overall"]["fmr"]["n"] == 15 and out["overall"]["fmr"]["errors"] == match.sum()
    c = out["cross_fmr"]["sex"]
    assert c["labels"] == ["f", "m"] and c["n_impostor"] == [[3, 9], [9, 3]]
    assert c["false_matches"][0][1] == c["false_matches"][1][0] == match[ga != gb].sum()
    assert out["disparity"]["sex"]["fnmr_max_min_ratio"]["value"] is None
    rf, rm = (out["groups"]["sex"][g]["fmr"]["rate"] for g in ("f", "m"))
    ratio = out["disparity"]["sex"]["fmr_max_min_ratio"]
    assert ratio["value"] == (max(rf, rm) / min(rf, rm) if min(rf, rm) > 0 else None)


def test_impostor_only_intersections_and_skipped():
    a, b = np.array(["p", "p", "q"]), np.array(["q", "r", "r"])
    g = {"sex": (np.array(["f", "f", "m"]), np.array(["m", "f", "f"])),
         "race": (np.array(["x", "x", "x"]), np.array(["x", "x", "x"]))}
    out = impostor_only_summary(np.array([True, False, True]), a, b, g, 0.95, intersections=[["sex", "race"], ["sex", "age"]])
    assert out["intersections"]["sex x race"]["f x x"]["fmr"]["n"] == 1
    assert "age" in out["intersections_skipped"]["sex x age"]


def test_cross_fmr_none_for_empty_cells():
    c = cross_fmr(np.array([True]), np.array(["a"]), np.array(["a"]))
    assert c["fmr"] == [[1.0]]
    c = cross_fmr(np.array([False, True]), np.array(["a", "a"]), np.array(["b", "b"]))
    assert c["fmr"] == [[None, 0.5], [0.5, None]]


def test_enrolment_summary_by_group_reason_and_intersection():
    failures = [None, "no_face", None, "missing_file", "no_face", None, None, None]
    sex = np.array(["f", "f", "f", "f", "m", "m", "m", "m"])
    race = np.array(["x", "y", "x", "y", "x", "y", "x", "y"])
    out = enrolment_summary(failures, [f"i{k}" for k in range(8)], {"sex": sex, "race": race}, 0.95,
                            min_count=(0, 0), intersections=[["sex", "race"]])
    f = out["groups"]["sex"]["f"]
    assert (f["fte"]["errors"], f["fte"]["n"]) == (2, 4) and np.allclose(f["fte"]["ci"], cp(2, 4))
    assert f["by_reason"] == {"missing_file": 1, "no_face": 1}
    assert out["groups"]["sex"]["m"]["fte"]["errors"] == 1
    assert out["overall"]["fte"]["errors"] == 3 and out["overall"]["by_reason"] == {"missing_file": 1, "no_face": 2}
    fy = out["intersections"]["sex x race"]["f x y"]
    assert (fy["fte"]["errors"], fy["fte"]["n"]) == (2, 2)
    assert out["disparity"]["sex"]["fte_max_min_ratio"]["value"] == pytest.approx((2 / 4) / (1 / 4))
