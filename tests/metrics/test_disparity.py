"""disparity.py against the published formulas written out independently (plain loops here),
hand counts on tiny cases, and the NaN + reason cases (never inf, never a crash)."""

from __future__ import annotations

import itertools
import json
import math
import statistics

import numpy as np
import pytest

from evalkit.metrics import disparity as d


# --------------------------------------------------------------------------- the formulas, by hand


def ref_gini(x):
    """Howard et al. (2022): G = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)), double loop."""
    n = len(x)
    mean = sum(x) / n
    total = sum(abs(xi - xj) for xi in x for xj in x)
    return n / (n - 1) * total / (2 * n * n * mean)


def ref_fdr(fmr, fnmr, alpha):
    """de Freitas Pereira & Marcel (2021): 1 - (alpha * max|FMR_i - FMR_j| + (1-alpha) * max|FNMR_i - FNMR_j|)."""
    a = max(abs(x - y) for x, y in itertools.product(fmr, fmr))
    b = max(abs(x - y) for x, y in itertools.product(fnmr, fnmr))
    return 1 - (alpha * a + (1 - alpha) * b)


def ref_ir(fmr, fnmr, alpha):
    return (max(fmr) / min(fmr)) ** alpha * (max(fnmr) / min(fnmr)) ** (1 - alpha)


def ref_garbe(fmr, fnmr, alpha):
    return alpha * ref_gini(fmr) + (1 - alpha) * ref_gini(fnmr)


def ref_ser(acc):
    err = [1 - a for a in acc]
    return max(err) / min(err)


FMR = {"female": 0.0021, "male": 0.0008, "other": 0.0013}
FNMR = {"female": 0.031, "male": 0.024, "other": 0.052}
ACC = {"female": 0.962, "male": 0.975, "other": 0.948}


def test_hand_counts_tiny_case():
    # two groups, FMR 1/1000 and 4/1000, FNMR 2/100 and 3/100, accuracy 0.99 and 0.97
    fmr, fnmr, acc = {"a": 0.001, "b": 0.004}, {"a": 0.02, "b": 0.03}, {"a": 0.99, "b": 0.97}
    assert d.fmr_max_min_ratio(fmr).value == pytest.approx(4.0)
    assert d.fnmr_max_min_ratio(fnmr).value == pytest.approx(1.5)
    assert d.fdr(fmr, fnmr).value == pytest.approx(1 - (0.5 * 0.003 + 0.5 * 0.01))
    assert d.inequity_rate(fmr, fnmr).value == pytest.approx(math.sqrt(4.0 * 1.5))
    # Gini of two values x<y: 2/1 * 2(y-x) / (2*4*(x+y)/2) = (y-x)/(x+y)
    assert d.gini([1.0, 3.0]) == pytest.approx(0.5)
    assert d.garbe(fmr, fnmr).value == pytest.approx(0.5 * 0.003 / 0.005 + 0.5 * 0.01 / 0.05)
    assert d.skewed_error_ratio(acc).value == pytest.approx(3.0)
    # sample std of (0.99, 0.97) = 0.02 / sqrt(2); population = 0.01
    assert d.accuracy_std(acc).value == pytest.approx(0.02 / math.sqrt(2))
    assert d.accuracy_std(acc, ddof=0).value == pytest.approx(0.01)
    r = d.ratio_to_reference(fmr, "a", "FMR")
    assert r["a"].value == 1.0 and r["b"].value == pytest.approx(4.0)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_against_published_formulas(alpha):
    m, n, a = list(FMR.values()), list(FNMR.values()), list(ACC.values())
    assert d.fmr_max_min_ratio(FMR).value == pytest.approx(max(m) / min(m))
    assert d.fnmr_max_min_ratio(FNMR).value == pytest.approx(max(n) / min(n))
    assert d.fdr(FMR, FNMR, alpha).value == pytest.approx(ref_fdr(m, n, alpha))
    assert d.inequity_rate(FMR, FNMR, alpha).value == pytest.approx(ref_ir(m, n, alpha))
    assert d.garbe(FMR, FNMR, alpha).value == pytest.approx(ref_garbe(m, n, alpha))
    assert d.skewed_error_ratio(ACC).value == pytest.approx(ref_ser(a))
    assert d.accuracy_std(ACC).value == pytest.approx(statistics.stdev(a))
    assert d.accuracy_std(ACC, ddof=0).value == pytest.approx(statistics.pstdev(a))
    ratios = d.ratio_to_reference(FNMR, "male", "FNMR")
    for g in FNMR:
        assert ratios[g].value == pytest.approx(FNMR[g] / FNMR["male"])


def test_random_rates_match_loops_and_kernels():
    rng = np.random.default_rng(7)
    for _ in range(50):
        k = int(rng.integers(2, 7))
        m = rng.uniform(1e-4, 0.05, k)
        n = rng.uniform(1e-3, 0.2, k)
        acc = rng.uniform(0.8, 0.999, k)
        alpha = float(rng.uniform())
        assert d.gini(m) == pytest.approx(ref_gini(list(m)))
        assert d.fdr(m, n, alpha).value == pytest.approx(ref_fdr(m, n, alpha))
        assert d.inequity_rate(m, n, alpha).value == pytest.approx(ref_ir(m, n, alpha))
        assert d.garbe(m, n, alpha).value == pytest.approx(ref_garbe(list(m), list(n), alpha))
        assert d.skewed_error_ratio(acc).value == pytest.approx(ref_ser(acc))
    # the (R, k) kernels give, row by row, what the scalar functions give
    mm = rng.uniform(0, 0.01, (30, 4))
    mm[::7, 2] = 0.0
    nn = rng.uniform(0.001, 0.1, (30, 4))
    for kern, scalar in ((d.garbe_values, d.garbe), (d.inequity_rate_values, d.inequity_rate),
                         (d.fdr_values, d.fdr)):
        vals = kern(mm, nn, 0.3)
        for i in range(30):
            expect = scalar(mm[i], nn[i], 0.3).value
            assert (math.isnan(expect) and math.isnan(vals[i])) or vals[i] == pytest.approx(expect)


def test_gini_bounds_and_invariance():
    # Gini is scale invariant, 0 for equal values, and the n/(n-1) correction makes one non-zero
    # value among n reach exactly 1
    assert d.gini([0.2, 0.2, 0.2]) == 0.0
    assert d.gini([0.0, 0.0, 0.0, 0.7]) == pytest.approx(1.0)
    x = np.array([0.01, 0.03, 0.02, 0.07])
    assert d.gini(x) == pytest.approx(d.gini(10 * x))


def test_direction_and_fair_values():
    same = {"a": 0.01, "b": 0.01, "c": 0.01}
    assert d.fdr(same, same).value == 1.0
    assert d.inequity_rate(same, same).value == 1.0
    assert d.garbe(same, same).value == 0.0
    assert d.fmr_max_min_ratio(same).value == 1.0
    assert d.accuracy_std({"a": 0.9, "b": 0.9}).value == 0.0


def test_undefined_values_have_reasons_never_inf():
    one = d.fdr({"a": 0.1}, {"a": 0.2})
    assert math.isnan(one.value) and "at least 2 groups" in one.reason
    z = d.fmr_max_min_ratio({"a": 0.0, "b": 0.003})
    assert math.isnan(z.value) and "0 for group(s) a" in z.reason
    ir = d.inequity_rate({"a": 0.0, "b": 0.003}, {"a": 0.01, "b": 0.02})
    assert math.isnan(ir.value) and "smallest FMR is 0" in ir.reason
    # a term with weight 0 is left out: FNMR alone is defined
    assert d.inequity_rate({"a": 0.0, "b": 0.003}, {"a": 0.01, "b": 0.02}, alpha=0.0).value == pytest.approx(2.0)
    g = d.garbe({"a": 0.0, "b": 0.0}, {"a": 0.01, "b": 0.02})
    assert math.isnan(g.value) and "0/0" in g.reason
    assert d.garbe({"a": 0.0, "b": 0.0}, {"a": 0.01, "b": 0.03}, alpha=0.0).value == pytest.approx(0.5)
    # FDR is defined with zero rates
    assert d.fdr({"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 0.1}).value == pytest.approx(0.95)
    s = d.skewed_error_ratio({"a": 1.0, "b": 0.9})
    assert math.isnan(s.value) and "no error" in s.reason
    none = d.fnmr_max_min_ratio({"a": None, "b": 0.1})
    assert math.isnan(none.value) and "undefined (no comparisons) for group(s) a" in none.reason
    ref0 = d.ratio_to_reference({"a": 0.0, "b": 0.1}, "a", "FNMR")
    assert all(math.isnan(r.value) and "zero denominator" in r.reason for r in ref0.values())
    assert math.isnan(d.accuracy_std({"a": 0.9}).value)
    assert math.isnan(d.gini([0.0, 0.0]))
    # exhaustive small grid with zeros: every value finite or NaN with a reason
    grid = [0.0, 1e-4, 0.5, 1.0]
    for a, b in itertools.product(grid, grid):
        for r in (d.fmr_max_min_ratio([a, b]), d.inequity_rate([a, b], [b, a]), d.garbe([a, b], [b, a]),
                  d.skewed_error_ratio([a, b]), d.fdr([a, b], [b, a])):
            assert not math.isinf(r.value)
            assert (r.reason is None) == math.isfinite(r.value)
            json.dumps(r.to_dict(), allow_nan=False)


def test_bad_input_raises_clearly():
    with pytest.raises(ValueError, match="rates in \\[0, 1\\]"):
        d.fmr_max_min_ratio({"a": 1.5, "b": 0.1})
    with pytest.raises(ValueError, match="same groups"):
        d.fdr({"a": 0.1, "b": 0.2}, {"a": 0.1, "c": 0.2})
    with pytest.raises(ValueError, match="alpha"):
        d.garbe({"a": 0.1, "b": 0.2}, {"a": 0.1, "b": 0.2}, alpha=1.5)
    with pytest.raises(ValueError, match="reference group"):
        d.ratio_to_reference({"a": 0.1}, "zz")


def test_mappings_are_aligned_by_group_name():
    fmr = {"a": 0.001, "b": 0.004}
    fnmr = {"b": 0.03, "a": 0.02}   # other order
    assert d.fdr(fmr, fnmr).value == pytest.approx(1 - (0.5 * 0.003 + 0.5 * 0.01))


def test_disparity_summaries_block():
    per_group = {g: {"fmr": FMR[g], "fnmr": FNMR[g], "accuracy": ACC[g], "n_subjects": n}
                 for g, n in zip(FMR, (120, 300, 40))}
    block = d.disparity_summaries(per_group)
    json.dumps(block, allow_nan=False)
    for name in d.SUMMARY_NAMES:
        e = block[name]
        assert set(e) >= {"value", "ci", "reason", "definition", "source", "groups"}
        assert e["groups"] == list(FMR)
    assert block["garbe"]["value"] == pytest.approx(ref_garbe(list(FMR.values()), list(FNMR.values()), 0.5))
    ref = block["fmr_ratio_to_reference"]
    assert ref["reference"] == "male" and "most subjects" in ref["reference_rule"]
    assert ref["by_group"]["female"]["value"] == pytest.approx(FMR["female"] / FMR["male"])
    # a reference that is not among the groups: every ratio None with a reason, no crash
    block2 = d.disparity_summaries(per_group, reference="unlabelled")
    assert all(v["value"] is None and "not among" in v["reason"]
               for v in block2["fnmr_ratio_to_reference"]["by_group"].values())
    # a single group: every summary None with a reason
    block1 = d.disparity_summaries({"male": per_group["male"]})
    assert all(block1[n]["value"] is None and block1[n]["reason"] for n in d.SUMMARY_NAMES)
    empty = d.disparity_summaries({})
    assert empty["fdr"]["value"] is None and empty["fmr_ratio_to_reference"]["reference"] is None
