"""NIST FRTE demographic table and ISO/IEC 19795-10 score shifts: independent computations."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from evalkit.metrics import bootstrap as bs
from evalkit.metrics import disparity as d
from evalkit.metrics import stats as st


def test_nist_table_by_hand():
    rates = {"a": 0.02, "b": 0.05, "c": 0.08}
    t = d.nist_table(rates, overall=0.04, rate_name="FNMR")
    assert t["worst"] == "c" and t["best"] == "a"
    assert t["min"]["value"] == 0.02 and t["max"]["value"] == 0.08
    assert t["max_min_ratio"]["value"] == pytest.approx(4.0)
    assert t["max_minus_min"]["value"] == pytest.approx(0.06)
    assert t["max_over_mean"]["value"] == pytest.approx(0.08 / statistics.mean(rates.values()))
    assert t["max_over_geomean"]["value"] == pytest.approx(0.08 / statistics.geometric_mean(rates.values()))
    x = list(rates.values())
    g = 3 / 2 * sum(abs(p - q) for p in x for q in x) / (2 * 9 * statistics.mean(x))
    assert t["gini"]["value"] == pytest.approx(g)
    assert t["overall"]["value"] == 0.04


def test_nist_table_undefined_values_have_reasons():
    t = d.nist_table({"a": 0.0, "b": 0.1})
    assert t["max_min_ratio"]["value"] is None and "zero denominator" in t["max_min_ratio"]["reason"]
    assert t["max_over_geomean"]["value"] is None and t["max_over_geomean"]["reason"]
    assert t["max_over_mean"]["value"] == pytest.approx(2.0) and t["gini"]["value"] == pytest.approx(1.0)
    one = d.nist_table({"a": 0.1})
    assert one["max_min_ratio"]["value"] is None and "at least 2 groups" in one["max_min_ratio"]["reason"]


def _data(seed=1, k=3, n=60):
    rng = np.random.default_rng(seed)
    e, s, g = [], [], []
    for i in range(k):
        subj = np.repeat(np.arange(n) + 1000 * i, 5)
        p = rng.beta(2, 14, n)[subj - 1000 * i]
        e.append(rng.random(subj.size) < p * (1 + 0.5 * i)); s.append(subj); g.append(np.full(subj.size, f"g{i}"))
    return (np.concatenate(x) for x in (e, s, g))


def test_nist_intervals_one_ratio_one_interval_and_bracket_the_value():
    e, s, g = _data()
    boot = bs.cluster_bootstrap(e, np.ones(e.size, bool), s, s, g, replicates=300, seed=0)
    rates = {x: boot.estimate[x]["fnmr"] for x in boot.groups}
    t = bs.nist_table_with_ci(rates, boot, "fnmr", overall=float(e.mean()), overall_ci=[0.1, 0.2])
    block = bs.disparity_summaries_with_ci({x: {**boot.estimate[x], "n_subjects": 60} for x in boot.groups}, boot)
    assert t["max_min_ratio"]["ci"] == block["fnmr_max_min_ratio"]["ci"]        # one ratio, one interval
    for name in ("min", "max", "max_min_ratio", "max_minus_min", "max_over_mean", "max_over_geomean", "gini"):
        lo, hi = t[name]["ci"]
        assert lo <= t[name]["value"] <= hi and hi > lo, name
    # max - min by hand: sup-t over the three pairwise differences
    m = boot.matrix("fnmr", list(boot.groups))
    est = np.array(list(rates.values()))
    i, j = np.triu_indices(3, 1)
    dif, dobs = m[:, i] - m[:, j], est[i] - est[j]
    se = dif.std(axis=0, ddof=1)
    c = np.quantile((np.abs(dif - dobs) / se).max(axis=1), 0.95)
    lo, hi = dobs - c * se, dobs + c * se
    lo_named = np.where(dobs > 0, lo, -hi)            # the lower bound in the observed order
    np.testing.assert_allclose(t["max_minus_min"]["ci"], [lo_named.max(), np.maximum(abs(lo), abs(hi)).max()])
    assert t["overall"]["ci"] == [0.1, 0.2]


def test_score_shifts_against_direct_computation():
    rng = np.random.default_rng(5)
    n = 80
    subj = np.repeat(np.arange(n), 4)
    grp = np.where(np.arange(n) < 40, "a", "b")
    gen = rng.normal(0, 1, subj.size) + np.where(grp[subj] == "a", 0.3, 0.0)
    a = rng.integers(0, n, 400)
    b = (a + rng.integers(1, 40, a.size)) % n
    imp = rng.normal(2, 1, a.size)
    x = np.concatenate([gen, imp])
    mated = np.r_[np.ones(gen.size, bool), np.zeros(imp.size, bool)]
    sa, sb = np.r_[subj, a], np.r_[subj, b]
    ga, gb = grp[sa], grp[sb]
    entries = {g: {"small_fmr": False, "small_fnmr": False} for g in ("a", "b")}
    out = st.score_shifts(x, mated, sa, sb, ga, gb, entries, 0.95)
    ra = out["by_group"]["a"]["mated"]
    ma = gen[grp[subj] == "a"]
    assert ra["mean_shift"] == pytest.approx(ma.mean() - gen.mean())
    assert ra["standardised_shift"] == pytest.approx((ma.mean() - gen.mean()) / gen.std(ddof=1))
    assert ra["ks"] == pytest.approx(stats.ks_2samp(ma, gen).statistic)
    lo, hi = ra["ci"]
    assert lo < ra["mean_shift"] < hi
    # the interval by hand: one-way cluster-robust (CR1) variance of mean_a - mean_all over subjects,
    # Student's t with (group a's 40 subjects - 1) degrees of freedom
    in_a = grp[subj] == "a"
    psi = np.where(in_a, (gen - ma.mean()) / in_a.sum(), 0.0) - (gen - gen.mean()) / gen.size
    T = np.bincount(subj, weights=psi, minlength=n)
    v = (T ** 2).sum() * n / (n - 1)
    h = stats.t.ppf(0.975, 39) * np.sqrt(v)
    assert ra["subjects"] == 40
    np.testing.assert_allclose(ra["ci"], [ra["mean_shift"] - h, ra["mean_shift"] + h], rtol=1e-10)
    np.testing.assert_allclose(ra["standardised_ci"], np.array(ra["ci"]) / gen.std(ddof=1), rtol=1e-10)
    nm = out["by_group"]["b"]["non_mated"]
    sel = (ga[~mated[:, None].ravel()] == "b") if False else ((ga == "b") & (gb == "b") & ~mated)
    assert nm["mean_shift"] == pytest.approx(x[sel].mean() - imp.mean())
    assert nm["n"] == int(sel.sum())


def test_label_levels():
    subj = ["p1", "p1", "p2", "p2", "p3"]
    assert st.label_levels(subj, {"sex": ["f", "f", "m", "m", "f"], "age": ["0-12", "20-39", "40-59", "40-59", "x"]}) \
        == {"sex": "subject", "age": "image"}


def test_one_ratio_one_interval_in_metrics_json():
    """Issue 12 item 1 (LFW showed 1.31x (0.93-1.78) and, for the same ratio, 1.02-1.78): in a
    run's metrics.json the female/male FNMR ratio to the reference, the FNMR max/min ratio and the
    NIST table's max/min are one number with one interval."""
    from evalkit.metrics.summary import summarise
    from evalkit.scores import ScoreTable

    rng = np.random.default_rng(2)
    n = 120
    subj = np.repeat(np.arange(n), 3)
    sex = np.where(np.arange(n) < 60, "f", "m")
    gen = rng.normal(0.4, 0.15, subj.size) + np.where(sex[subj] == "f", 0.05, 0.0) + rng.normal(0, 0.1, n)[subj]
    a = rng.integers(0, n, 3000)
    b = (a + rng.integers(1, n, a.size)) % n
    imp = rng.normal(1.0, 0.15, a.size)
    dist = np.r_[gen, imp]
    sa, sb = np.r_[subj, a], np.r_[subj, b]
    mated = np.r_[np.ones(gen.size, bool), np.zeros(imp.size, bool)]
    t = ScoreTable(sample_a=np.array([f"{s}/a{i}" for i, s in enumerate(sa)]),
                   sample_b=np.array([f"{s}/b{i}" for i, s in enumerate(sb)]),
                   subject_a=sa.astype(str), subject_b=sb.astype(str), mated=mated, fold=np.full(dist.size, -1),
                   distance=dist, failed=np.zeros(dist.size, bool), groups={"sex": (sex[sa], sex[sb])})
    m = summarise(t, threshold_policy="fixed", target_fmr=1e-3, threshold_value=0.6, failure_policy="nonmatch",
                  confidence=0.95, image_failures=[None] * 10, image_groups={"sex": np.array(["f"] * 10)},
                  header={"experiment": "x"}, min_count=(10, 30), bootstrap={"replicates": 300, "seed": 0},
                  reference={"sex": "m"})
    d = m["disparity"]["sex"]
    assert m["groups"]["sex"]["f"]["fnmr"]["rate"] > m["groups"]["sex"]["m"]["fnmr"]["rate"]
    ratio = d["fnmr_ratio_to_reference"]["by_group"]["f"]
    mm = d["fnmr_max_min_ratio"]
    nist = m["nist"]["sex"]["fnmr"]["max_min_ratio"]
    assert ratio["value"] == pytest.approx(mm["value"]) == pytest.approx(nist["value"])
    assert ratio["ci"] is not None
    assert ratio["ci"] == pytest.approx(mm["ci"]) and mm["ci"] == nist["ci"]
    assert d["fnmr_ratio_to_reference"]["by_group"]["m"]["ci"] is None          # the reference to itself
    assert "reference group itself" in d["fnmr_ratio_to_reference"]["by_group"]["m"]["ci_reason"]
    for tst in m["tests"]["sex"]["fnmr"]:
        assert "permutation" in tst["method"] and tst["estimable"]
