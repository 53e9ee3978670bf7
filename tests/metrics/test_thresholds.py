"""Threshold policies and the per-group breakdowns, against hand masks and brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics import rates, thresholds
from evalkit.metrics.summary import cross_fmr, group_breakdown, summarise
from evalkit.scores import ScoreTable


def synthetic(seed=0, n_subj=60, per=4):
    """Seeded scores: two sexes, group f's impostors sit closer (more false matches)."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), per)
    sex = np.where(np.arange(n_subj) % 3 == 0, "f", "m")[subj]
    race = np.where(np.arange(n_subj) % 2 == 0, "x", "y")[subj]
    i, j = np.triu_indices(len(subj), 1)
    mated = subj[i] == subj[j]
    mu = np.where(mated, 0.4, np.where((sex[i] == "f") & (sex[j] == "f"), 0.8, 1.0))
    s = rng.normal(mu, 0.12)
    return dict(s=s, mated=mated, sa=subj[i].astype(str), sb=subj[j].astype(str), sex=(sex[i], sex[j]),
                race=(race[i], race[j]))


def test_global_policy_is_threshold_at_fmr_over_all_impostors():
    d = synthetic()
    t, block = thresholds.choose(d["s"], d["mated"], policy="global_fmr", target_fmr=1e-2)
    want = rates.threshold_at_fmr(d["s"][~d["mated"]], 1e-2)
    assert np.all(t == want.threshold) and block["value"] == want.threshold
    assert block["achieved_fmr"] == want.achieved_fmr <= 1e-2 and "one threshold for everyone" in block["label"]


def test_per_group_policy_gives_each_group_its_own_fmr_threshold():
    d = synthetic()
    ga, gb = d["sex"]
    t, block = thresholds.choose(d["s"], d["mated"], policy="per_group_fmr", target_fmr=1e-2,
                                 group_a=ga, group_b=gb, attribute="sex")
    glob = rates.threshold_at_fmr(d["s"][~d["mated"]], 1e-2).threshold
    for g in ("f", "m"):
        sel = (ga == g) & (gb == g)
        want = rates.threshold_at_fmr(d["s"][sel & ~d["mated"]], 1e-2)   # by hand: mask the group's impostors
        assert block["per_group"]["sex"][g]["value"] == want.threshold
        assert np.all(t[sel] == want.threshold)
        # the group's own FMR at its own threshold meets the target
        assert np.mean(d["s"][sel & ~d["mated"]] <= want.threshold) <= 1e-2
    assert np.all(t[ga != gb] == glob)                      # mixed-group comparisons: global threshold
    assert block["value"] is None and "PER-GROUP" in block["label"]
    # f's impostors are closer, so its own threshold is lower than m's
    assert block["per_group"]["sex"]["f"]["value"] < block["per_group"]["sex"]["m"]["value"]


def test_calibrated_policy_applies_the_calibration_threshold_unchanged():
    d = synthetic()
    cal = synthetic(seed=5)
    t, block = thresholds.choose(d["s"], d["mated"], policy="calibrated", target_fmr=1e-2,
                                 calibration={"source": "split B", "impostor": cal["s"][~cal["mated"]], "n_genuine": 3})
    want = rates.threshold_at_fmr(cal["s"][~cal["mated"]], 1e-2).threshold
    assert np.all(t == want) and block["calibration"]["source"] == "split B"
    assert block["achieved_fmr"] == pytest.approx(np.mean(d["s"][~d["mated"]] <= want))


def test_fixed_policy_and_errors():
    d = synthetic()
    t, block = thresholds.choose(d["s"], d["mated"], policy="fixed", target_fmr=1e-3, value=0.6)
    assert np.all(t == 0.6) and block["achieved_fmr"] == np.mean(d["s"][~d["mated"]] <= 0.6)
    with pytest.raises(ValueError, match="needs a value"):
        thresholds.choose(d["s"], d["mated"], policy="fixed", target_fmr=1e-3)
    with pytest.raises(ValueError, match="unknown threshold policy"):
        thresholds.choose(d["s"], d["mated"], policy="vendor", target_fmr=1e-3)


def test_subject_split_is_disjoint_seeded_and_counts_what_it_drops():
    d = synthetic()
    a = thresholds.subject_split(d["sa"], d["sb"], 0.5, seed=3)
    b = thresholds.subject_split(d["sa"], d["sb"], 0.5, seed=3)
    assert np.array_equal(a["calibration"], b["calibration"])
    cal_subj = set(d["sa"][a["calibration"]]) | set(d["sb"][a["calibration"]])
    ev_subj = set(d["sa"][a["evaluation"]]) | set(d["sb"][a["evaluation"]])
    assert not cal_subj & ev_subj
    assert a["n_subjects_calibration"] == 30 and a["n_subjects_evaluation"] == 30
    assert a["calibration"].sum() + a["evaluation"].sum() + a["n_dropped"] == len(d["s"])
    c = thresholds.subject_split(d["sa"], d["sb"], 0.5, seed=4)
    assert not np.array_equal(a["calibration"], c["calibration"])


def test_cross_fmr_matches_a_brute_force_loop():
    d = synthetic()
    ga, gb = d["race"]
    t = 0.7
    m = cross_fmr(d["s"] - t, d["mated"], ga, gb)
    labels = m["labels"]
    for i, x in enumerate(labels):
        for j, y in enumerate(labels):
            n = fm = 0
            for k in range(len(d["s"])):
                if d["mated"][k]:
                    continue
                if {ga[k], gb[k]} == {x, y} and (x != y or ga[k] == gb[k] == x):
                    n += 1
                    fm += d["s"][k] <= t
            assert m["n_impostor"][i][j] == n and m["false_matches"][i][j] == fm


def test_group_breakdown_flags_small_groups_and_reads_each_groups_det():
    d = synthetic()
    ga, gb = d["sex"]
    t = 0.62
    out, mixed = group_breakdown(d["s"], d["s"] - t, d["mated"], d["sa"], d["sb"], ga, gb, 0.95, (25, 30))
    f = out["f"]
    sel = (ga == "f") & (gb == "f")
    gen, imp = d["s"][sel & d["mated"]], d["s"][sel & ~d["mated"]]
    assert f["n_subjects"] == 20 and f["small_fnmr"] and "20 subjects < 25" in f["small_fnmr_reason"]
    assert not out["m"]["small_fnmr"] and not out["m"]["small_fmr"]
    assert f["accuracy"] == pytest.approx((np.sum(gen <= t) + np.sum(imp > t)) / (len(gen) + len(imp)))
    assert f["eer"] == rates.eer(gen, imp)
    want = rates.fnmr_at_fmr(gen, imp, 1e-2)
    assert f["fnmr_at_fmr"]["0.01"]["fnmr"] == want["fnmr"]
    # 1e-4 needs 10,000 impostors; f has fewer: not resolvable, no number
    assert len(imp) < 10_000 and f["fnmr_at_fmr"]["0.0001"]["fnmr"] is None
    assert mixed["n_impostor"] == int(np.sum((ga != gb) & ~d["mated"]))


def _table(d):
    n = len(d["s"])
    return ScoreTable(sample_a=np.arange(n).astype(str), sample_b=np.arange(n).astype(str),
                      subject_a=d["sa"], subject_b=d["sb"], mated=d["mated"], fold=np.full(n, -1),
                      distance=d["s"], failed=np.zeros(n, bool), groups={"sex": d["sex"], "race": d["race"]})


def test_summary_intersections_equal_group_rates_on_hand_combined_labels():
    d = synthetic()
    common = dict(target_fmr=1e-2, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
                  image_failures=[], image_groups={}, header={}, bootstrap=None)
    m = summarise(_table(d), threshold_policy="global_fmr", intersections=[["sex", "race"]], min_count=(0, 0), **common)
    t = m["threshold"]["value"]
    combo_a = np.char.add(np.char.add(d["sex"][0], " x "), d["race"][0])
    combo_b = np.char.add(np.char.add(d["sex"][1], " x "), d["race"][1])
    for label, e in m["intersections"]["sex x race"].items():
        sel = (combo_a == label) & (combo_b == label)
        assert e["fnmr"]["n"] == int(np.sum(sel & d["mated"]))
        assert e["fmr"]["errors"] == int(np.sum(sel & ~d["mated"] & (d["s"] <= t)))
    assert set(m["intersections"]["sex x race"]) == {"f x x", "f x y", "m x x", "m x y"}
    # per-group policy: rates of each sex at its own threshold, labelled in the block
    p = summarise(_table(d), threshold_policy="per_group_fmr", threshold_attribute="sex", **common)
    assert p["threshold"]["policy"] == "per_group_fmr" and p["threshold"]["attribute"] == "sex"
    for g in ("f", "m"):
        assert p["groups"]["sex"][g]["fmr"]["rate"] <= 1e-2


def test_disparity_block_uses_unflagged_groups_and_matches_the_published_formulas():
    d = synthetic(n_subj=90)
    common = dict(target_fmr=1e-2, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
                  image_failures=[], image_groups={}, header={})
    m = summarise(_table(d), threshold_policy="global_fmr", min_count=(10, 30), intersections=[["sex", "race"]],
                  bootstrap={"replicates": 200, "seed": 1}, **common)
    for e in m["intersections"]["sex x race"].values():      # intersections get subject-clustered intervals too
        lo, hi = e["fnmr"]["ci_boot"]
        assert lo <= e["fnmr"]["rate"] <= hi
    g = m["groups"]["sex"]
    fmr = {k: v["fmr"]["rate"] for k, v in g.items()}
    fnmr = {k: v["fnmr"]["rate"] for k, v in g.items()}
    dsex = m["disparity"]["sex"]
    # NIST's differentials, written out: max over min
    assert dsex["fnmr_max_min_ratio"]["value"] == pytest.approx(max(fnmr.values()) / min(fnmr.values()))
    # FDR (de Freitas Pereira & Marcel 2021), alpha = 0.5
    A = abs(fmr["f"] - fmr["m"])
    B = abs(fnmr["f"] - fnmr["m"])
    assert dsex["fdr"]["value"] == pytest.approx(1 - (0.5 * A + 0.5 * B))
    # reference = the group with most subjects (m); ratio f/m
    assert dsex["fnmr_ratio_to_reference"]["reference"] == "m"
    assert dsex["fnmr_ratio_to_reference"]["reference_rule"] == "the group with most subjects"   # not "given"
    assert dsex["fnmr_ratio_to_reference"]["by_group"]["f"]["value"] == pytest.approx(fnmr["f"] / fnmr["m"])
    # bootstrap intervals are there, per group and on the summaries, and bracket the estimate
    lo, hi = g["f"]["fnmr"]["ci_boot"]
    assert lo <= fnmr["f"] <= hi
    assert m["bootstrap"]["replicates"] == 200 and m["bootstrap"]["unit"] == "subject"
    (t,) = m["tests"]["sex"]["fnmr"]
    assert {t["a"], t["b"]} == {"f", "m"} and 0 <= t["p_value"] <= 1
    # a group flagged small leaves the summaries but stays in groups
    m2 = summarise(_table(d), threshold_policy="global_fmr", min_count=(31, 30), bootstrap=None, **common)
    f2 = m2["groups"]["sex"]["f"]["fnmr"]
    assert f2["small"] and "30 subjects < 31" in f2["small_reason"]
    assert m2["disparity"]["sex"]["fnmr_max_min_ratio"]["groups"] == ["m"]
    assert m2["disparity"]["sex"]["fnmr_max_min_ratio"]["value"] is None
    assert m2["disparity"]["sex"]["fnmr_max_min_ratio"]["reason"]
    assert m2["bootstrap"] is None and f2["ci_boot"] is None and "bootstrap off" in f2["ci_boot_reason"]


def test_unlabelled_is_reported_but_never_a_disparity_group_or_reference():
    d = synthetic(n_subj=90)
    sa_num = d["sa"].astype(int)
    sb_num = d["sb"].astype(int)
    ga = np.where(sa_num % 5 == 1, "unlabelled", d["sex"][0])
    gb = np.where(sb_num % 5 == 1, "unlabelled", d["sex"][1])
    d["sex"] = (ga, gb)
    m = summarise(_table(d), threshold_policy="global_fmr", target_fmr=1e-2, threshold_value=None,
                  failure_policy="nonmatch", confidence=0.95, image_failures=[], image_groups={}, header={},
                  min_count=(5, 10), bootstrap=None)
    u = m["groups"]["sex"]["unlabelled"]
    assert not u["fnmr"]["small"] and not u["fmr"]["small"]      # big enough, and reported
    for name in ("fnmr_max_min_ratio", "fdr", "garbe"):
        assert "unlabelled" not in m["disparity"]["sex"][name]["groups"]
    assert m["disparity"]["sex"]["fnmr_ratio_to_reference"]["reference"] != "unlabelled"
    assert all("unlabelled" not in (t["a"], t["b"]) for t in m["tests"]["sex"]["fnmr"])


def test_an_intersection_the_data_cannot_make_is_reported_not_dropped():
    d = synthetic()
    m = summarise(_table(d), threshold_policy="global_fmr", target_fmr=1e-2, threshold_value=None,
                  failure_policy="nonmatch", confidence=0.95, image_failures=[], image_groups={}, header={},
                  intersections=[["sex", "age"]], bootstrap=None)
    assert m["intersections"] == {} and "age" in m["intersections_skipped"]["sex x age"]
