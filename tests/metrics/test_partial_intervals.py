"""Subject-clustered bootstrap intervals where evalkit had exact intervals only: failure to enrol
(the enrolment protocol) and mixed-group comparisons (RFW's cross-race impostors).

Each is checked against a bootstrap written out here by hand (a plain loop over replicates, its
own random stream, the Korn & Graubard interval from its formula), on seeded synthetic data whose
errors cluster by subject, so an implementation that ignored the clusters would fail; and on the
states that are not estimable."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evalkit.metrics.impostor_only import bootstrap_unit, enrolment_summary, fte_bootstrap
from evalkit.metrics.summary import MIXED_BOOT, summarise
from evalkit.metrics.uncertainty import clopper_pearson
from evalkit.scores import ScoreTable

R = 3000


def korn_graubard(k: int, n: int, reps, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson for p = k/n at the effective size n / deff, deff = max(1, var(reps) / (p(1-p)/n))."""
    p = k / n
    deff = max(1.0, float(np.nanvar(reps, ddof=1)) / (p * (1 - p) / n))
    ne = n / deff
    ke = p * ne
    a = 1 - confidence
    return float(stats.beta.ppf(a / 2, ke, ne - ke + 1)), float(stats.beta.ppf(1 - a / 2, ke + 1, ne - ke))


def clustered_images(seed: int = 3):
    """Three groups of subjects with 2-8 images each; whether an image fails depends mostly on its
    subject (a few subjects fail on most of their images), so failures cluster by subject."""
    rng = np.random.default_rng(seed)
    subjects, labels, failed = [], [], []
    for g, n_subj in (("a", 30), ("b", 25), ("c", 40)):
        for s in range(n_subj):
            p = 0.8 if rng.random() < 0.15 else 0.03
            for _ in range(int(rng.integers(2, 9))):
                subjects.append(f"{g}{s}")
                labels.append(g)
                failed.append(bool(rng.random() < p))
    return np.array(subjects), np.array(labels), np.array(failed)


def hand_fte_bootstrap(subjects, labels, failed, group: str, replicates: int, seed: int):
    """Resample the group's subjects with replacement (as many as it has); a replicate's FTE is the
    failures over the images of the drawn subjects, each counted as often as it is drawn."""
    rng = np.random.default_rng(seed)
    m = labels == group
    names = np.unique(subjects[m])
    fails = np.array([failed[m & (subjects == s)].sum() for s in names], float)
    imgs = np.array([(m & (subjects == s)).sum() for s in names], float)
    reps = []
    for _ in range(replicates):
        pick = rng.integers(0, len(names), len(names))
        reps.append(fails[pick].sum() / imgs[pick].sum())
    return int(failed[m].sum()), int(m.sum()), np.array(reps)


def test_fte_interval_equals_a_hand_rolled_subject_bootstrap():
    subjects, labels, failed = clustered_images()
    got = fte_bootstrap(failed, subjects, labels, 0.95, {"replicates": R, "seed": 11})
    for g in ("a", "b", "c"):
        k, n, reps = hand_fte_bootstrap(subjects, labels, failed, g, R, seed=1234)
        lo, hi = korn_graubard(k, n, reps)
        b = got[g]["ci_boot"]
        assert got[g]["ci_boot_reason"] is None and b is not None
        assert abs(b[0] - lo) < 0.03 * (hi - lo) and abs(b[1] - hi) < 0.03 * (hi - lo), (g, b, (lo, hi))
        # the clustering matters here: wider than the exact interval, which treats images as independent
        cp = clopper_pearson(k, n, 0.95)
        assert (b[1] - b[0]) > 1.2 * (cp[1] - cp[0]), g
    # seeded: the same seed gives the same interval, another seed another one
    assert fte_bootstrap(failed, subjects, labels, 0.95, {"replicates": R, "seed": 11}) == got
    assert fte_bootstrap(failed, subjects, labels, 0.95, {"replicates": R, "seed": 12}) != got


def test_without_identities_each_image_is_its_own_cluster():
    """No identities (one subject per image): an ordinary bootstrap of images, whose interval is
    (nearly) the exact one: Korn-Graubard's design effect is about 1."""
    rng = np.random.default_rng(5)
    labels = np.repeat(["f", "m"], [80, 120])
    failed = rng.random(200) < np.where(labels == "f", 0.12, 0.05)
    subjects = np.array([f"img{i}" for i in range(200)])
    assert bootstrap_unit(subjects) == "image" and bootstrap_unit(np.repeat(["x", "y"], 100)) == "subject"
    got = fte_bootstrap(failed, subjects, labels, 0.95, {"replicates": R, "seed": 0})
    for g in ("f", "m"):
        m = labels == g
        cp = clopper_pearson(int(failed[m].sum()), int(m.sum()), 0.95)
        b = got[g]["ci_boot"]
        assert b[0] <= cp[0] + 1e-12 and b[1] >= cp[1] - 1e-12          # never narrower (deff >= 1)
        assert (b[1] - b[0]) < 1.15 * (cp[1] - cp[0]), (g, b, cp)


def test_fte_intervals_that_are_not_estimable_say_why():
    subjects = np.array(["s1"] * 5 + ["t1", "t2", "t3", "t4"] + [f"u{i}" for i in range(6)])
    labels = np.array(["one"] * 5 + ["none"] * 4 + ["all"] * 6)
    failed = np.array([True, False, True, False, False] + [False] * 4 + [True] * 6)
    got = fte_bootstrap(failed, subjects, labels, 0.95, {"replicates": 200, "seed": 0})
    assert got["one"]["ci_boot"] is None and "do not vary" in got["one"]["ci_boot_reason"] \
        and "one subject" in got["one"]["ci_boot_reason"]
    assert got["none"]["ci_boot"] is None and got["none"]["ci_boot_reason"].startswith("group none has no FTE errors (0 of 4)")
    assert got["all"]["ci_boot"] is None and "only FTE errors (6 of 6)" in got["all"]["ci_boot_reason"]
    assert not any("FNMR" in e["ci_boot_reason"] or "genuine" in e["ci_boot_reason"] for e in got.values())
    off = fte_bootstrap(failed, subjects, labels, 0.95, None)
    assert all(e == {"ci_boot": None, "ci_boot_reason": "not computed (bootstrap.replicates=0)"} for e in off.values())


def test_enrolment_summary_carries_the_intervals_into_groups_intersections_and_overall():
    subjects, labels, failed = clustered_images()
    sex = np.where(np.char.startswith(subjects, "a") | np.char.endswith(subjects, "1"), "female", "male")
    r = enrolment_summary([("no_face" if f else None) for f in failed], subjects, {"grp": labels, "sex": sex}, 0.95,
                          intersections=[["grp", "sex"]], bootstrap={"replicates": 500, "seed": 2})
    direct = fte_bootstrap(failed, subjects, labels, 0.95, {"replicates": 500, "seed": 2})
    assert {g: {k: e["fte"][k] for k in ("ci_boot", "ci_boot_reason")} for g, e in r["groups"]["grp"].items()} == direct
    inter = np.array([f"{a} x {b}" for a, b in zip(labels, sex)])
    assert r["intersections"]["grp x sex"]["a x female"]["fte"]["ci_boot"] == \
        fte_bootstrap(failed, subjects, inter, 0.95, {"replicates": 500, "seed": 2})["a x female"]["ci_boot"]
    assert r["overall"]["fte"]["ci_boot"] is not None


# ------------------------------------------------------------------ mixed (cross-group) comparisons


def vertex_reps(race: dict, subj_a, subj_b, err, seed: int = 99, replicates: int = R) -> np.ndarray:
    """A vertex bootstrap written out: subjects resampled with replacement within their race
    (``race``: subject -> group), an impostor pair weighing c_a * c_b; a replicate's FMR, NaN when
    no pair is drawn."""
    rng = np.random.default_rng(seed)
    names = sorted(race)
    idx = {s: i for i, s in enumerate(names)}
    a = np.array([idx[s] for s in subj_a])
    b = np.array([idx[s] for s in subj_b])
    e = np.asarray(err, float)
    strata = [np.array([idx[s] for s in names if race[s] == r]) for r in sorted(set(race.values()))]
    reps = []
    for _ in range(replicates):
        c = np.zeros(len(names))
        for st in strata:
            np.add.at(c, rng.choice(st, len(st)), 1)
        w = c[a] * c[b]
        reps.append((w * e).sum() / w.sum() if w.sum() else np.nan)
    return np.array(reps)


def cross_race_table(seed: int = 7):
    """Two races of 25 subjects, one image each; every within-race and a seeded half of the
    cross-race impostor pairs, plus a genuine pair per subject. 'Wolves' (a few subjects) match
    falsely far more often, so false matches cluster by subject."""
    rng = np.random.default_rng(seed)
    subj = [f"{r}{i}" for r in "xy" for i in range(25)]
    race = {s: s[0] for s in subj}
    wolf = {s: rng.random() < 0.12 for s in subj}
    rows = []
    for i, a in enumerate(subj):
        rows.append((a, a, True, rng.normal(0.4, 0.1)))
        for b in subj[i + 1:]:
            if race[a] != race[b] and rng.random() < 0.5:
                continue
            p = 0.5 if (wolf[a] or wolf[b]) else 0.02
            rows.append((a, b, False, 0.3 if rng.random() < p else 0.9))
    sa, sb, mated, d = (np.array(x) for x in zip(*rows))
    ga, gb = np.array([race[s] for s in sa]), np.array([race[s] for s in sb])
    n = len(rows)
    t = ScoreTable(sample_a=np.char.add(sa, "/1"), sample_b=np.char.add(sb, "/2"), subject_a=sa, subject_b=sb,
                   mated=mated.astype(bool), fold=np.full(n, -1), distance=d.astype(float), failed=np.zeros(n, bool),
                   groups={"race": (ga, gb)})
    return t, race


def _summarise(t, **kw):
    return summarise(t, threshold_policy="fixed", target_fmr=1e-3, threshold_value=0.5, failure_policy="nonmatch",
                     confidence=0.95, image_failures=[], image_groups={}, header={"experiment": "x"},
                     min_count=(1, 1), bootstrap={"replicates": R, "seed": 4}, **kw)


def test_cross_race_fmr_interval_equals_a_hand_rolled_vertex_bootstrap():
    t, race = cross_race_table()
    m = _summarise(t, mixed_bootstrap=True)
    mix = m["mixed"]["race"]["fmr"]
    imp = ~t.mated & (t.groups["race"][0] != t.groups["race"][1])
    err = imp & (t.distance <= 0.5)
    assert (mix["errors"], mix["n"]) == (int(err.sum()), int(imp.sum())) and 0 < mix["errors"] < mix["n"]
    # by hand: subjects resampled within their race, a cross-race pair weighs c_a * c_b
    reps = vertex_reps(race, t.subject_a[imp], t.subject_b[imp], err[imp])
    lo, hi = korn_graubard(mix["errors"], mix["n"], reps)
    got = mix["ci_boot"]
    assert mix["ci_boot_reason"] is None and got is not None
    assert abs(got[0] - lo) < 0.03 * (hi - lo) and abs(got[1] - hi) < 0.03 * (hi - lo), (got, (lo, hi))
    assert (got[1] - got[0]) > 1.2 * (mix["ci"][1] - mix["ci"][0])          # wolves: wider than exact
    # no cross-race genuine comparisons: that rate is not estimable, with the reason
    assert m["mixed"]["race"]["fnmr"]["ci_boot"] is None and "no genuine" in m["mixed"]["race"]["fnmr"]["ci_boot_reason"]
    # the per-race entries are those of a run without the option (same draws, same intervals)
    plain = _summarise(t)
    assert plain["groups"] == m["groups"] and plain["disparity"] == m["disparity"]
    assert plain["mixed"]["race"]["fmr"]["ci_boot"] is None and plain["mixed"]["race"]["fmr"]["ci_boot_reason"] == MIXED_BOOT


def test_impostor_only_fmr_intervals_equal_a_hand_rolled_vertex_bootstrap():
    """protocol=impostor (one image per subject, no genuine pairs): every FMR, per group, mixed
    and overall, gets the subject-clustered bootstrap interval beside the exact one."""
    from evalkit.metrics.impostor_only import FMR_BOOT_OFF, impostor_only_summary

    t, race = cross_race_table()
    imp = ~t.mated
    sa, sb = t.subject_a[imp], t.subject_b[imp]
    ga, gb = t.groups["race"][0][imp], t.groups["race"][1][imp]
    match = t.distance[imp] <= 0.5
    r = impostor_only_summary(match, sa, sb, {"race": (ga, gb)}, 0.95, min_count=(1, 1),
                              bootstrap={"replicates": R, "seed": 4})
    assert r["bootstrap"]["replicates"] == R and "conservative" in r["bootstrap"]["note"]
    entries = {**{g: r["groups"]["race"][g]["fmr"] for g in "xy"}, "mixed": r["mixed"]["race"]["fmr"]}
    sels = {"x": (ga == "x") & (gb == "x"), "y": (ga == "y") & (gb == "y"), "mixed": ga != gb}
    for g, e in entries.items():
        lo, hi = korn_graubard(int(match[sels[g]].sum()), int(sels[g].sum()),
                               vertex_reps(race, sa[sels[g]], sb[sels[g]], match[sels[g]]))
        got = e["ci_boot"]
        assert e["ci_boot_reason"] is None and got is not None, g
        assert abs(got[0] - lo) < 0.05 * (hi - lo) and abs(got[1] - hi) < 0.05 * (hi - lo), (g, got, (lo, hi))
        assert r["groups"]["race"].get(g, {"fnmr": {"rate": None}})["fnmr"]["rate"] is None
    assert r["overall"]["fmr"]["ci_boot"] is not None
    off = impostor_only_summary(match, sa, sb, {"race": (ga, gb)}, 0.95, min_count=(1, 1), bootstrap=None)
    assert off["bootstrap"] is None and off["groups"]["race"]["x"]["fmr"]["ci_boot_reason"] == FMR_BOOT_OFF
    assert off["groups"]["race"]["x"]["fmr"]["ci"] == r["groups"]["race"]["x"]["fmr"]["ci"]
