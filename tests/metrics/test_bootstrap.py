"""bootstrap.py: weights against a per-comparison loop, hand counts, seeding, intervals, and the
simulation acceptance tests (coverage of the clustered interval; type-I error of the clustered
test versus the naive ones), all deterministic with fixed seeds."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from evalkit.metrics import bootstrap as bs
from evalkit.metrics import disparity as disp
from evalkit.metrics.groups import group_rates


# --------------------------------------------------------------------------- tiny fixtures


def tiny():
    """3 subjects in group g, 1 in group h. Rows: (error, mated, subject_a, subject_b)."""
    rows = [
        (True, True, "s1", "s1"),    # genuine s1, false non-match
        (False, True, "s1", "s1"),   # genuine s1
        (False, True, "s2", "s2"),   # genuine s2
        (True, False, "s1", "s2"),   # impostor s1-s2, false match
        (False, False, "s2", "s3"),  # impostor s2-s3
        (False, False, "s1", "s3"),  # impostor s1-s3
        (True, True, "t1", "t1"),    # genuine t1 (group h)
        (False, False, "s1", "t1"),  # impostor across groups: mixed, enters no group
    ]
    e, m, a, b = (np.array(c) for c in zip(*rows))
    grp = {"s1": "g", "s2": "g", "s3": "g", "t1": "h"}
    return e, m, a, b, np.array([grp[x] for x in a]), np.array([grp[x] for x in b])


def loop_rates(counts, e, m, a, b, ga, gb, group):
    """Weighted FMR/FNMR of one group for a multiplicity dict, one comparison at a time."""
    fm = ni = fnm = ng = 0.0
    for ei, mi, ai, bi, x, y in zip(e, m, a, b, ga, gb):
        if not (x == y == group):
            continue
        if mi:
            w = counts[ai]           # a genuine comparison has one subject
            ng += w
            fnm += w * ei
        else:
            w = counts[ai] * counts[bi]
            ni += w
            fm += w * ei
    return (fm / ni if ni else math.nan), (fnm / ng if ng else math.nan)


def test_weights_by_hand_on_tiny_case():
    e, m, a, b, ga, gb = tiny()
    data = bs._prepare(e, m, a, b, ga, gb)
    plan = bs._plans(data)[data.names.index("g")]
    order = ["s1", "s2", "s3", "t1"]    # subject codes are in sorted order
    # multiplicities (s1, s2, s3) = (2, 0, 1): FNMR = 2*1 / (2*2 + 0) = 0.5; FMR: only s1-s3 has
    # weight 2*1 = 2, no error there -> 0
    # (0, 1, 2): FNMR = 0 / 1 = 0; FMR: s2-s3 weight 2 -> 0 / 2
    # (1, 2, 0): FNMR = 1 / (2 + 2) = 0.25; FMR: s1-s2 weight 2, an error -> 2 / 2 = 1
    counts = np.array([[2, 0, 1, 1], [0, 1, 2, 1], [1, 2, 0, 1]], dtype=float)
    fm, ni, fnm, ng = bs._weighted_sums(counts, plan)
    np.testing.assert_allclose(fnm / ng, [0.5, 0.0, 0.25])
    np.testing.assert_allclose(fm / ni, [0.0, 0.0, 1.0])
    np.testing.assert_allclose(ni, [2, 2, 2])
    # the columns of counts are the subject codes: s1, s2, s3, t1 in that order
    np.testing.assert_array_equal(data.sa, [order.index(x) for x in a])
    np.testing.assert_array_equal(data.sb, [order.index(x) for x in b])


def test_weights_match_a_loop_on_random_data():
    rng = np.random.default_rng(3)
    n_subj, n = 30, 400
    subj = np.array([f"p{i:02d}" for i in range(n_subj)])
    lab = rng.choice(["x", "y"], n_subj)
    a = rng.integers(0, n_subj, n)
    b = rng.integers(0, n_subj, n)
    m = rng.random(n) < 0.3
    b[m] = a[m]
    b[~m & (a == b)] = (a[~m & (a == b)] + 1) % n_subj
    e = rng.random(n) < 0.2
    sa, sb, ga, gb = subj[a], subj[b], lab[a], lab[b]
    data = bs._prepare(e, m, sa, sb, ga, gb)
    assert data.n_subjects == n_subj    # codes follow the sorted subject ids
    counts = rng.integers(0, 4, (5, n_subj)).astype(float)
    for j, g in enumerate(data.names):
        fm, ni, fnm, ng = bs._weighted_sums(counts, bs._plans(data)[j])
        for r in range(5):
            cd = dict(zip(sorted(subj), counts[r]))
            fmr, fnmr = loop_rates(cd, e, m, sa, sb, ga, gb, g)
            assert (fm[r] / ni[r] if ni[r] else math.nan) == pytest.approx(fmr, nan_ok=True)
            assert (fnm[r] / ng[r] if ng[r] else math.nan) == pytest.approx(fnmr, nan_ok=True)


def test_estimates_equal_group_rates():
    rng = np.random.default_rng(11)
    n_subj, n = 50, 1500
    subj = np.array([f"p{i:02d}" for i in range(n_subj)])
    lab = rng.choice(["A", "B", "C"], n_subj)
    a = rng.integers(0, n_subj, n)
    b = rng.integers(0, n_subj, n)
    m = rng.random(n) < 0.4
    b[m] = a[m]
    b[~m & (a == b)] = (a[~m & (a == b)] + 1) % n_subj
    scores = rng.normal(1.0, 0.4, n) - 0.3 * m
    e = bs.errors_from_decision(scores - 0.9, m)
    boot = bs.cluster_bootstrap(e, m, subj[a], subj[b], lab[a], lab[b], replicates=20, seed=1)
    ref = group_rates(scores, m, subj[a], subj[b], lab[a], lab[b], 0.9)["by_group"]
    assert boot.groups == tuple(sorted(ref))
    for g, s in ref.items():
        assert boot.estimate[g]["fmr"] == pytest.approx(s["fmr"]["rate"])
        assert boot.estimate[g]["fnmr"] == pytest.approx(s["fnmr"]["rate"])
        assert boot.counts[g]["false_matches"] == s["fmr"]["errors"]
        assert boot.counts[g]["n_genuine"] == s["fnmr"]["n"]
        assert boot.counts[g]["n_subjects"] == s["n_subjects"]
        n_all = s["fmr"]["n"] + s["fnmr"]["n"]
        acc = 1 - (s["fmr"]["errors"] + s["fnmr"]["errors"]) / n_all
        assert boot.estimate[g]["accuracy"] == pytest.approx(acc)


def test_stratified_multiplicities_and_seeding():
    rng = np.random.default_rng(0)
    strata = np.array([0, 0, 0, 1, 1, 2, 0, 2, 2, 2])
    c = bs._multiplicities(rng, strata, 3, 50)
    for s, size in ((0, 4), (1, 2), (2, 4)):
        assert (c[:, strata == s].sum(axis=1) == size).all()
    e, m, a, b, ga, gb = tiny()
    one = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=64, seed=5)
    two = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=64, seed=5)
    other = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=64, seed=6)
    np.testing.assert_array_equal(one.fnmr["g"], two.fnmr["g"])
    assert not np.array_equal(one.fnmr["g"], other.fnmr["g"], equal_nan=True)
    assert one.info() == {"replicates": 64, "seed": 5, "confidence": 0.95, "unit": "subject"}


def test_replicates_in_blocks_are_deterministic(monkeypatch):
    e, m, a, b, ga, gb = tiny()
    whole = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=400, seed=2)
    # force blocks of 3 replicates (memory bound): the stream is consumed differently, so the
    # numbers differ from one block, but a rerun gives the same numbers and the same distribution
    monkeypatch.setattr(bs, "_BLOCK_ENTRIES", 3 * 4)
    blocked = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=400, seed=2)
    again = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=400, seed=2)
    np.testing.assert_array_equal(blocked.fnmr["g"], again.fnmr["g"])
    assert blocked.fnmr["g"].shape == (400,)
    assert np.nanmean(blocked.fnmr["g"]) == pytest.approx(np.nanmean(whole.fnmr["g"]), abs=0.05)


def test_percentile_interval_and_undefined_replicates():
    v = np.arange(101, dtype=float)
    iv = bs.percentile_interval(v, 0.9)
    assert (iv.lo, iv.hi) == (pytest.approx(np.percentile(v, 5)), pytest.approx(np.percentile(v, 95)))
    v3 = v.copy()
    v3[:3] = np.nan                    # 3 of 101 undefined: dropped and counted
    iv3 = bs.percentile_interval(v3, 0.9)
    assert iv3.n_undefined == 3 and iv3.n_used == 98 and iv3.reason is None
    assert iv3.lo == pytest.approx(np.percentile(v[3:], 5))
    v10 = v.copy()
    v10[:10] = np.nan                  # 10 of 101 > 5%: no interval, a reason
    iv10 = bs.percentile_interval(v10, 0.9)
    assert iv10.as_list() is None and "10 of 101" in iv10.reason
    json.dumps(iv10.to_dict(), allow_nan=False)


def test_zero_error_group_interval_is_not_given():
    e, m, a, b, ga, gb = tiny()
    boot = bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=50, seed=0)
    ivs = boot.group_intervals()
    assert ivs["h"]["fmr_ci_boot"] is None and "no impostor" in ivs["h"]["fmr_ci_boot_reason"]
    assert ivs["h"]["fnmr_ci_boot"] is None and "only FNMR errors" in ivs["h"]["fnmr_ci_boot_reason"]
    e2 = e.copy()
    e2[3] = False                      # group g now has no false match
    boot2 = bs.cluster_bootstrap(e2, m, a, b, ga, gb, replicates=50, seed=0)
    iv = boot2.interval("fmr", "g")
    assert iv.as_list() is None and "no FMR errors" in iv.reason


def test_bad_input():
    e, m, a, b, ga, gb = tiny()
    with pytest.raises(ValueError, match="mated but its subjects differ"):
        bs.cluster_bootstrap(e, np.ones_like(m), a, b, ga, gb, replicates=5)
    with pytest.raises(ValueError, match="non-mated but both sides"):
        bs.cluster_bootstrap(e, np.zeros_like(m), a, b, ga, gb, replicates=5)
    with pytest.raises(ValueError, match="replicates"):
        bs.cluster_bootstrap(e, m, a, b, ga, gb, replicates=0)
    with pytest.raises(ValueError, match="length"):
        bs.cluster_bootstrap(e[:-1], m, a, b, ga, gb)
    with pytest.raises(ValueError, match="unknown group"):
        bs.rate_difference_test(e, m, a, b, ga, gb, a="g", b="nope")


def test_errors_from_decision():
    dec = np.array([-1.0, 0.0, 0.5, math.inf, -0.2, 0.3])
    mated = np.array([True, True, True, True, False, False])
    np.testing.assert_array_equal(bs.errors_from_decision(dec, mated),
                                  [False, False, True, True, True, False])


# --------------------------------------------------------------------------- disparity intervals


def two_group_boot(seed=4):
    rng = np.random.default_rng(seed)
    e, m, sa, sb, g = [], [], [], [], []
    for gi, (gname, p_fm, p_fnm) in enumerate((("a", 0.05, 0.10), ("b", 0.10, 0.20))):
        subj = np.arange(80) + 1000 * gi
        gen = np.repeat(subj, 4)
        ia = rng.choice(subj, 600)
        ib = rng.choice(subj, 600)
        ib[ia == ib] = subj[(np.searchsorted(subj, ib[ia == ib]) + 1) % subj.size]
        e += [rng.random(gen.size) < p_fnm, rng.random(600) < p_fm]
        m += [np.ones(gen.size, bool), np.zeros(600, bool)]
        sa += [gen, ia]
        sb += [gen, ib]
        g.append(np.full(gen.size + 600, gname))
    c = np.concatenate
    return c(e), c(m), c(sa), c(sb), c(g)


def _supt_by_hand(cols, est, conf=0.95):
    """Independent sup-t: se per column, c = conf-quantile of the max standardised deviation."""
    cols = np.column_stack(cols)
    se = cols.std(axis=0, ddof=1)
    c = np.quantile((np.abs(cols - est) / se).max(axis=1), conf)
    return est - c * se, est + c * se


def test_disparity_intervals_follow_the_one_rule_by_hand():
    e, m, sa, sb, g = two_group_boot()
    boot = bs.cluster_bootstrap(e, m, sa, sb, g, replicates=300, seed=3)
    ivs = bs.disparity_intervals(boot, reference="a", alpha=0.3)
    fm = np.stack([boot.fmr["a"], boot.fmr["b"]], axis=1)
    fn = np.stack([boot.fnmr["a"], boot.fnmr["b"]], axis=1)
    em = np.array([boot.estimate[x]["fmr"] for x in "ab"])
    en = np.array([boot.estimate[x]["fnmr"] for x in "ab"])
    # FNMR max/min (two groups): the NAMED pair's log ratio +/- c se, c from the bootstrap
    d_obs = np.log(en[1]) - np.log(en[0])
    lo, hi = _supt_by_hand([np.log(fn[:, 1]) - np.log(fn[:, 0])], np.array([d_obs]))
    half = hi[0] - d_obs
    np.testing.assert_allclose(ivs["fnmr_max_min_ratio"].as_list(), np.exp([abs(d_obs) - half, abs(d_obs) + half]))
    # one ratio, one interval: b's ratio to the reference a is the same pair, same interval
    r = ivs["fnmr_ratio_to_reference"]["b"].as_list()
    np.testing.assert_allclose(r, np.exp([lo[0], hi[0]]))
    mm = ivs["fnmr_max_min_ratio"].as_list()
    np.testing.assert_allclose(r if en[1] > en[0] else [1 / r[1], 1 / r[0]], mm)
    assert ivs["fnmr_ratio_to_reference"]["a"].as_list() is None    # the reference's ratio to itself
    assert "reference group itself" in ivs["fnmr_ratio_to_reference"]["a"].reason
    # FDR: FMR and FNMR differences in one simultaneous family
    dm, dn = em[0] - em[1], en[0] - en[1]
    lo, hi = _supt_by_hand([fm[:, 0] - fm[:, 1], fn[:, 0] - fn[:, 1]], np.array([dm, dn]))
    absb = [(0.0 if l <= 0 <= h else min(abs(l), abs(h)), max(abs(l), abs(h))) for l, h in zip(lo, hi)]
    named = [(l if l + h > 0 else -h) for l, h in zip(lo, hi)]
    fdr_lo = 1 - (0.3 * absb[0][1] + 0.7 * absb[1][1])
    fdr_hi = 1 - max(0.0, 0.3 * named[0] + 0.7 * named[1])
    np.testing.assert_allclose(ivs["fdr"].as_list(), [fdr_lo, fdr_hi])
    # GARBE, two groups: G = tanh(|log x - log y| / 2) in each term
    lo, hi = _supt_by_hand([np.log(fm[:, 0]) - np.log(fm[:, 1]), np.log(fn[:, 0]) - np.log(fn[:, 1])],
                           np.log([em[0] / em[1], en[0] / en[1]]))
    absb = [(0.0 if l <= 0 <= h else min(abs(l), abs(h)), max(abs(l), abs(h))) for l, h in zip(lo, hi)]
    np.testing.assert_allclose(ivs["garbe"].as_list(),
                               [0.3 * np.tanh(absb[0][0] / 2) + 0.7 * np.tanh(absb[1][0] / 2),
                                0.3 * np.tanh(absb[0][1] / 2) + 0.7 * np.tanh(absb[1][1] / 2)])
    assert disp.gini([em[0], em[1]]) == pytest.approx(np.tanh(abs(np.log(em[0] / em[1])) / 2))
    # the filled metrics.json block
    per_group = {x: {**boot.estimate[x], "n_subjects": boot.counts[x]["n_subjects"]} for x in boot.groups}
    block = bs.disparity_summaries_with_ci(per_group, boot, reference="a", alpha=0.3)
    json.dumps(block, allow_nan=False)
    assert block["garbe"]["ci"] == ivs["garbe"].as_list()
    lo, hi = block["fnmr_max_min_ratio"]["ci"]
    assert lo <= block["fnmr_max_min_ratio"]["value"] <= hi
    assert block["fnmr_max_min_ratio"]["ci_of"] in ("a / b", "b / a")
    assert block["fnmr_ratio_to_reference"]["by_group"]["b"]["ci"] is not None
    assert block["fnmr_ratio_to_reference"]["by_group"]["a"]["ci"] is None


def test_max_min_interval_reaches_equality_for_equal_groups():
    """Issue 12 item 1: two truly equal groups; the bootstrap of max/min over resampled rates
    cannot fall below 1, the interval of the named pair (the one rule) reaches 1."""
    rng = np.random.default_rng(4)
    e, sa, g = [], [], []
    for gi, name in enumerate("ab"):
        err, subj, lab = simulate_fnmr(rng, 120, mu=0.1, group=name)
        e.append(err); sa.append(subj + 1000 * gi); g.append(lab)
    e, sa, g = (np.concatenate(x) for x in (e, sa, g))
    boot = bs.cluster_bootstrap(e, np.ones(e.size, bool), sa, sa, g, replicates=400, seed=1)
    naive = np.quantile(disp.max_min_ratio_values(boot.matrix("fnmr")), [0.025, 0.975])
    assert naive[0] > 1.0                       # the old rule excludes equality
    iv = bs.disparity_intervals(boot)["fnmr_max_min_ratio"]
    assert iv.lo <= 1.0 < iv.hi                 # the one rule reaches it


def test_no_zero_width_interval_is_returned():
    """Issue 12 item 2: a group with one subject (replicates constant) and a 0-of-n group give no
    interval but a reason."""
    assert bs.percentile_interval(np.full(100, 0.0667)).as_list() is None
    assert "do not vary" in bs.percentile_interval(np.full(100, 0.0667)).reason
    b = bs.sup_t_bounds(np.full((50, 1), 0.3), [0.3])
    assert not b.defined and "degenerate" in b.reason
    rng = np.random.default_rng(0)
    err, subj, lab = simulate_fnmr(rng, 40, mu=0.2, group="a")
    one = np.array([True, False, False] * 5)          # one subject, 15 genuine comparisons
    e = np.concatenate([err, one])
    s = np.concatenate([subj, np.full(one.size, 999)])
    g = np.concatenate([lab, np.full(one.size, "b")])
    boot = bs.cluster_bootstrap(e, np.ones(e.size, bool), s, s, g, replicates=200, seed=0)
    assert boot.interval("fnmr", "b").as_list() is None
    ivs = bs.disparity_intervals(boot, reference="a")
    assert ivs["fnmr_max_min_ratio"].as_list() is None and "degenerate" in ivs["fnmr_max_min_ratio"].reason
    assert ivs["fnmr_ratio_to_reference"]["b"].as_list() is None
    e0 = e.copy(); e0[g == "b"] = False                # 0 of 15: the ratio to the reference is 0, no interval
    boot0 = bs.cluster_bootstrap(e0, np.ones(e.size, bool), s, s, g, replicates=200, seed=0)
    iv = bs.disparity_intervals(boot0, reference="a")["fnmr_ratio_to_reference"]["b"]
    assert iv.as_list() is None and iv.reason


def test_disparity_ci_with_undefined_ratio():
    e, m, sa, sb, g = two_group_boot()
    e = e.copy()
    e[(g == "a") & ~m] = False          # group a: no false match, FMR ratio undefined
    boot = bs.cluster_bootstrap(e, m, sa, sb, g, replicates=100, seed=3)
    per_group = {x: boot.estimate[x] for x in boot.groups}
    block = bs.disparity_summaries_with_ci(per_group, boot)
    assert block["fmr_max_min_ratio"]["value"] is None and block["fmr_max_min_ratio"]["ci"] is None
    assert block["fmr_max_min_ratio"]["ci_reason"]
    # FDR is defined at a zero rate, but the bootstrap cannot see group a's FMR uncertainty (no
    # false match to resample): not estimable, with the reason, rather than an interval too narrow
    assert block["fdr"]["value"] is not None and block["fdr"]["ci"] is None
    assert "degenerate" in block["fdr"]["ci_reason"]
    assert block["fnmr_max_min_ratio"]["ci"] is not None


# --------------------------------------------------------------------------- the clustered test


def brute_force_variance(psi, sa, sb):
    """sum over ordered pairs (c, c') of comparisons sharing at least one subject of psi_c psi_c'."""
    n = len(psi)
    total = 0.0
    for i, j in itertools.product(range(n), range(n)):
        if {sa[i], sb[i]} & {sa[j], sb[j]}:
            total += psi[i] * psi[j]
    return total


def test_robust_variance_against_brute_force():
    rng = np.random.default_rng(2)
    n, s = 60, 15
    sa = rng.integers(0, s, n)
    sb = rng.integers(0, s, n)
    sb[:10] = sa[:10]                   # some one-subject (genuine) comparisons
    sb[20:25], sa[20:25] = sa[10:15], sb[10:15]   # repeated subject pairs, both orders
    psi = rng.normal(size=n)
    v, g = bs._robust_variance(psi, sa, sb, s)
    involved = len(set(sa) | set(sb))
    assert g == involved
    assert v == pytest.approx(brute_force_variance(psi, sa, sb) * involved / (involved - 1))
    # one subject per comparison: the one-way cluster-robust sum of squared cluster totals
    v1, g1 = bs._robust_variance(psi, sa, sa, s)
    totals = np.bincount(sa, weights=psi, minlength=s)
    assert v1 == pytest.approx((totals ** 2).sum() * g1 / (g1 - 1))


def test_test_detects_a_real_difference_and_handles_no_errors():
    e, m, sa, sb, g = two_group_boot(seed=8)
    t = bs.rate_difference_test(e, m, sa, sb, g, a="a", b="b", kind="fnmr")
    assert set(t) >= {"a", "b", "rate_a", "rate_b", "difference", "p_value", "method"}
    assert t["rate_a"] == pytest.approx(e[(g == "a") & m].mean())
    assert t["p_value"] < 0.01 and "Rao & Scott" in t["method"]
    tf = bs.rate_difference_test(e, m, sa, sb, g, a="a", b="b", kind="fmr")
    assert tf["p_value"] < 0.01 and "dyadic" in tf["method"]
    none = bs.rate_difference_test(np.zeros_like(e), m, sa, sb, g, a="a", b="b", kind="fmr")
    assert none["p_value"] == 1.0 and "no FMR errors" in none["reason"]
    tests = bs.pairwise_rate_tests(e, m, sa, sb, g, kind="fnmr")
    assert len(tests) == 1 and tests[0]["p_value_holm"] == pytest.approx(tests[0]["p_value"])
    json.dumps(tests, allow_nan=False)


def test_holm_adjustment():
    rng = np.random.default_rng(1)
    subj = np.arange(120)
    lab = np.repeat(["a", "b", "c", "d"], 30)
    gen = np.repeat(subj, 5)
    p = np.array([0.05, 0.1, 0.2, 0.05])[np.searchsorted(["a", "b", "c", "d"], lab[gen])]
    e = rng.random(gen.size) < p
    tests = bs.pairwise_rate_tests(e, np.ones(gen.size, bool), gen, gen, lab[gen], kind="fnmr")
    assert len(tests) == 6
    raw = np.array([t["p_value"] for t in tests])
    holm = np.array([t["p_value_holm"] for t in tests])
    order = np.argsort(raw)
    expect = np.maximum.accumulate(np.minimum(1, (6 - np.arange(6)) * raw[order]))
    np.testing.assert_allclose(holm[order], expect)


# --------------------------------------------------------------------------- simulations


def simulate_fnmr(rng, n_subj, mu=0.1, icc=0.2, group="g"):
    """Genuine comparisons with a subject random effect: p_s ~ Beta with mean mu and intra-subject
    correlation icc; 1-10 genuine comparisons per subject. The true FNMR is mu."""
    s = 1.0 / icc - 1.0
    p = rng.beta(mu * s, (1 - mu) * s, n_subj)
    k = rng.integers(1, 11, n_subj)
    subj = np.repeat(np.arange(n_subj), k)
    err = rng.random(subj.size) < p[subj]
    return err, subj, np.full(subj.size, group)


def test_simulation_coverage_clustered_vs_row_bootstrap():
    """Acceptance: the clustered 95% interval covers the true FNMR in 90-98% of 200 seeded
    repetitions; the naive row bootstrap covers less."""
    mu = 0.1
    cover_cluster = cover_row = 0
    reps = 200
    for rep in range(reps):
        rng = np.random.default_rng(1000 + rep)
        err, subj, g = simulate_fnmr(rng, 150, mu)
        mated = np.ones(err.size, bool)
        cb = bs.cluster_bootstrap(err, mated, subj, subj, g, replicates=300, seed=rep)
        rb = bs.row_bootstrap(err, mated, subj, subj, g, replicates=300, seed=rep)
        lo, hi = cb.interval("fnmr", "g").as_list()
        cover_cluster += lo <= mu <= hi
        lo, hi = rb.interval("fnmr", "g").as_list()
        cover_row += lo <= mu <= hi
    c, r = cover_cluster / reps, cover_row / reps
    assert 0.90 <= c <= 0.98, c
    assert r < c - 0.05, (r, c)


def test_simulation_type_one_error_fnmr():
    """Under H0 (both groups FNMR 0.1, clustered by subject) the clustered test rejects at about
    the nominal 5%; the naive two-proportion z-test is inflated."""
    reps, rej, naive = 300, 0, 0
    for rep in range(reps):
        rng = np.random.default_rng(5000 + rep)
        ea, sa, ga = simulate_fnmr(rng, 100, group="a")
        eb, sb, gb = simulate_fnmr(rng, 100, group="b")
        e = np.concatenate([ea, eb])
        s = np.concatenate([sa, sb + 1000])
        g = np.concatenate([ga, gb])
        t = bs.rate_difference_test(e, np.ones(e.size, bool), s, s, g, a="a", b="b", kind="fnmr")
        rej += t["p_value"] < 0.05
        naive += naive_z_p(ea.sum(), ea.size, eb.sum(), eb.size) < 0.05
    assert 0.02 <= rej / reps <= 0.085, rej / reps
    assert naive / reps > 0.12, naive / reps


def naive_z_p(ya, na, yb, nb):
    """Pooled two-proportion z-test treating comparisons as independent."""
    p0 = (ya + yb) / (na + nb)
    z = (ya / na - yb / nb) / math.sqrt(p0 * (1 - p0) * (1 / na + 1 / nb))
    return 2 * stats.norm.sf(abs(z))


def test_simulation_type_one_error_fmr_dyadic():
    """Impostor comparisons between subjects with a per-subject effect (wolves/lambs): the dyadic
    cluster-robust test stays near 5% under H0, the naive z-test does not."""
    reps, rej, naive = 300, 0, 0
    n_subj, per = 100, 10
    for rep in range(reps):
        rng = np.random.default_rng(9000 + rep)
        e, sa, sb, g = [], [], [], []
        for gi, name in enumerate("ab"):
            u = rng.normal(0, 1.2, n_subj)
            a = np.repeat(np.arange(n_subj), per)
            b = (a + rng.integers(1, n_subj, a.size)) % n_subj
            e.append(rng.random(a.size) < expit(-3.0 + u[a] + u[b]))
            sa.append(a + 1000 * gi)
            sb.append(b + 1000 * gi)
            g.append(np.full(a.size, name))
        c = np.concatenate
        t = bs.rate_difference_test(c(e), np.zeros(2 * a.size, bool), c(sa), c(sb), c(g), a="a", b="b",
                                    kind="fmr")
        rej += t["p_value"] < 0.05
        naive += naive_z_p(e[0].sum(), a.size, e[1].sum(), a.size) < 0.05
    assert 0.02 <= rej / reps <= 0.085, rej / reps
    assert naive / reps > 0.15, naive / reps


def test_vertex_bootstrap_fmr_is_conservative_not_anticonservative():
    """For impostor comparisons the product-weight (vertex) bootstrap variance exceeds the dyadic
    sandwich variance (it adds the pair-level variance twice; McCullagh 2000, Owen 2007), and both
    exceed the row-resampling variance that ignores subjects."""
    rng = np.random.default_rng(21)
    n_subj, per = 150, 6
    u = rng.normal(0, 1.0, n_subj)
    a = np.repeat(np.arange(n_subj), per)
    b = (a + rng.integers(1, n_subj, a.size)) % n_subj
    e = rng.random(a.size) < expit(-2.5 + u[a] + u[b])
    m = np.zeros(a.size, bool)
    g = np.full(a.size, "g")
    cb = bs.cluster_bootstrap(e, m, a, b, g, replicates=2000, seed=0)
    rb = bs.row_bootstrap(e, m, a, b, g, replicates=2000, seed=0)
    p = e.mean()
    v, _ = bs._robust_variance((e - p) / e.size, a, b, n_subj)
    assert rb.fmr["g"].std() < math.sqrt(v) < cb.fmr["g"].std()


def test_disparity_summary_names_cover_the_kernels():
    e, m, sa, sb, g = two_group_boot()
    boot = bs.cluster_bootstrap(e, m, sa, sb, g, replicates=20, seed=0)
    ivs = bs.disparity_intervals(boot)
    assert set(disp.SUMMARY_NAMES) <= set(ivs)
    assert ivs["fmr_ratio_to_reference"] == {}


# --------------------------------------------------------------------------- permutation test


def test_permutation_test_is_the_exact_hypergeometric_test_with_one_comparison_per_subject():
    """With one genuine comparison per subject, relabelling subjects is drawing the group's errors
    from a hypergeometric urn: the exact permutation p-value is P(|d*| >= |d|) under it."""
    ya, na, yb, nb = 1, 8, 6, 10
    e = np.r_[np.ones(ya, bool), np.zeros(na - ya, bool), np.ones(yb, bool), np.zeros(nb - yb, bool)]
    s = np.arange(e.size)
    g = np.r_[["a"] * na, ["b"] * nb]
    t = bs.permutation_rate_test(e, np.ones(e.size, bool), s, s, g, a="a", b="b", permutations=10 ** 9)
    assert t["exact"] and t["permutations"] == math.comb(na + nb, na)
    x = np.arange(0, ya + yb + 1)
    d = np.abs(x / na - (ya + yb - x) / nb)
    pmf = stats.hypergeom.pmf(x, na + nb, ya + yb, na)
    assert t["p_value"] == pytest.approx(pmf[d >= abs(ya / na - yb / nb) - 1e-12].sum())


def test_permutation_test_at_zero_counts_issue_example():
    """Issue 12 item 3: FNMR 0/51 vs 70/772. The cluster-robust z-test reported p = 0.000116; a
    group without errors gives it no variance to estimate, so it is now not estimable, and the
    permutation test (valid at zero counts) agrees with Fisher's exact test's order of magnitude."""
    e = np.r_[np.zeros(51, bool), np.ones(70, bool), np.zeros(702, bool)]
    s = np.arange(e.size)
    g = np.r_[["african"] * 51, ["caucasian"] * 772]
    z = bs.rate_difference_test(e, np.ones(e.size, bool), s, s, g, a="african", b="caucasian")
    assert math.isnan(z["p_value"]) and "cannot be estimated" in z["reason"]
    t = bs.permutation_rate_test(e, np.ones(e.size, bool), s, s, g, a="african", b="caucasian", permutations=4000)
    fisher = stats.fisher_exact([[0, 51], [70, 702]])[1]
    assert 0.01 < t["p_value"] < 0.06 and 0.01 < fisher < 0.06
    tests = bs.pairwise_rate_tests(e, np.ones(e.size, bool), s, s, g, kind="fnmr")
    assert tests[0]["estimable"] and tests[0]["p_value"] > 0.01


def test_permutation_test_too_few_subjects_is_not_estimable():
    e = np.array([True, False, True, False, False, False])
    s = np.array([1, 1, 2, 2, 3, 3])
    g = np.array(["a", "a", "b", "b", "b", "b"])
    t = bs.permutation_rate_test(e, np.ones(6, bool), s, s, g, a="a", b="b")
    assert not t["estimable"] and math.isnan(t["p_value"]) and "too few subjects" in t["reason"]


def test_permutation_test_fmr_moves_impostor_pairs_with_their_subjects():
    """FMR: a brute-force relabelling loop over all assignments gives the same exact p-value."""
    rng = np.random.default_rng(3)
    subj = np.arange(8)
    lab = np.array(["a"] * 4 + ["b"] * 4)
    i, j = np.triu_indices(8, 1)
    e = rng.random(i.size) < np.where((lab[i] == "a") & (lab[j] == "a"), 0.5, 0.15)
    t = bs.permutation_rate_test(e, np.zeros(i.size, bool), i, j, lab[i], lab[j], a="a", b="b", kind="fmr",
                                 permutations=10 ** 6)
    def diff(la):
        ina, inb = (la[i] == "a") & (la[j] == "a"), (la[i] == "b") & (la[j] == "b")
        return e[ina].mean() - e[inb].mean()
    obs = diff(lab)
    ds = []
    for idx in itertools.combinations(range(8), 4):
        la = np.array(["b"] * 8); la[list(idx)] = "a"
        ds.append(diff(la))
    assert t["p_value"] == pytest.approx(np.mean(np.abs(ds) >= abs(obs) - 1e-12))


def test_korn_graubard_interval_by_hand():
    """Per-group interval: Clopper-Pearson at the effective sample size n / deff, deff from the
    bootstrap variance (Korn & Graubard 1998); deff is floored at 1 (then exactly Clopper-Pearson)."""
    from evalkit.metrics.uncertainty import clopper_pearson
    rng = np.random.default_rng(0)
    k, n = 12, 200
    p = k / n
    tight = rng.normal(p, 0.5 * math.sqrt(p * (1 - p) / n), 1000)     # less variance than binomial
    np.testing.assert_allclose(bs.korn_graubard_interval(k, n, tight).as_list(), clopper_pearson(k, n))
    wide = rng.normal(p, 2.0 * math.sqrt(p * (1 - p) / n), 1000)
    deff = wide.var(ddof=1) / (p * (1 - p) / n)
    ne, ke = n / deff, p * n / deff
    expect = [stats.beta.ppf(0.025, ke, ne - ke + 1), stats.beta.ppf(0.975, ke + 1, ne - ke)]
    np.testing.assert_allclose(bs.korn_graubard_interval(k, n, wide).as_list(), expect)
    assert bs.korn_graubard_interval(k, n, np.full(100, p)).as_list() is None
