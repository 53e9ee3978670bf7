"""groups.py against groups masked by hand (fairlearn style) in plain Python loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from evalkit.metrics.groups import group_rates, overall_rates

INF = math.inf


def synthetic(seed: int, n_subjects: int = 40, n_images: int = 160, n_pairs: int = 1500):
    """Seeded comparisons: subject-level labels, a few images relabelled (mixed genuine pairs)."""
    rng = np.random.default_rng(seed)
    labels = np.array(["A", "B", "C", "unlabelled"])
    subj_label = labels[rng.integers(0, labels.size, n_subjects)]
    img_subject = rng.integers(0, n_subjects, n_images)
    img_label = subj_label[img_subject].copy()
    flip = rng.random(n_images) < 0.05
    img_label[flip] = "conflict"
    a = rng.integers(0, n_images, n_pairs)
    b = rng.integers(0, n_images, n_pairs)
    # force a share of mated pairs: point b at another image of a's subject when one exists
    for p in np.flatnonzero(rng.random(n_pairs) < 0.4):
        same = np.flatnonzero(img_subject == img_subject[a[p]])
        b[p] = rng.choice(same)
    mated = img_subject[a] == img_subject[b]
    scores = np.where(mated, rng.normal(0.8, 0.3, n_pairs), rng.normal(1.4, 0.3, n_pairs))
    scores = np.round(scores, 2)
    scores[rng.random(n_pairs) < 0.02] = INF  # failures to enrol
    subjects = np.array([f"s{i:03d}" for i in range(n_subjects)])
    return (scores, mated, subjects[img_subject[a]], subjects[img_subject[b]],
            img_label[a], img_label[b])


def loop_summary(rows, confidence=0.95):
    """Expected summary for a list of (score, mated, subj_a, subj_b) rows, computed by hand."""
    threshold = 1.1
    n_gen = n_imp = fm = fnm = 0
    subjects = set()
    for score, mated, sa, sb in rows:
        subjects.update([sa, sb])
        if mated:
            n_gen += 1
            if not score <= threshold:
                fnm += 1
        else:
            n_imp += 1
            if score <= threshold:
                fm += 1
    return fm, n_imp, fnm, n_gen, len(subjects)


def check_rate(summary, k, n):
    assert summary["errors"] == k and summary["n"] == n
    if n == 0:
        assert summary["rate"] is None and summary["ci"] == [None, None]
        return
    ci = binomtest(k, n).proportion_ci(method="exact")
    assert summary["rate"] == pytest.approx(k / n)
    assert summary["ci"] == [pytest.approx(ci.low), pytest.approx(ci.high)]
    assert summary["upper_bound_if_zero"] == (pytest.approx(1 - 0.05 ** (1 / n)) if k == 0 else None)


def check_summary(summary, rows):
    fm, n_imp, fnm, n_gen, n_subj = loop_summary(rows)
    check_rate(summary["fmr"], fm, n_imp)
    check_rate(summary["fnmr"], fnm, n_gen)
    assert (summary["n_genuine"], summary["n_impostor"], summary["n_subjects"]) == (
        n_gen, n_imp, n_subj)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_rates_match_hand_masking(seed):
    scores, mated, sa, sb, ga, gb = synthetic(seed)
    out = group_rates(scores, mated, sa, sb, ga, gb, threshold=1.1)
    expected_groups = sorted({x for x, y in zip(ga, gb) if x == y})
    assert list(out["by_group"]) == expected_groups
    assert "unlabelled" in out["by_group"] and "conflict" in out["by_group"]
    for g in expected_groups:
        rows = [(s, m, a, b) for s, m, a, b, x, y in zip(scores, mated, sa, sb, ga, gb)
                if x == g and y == g]
        check_summary(out["by_group"][g], rows)
    mixed_rows = [(s, m, a, b) for s, m, a, b, x, y in zip(scores, mated, sa, sb, ga, gb)
                  if x != y]
    assert len(mixed_rows) > 0
    check_summary(out["mixed"], mixed_rows)
    # every comparison is counted exactly once: in one group or in mixed
    total = sum(v["n_genuine"] + v["n_impostor"] for v in out["by_group"].values())
    total += out["mixed"]["n_genuine"] + out["mixed"]["n_impostor"]
    assert total == scores.size
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("seed", [0, 3])
def test_overall_rates_match_loop(seed):
    scores, mated, sa, sb, _, _ = synthetic(seed)
    out = overall_rates(scores, mated, sa, sb, threshold=1.1)
    check_summary(out, list(zip(scores, mated, sa, sb)))
    assert set(out) == {"fmr", "fnmr", "n_subjects", "n_genuine", "n_impostor"}


def test_group_rates_by_hand():
    scores = [0.5, 1.5, 0.9, INF, 0.2, 1.2, 0.3]
    mated = [True, True, False, True, False, False, True]
    sa = ["p", "p", "q", "r", "p", "r", "s"]
    sb = ["p", "p", "r", "r", "q", "t", "s"]
    ga = ["F", "F", "F", "M", "F", "M", "F"]
    gb = ["F", "F", "F", "M", "F", "F", "M"]
    out = group_rates(scores, mated, sa, sb, ga, gb, threshold=1.0)
    assert list(out["by_group"]) == ["F", "M"]
    f, m, x = out["by_group"]["F"], out["by_group"]["M"], out["mixed"]
    # F: genuine 0.5 (match), 1.5 (FNM); impostor 0.9 (FM), 0.2 (FM); subjects p, q, r
    assert (f["n_genuine"], f["n_impostor"], f["n_subjects"]) == (2, 2, 3)
    assert (f["fnmr"]["errors"], f["fmr"]["errors"]) == (1, 2)
    # M: one genuine failure (+inf -> FNM), no impostors
    assert (m["n_genuine"], m["n_impostor"], m["n_subjects"]) == (1, 0, 1)
    assert m["fnmr"]["rate"] == 1.0 and m["fmr"]["rate"] is None
    # mixed: impostor 1.2 (no FM, r-t), genuine 0.3 with image labels F/M (match)
    assert (x["n_genuine"], x["n_impostor"], x["n_subjects"]) == (1, 1, 3)
    assert (x["fnmr"]["errors"], x["fmr"]["errors"]) == (0, 0)
    assert x["fmr"]["upper_bound_if_zero"] == pytest.approx(0.95)


def test_group_named_mixed_stays_a_group():
    out = group_rates([0.1, 0.2], [True, False], ["a", "a"], ["a", "b"],
                      ["mixed", "mixed"], ["mixed", "x"], threshold=0.5)
    assert list(out["by_group"]) == ["mixed"]
    assert out["by_group"]["mixed"]["n_genuine"] == 1
    assert out["mixed"]["n_impostor"] == 1 and out["mixed"]["fmr"]["errors"] == 1


def test_empty_input():
    out = group_rates([], [], [], [], [], [], threshold=0.5)
    assert out["by_group"] == {}
    assert out["mixed"]["n_genuine"] == 0 and out["mixed"]["fmr"]["rate"] is None
    json.dumps(out, allow_nan=False)


def test_group_rates_errors():
    args = ([0.1, 0.2], [True, False], ["a", "a"], ["a", "b"], ["F", "F"], ["F", "F"])
    with pytest.raises(ValueError, match="NaN"):
        group_rates([0.1, np.nan], *args[1:], threshold=0.5)
    with pytest.raises(ValueError):
        group_rates(*args[:4], ["F", None], ["F", "F"], threshold=0.5)
    with pytest.raises(ValueError):
        group_rates(*args[:4], ["F"], ["F", "F"], threshold=0.5)
    with pytest.raises(ValueError):
        group_rates(*args, threshold=np.inf)
    with pytest.raises(ValueError):
        overall_rates([0.1, 0.2], [True], ["a", "a"], ["a", "b"], threshold=0.5)
