"""metrics.json assembly on a small synthetic score table with hand-counted answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.metrics.summary import SCHEMA, summarise
from evalkit.scores import ScoreTable


def table(distance, mated, subj_a, subj_b, sex_a, sex_b, failed=None, fold=None):
    n = len(distance)
    failed = np.zeros(n, bool) if failed is None else np.asarray(failed)
    return ScoreTable(
        sample_a=np.array([f"{s}/a{i}" for i, s in enumerate(subj_a)]),
        sample_b=np.array([f"{s}/b{i}" for i, s in enumerate(subj_b)]),
        subject_a=np.asarray(subj_a), subject_b=np.asarray(subj_b), mated=np.asarray(mated),
        fold=np.full(n, -1) if fold is None else np.asarray(fold),
        distance=np.where(failed, np.nan, np.asarray(distance, float)), failed=failed,
        groups={"sex": (np.asarray(sex_a), np.asarray(sex_b))})


# genuine: F1 0.2, F2 0.9 (FNM at t=0.5), M1 0.3, M2 0.4 (failed)
# impostor: F1-F2 0.4 (FM), M1-M2 0.8, F1-M1 0.45 (FM, mixed), F2-M2 0.7 (mixed)
T = dict(
    distance=[0.2, 0.9, 0.3, 0.4, 0.4, 0.8, 0.45, 0.7],
    mated=[True, True, True, True, False, False, False, False],
    subj_a=["F1", "F2", "M1", "M2", "F1", "M1", "F1", "F2"],
    subj_b=["F1", "F2", "M1", "M2", "F2", "M2", "M1", "M2"],
    sex_a=["f", "f", "m", "m", "f", "m", "f", "f"],
    sex_b=["f", "f", "m", "m", "f", "m", "m", "m"],
    failed=[False, False, False, True, False, False, False, False],
)
COMMON = dict(threshold_policy="fixed", target_fmr=1e-3, threshold_value=0.5, confidence=0.95,
              image_failures=[None, None, "no_face"], image_groups={"sex": np.array(["f", "m", "m"])},
              header={"experiment": "synthetic"})


def test_nonmatch_policy_hand_counts():
    m = summarise(table(**T), failure_policy="nonmatch", **COMMON)
    assert m["schema"] == SCHEMA
    o = m["overall"]
    assert (o["fnmr"]["n"], o["fnmr"]["errors"], o["fmr"]["n"], o["fmr"]["errors"]) == (4, 2, 4, 2)
    f, mm = m["groups"]["sex"]["f"], m["groups"]["sex"]["m"]
    assert (f["fnmr"]["n"], f["fnmr"]["errors"], f["fmr"]["n"], f["fmr"]["errors"]) == (2, 1, 1, 1)
    assert (mm["fnmr"]["n"], mm["fnmr"]["errors"], mm["fmr"]["n"], mm["fmr"]["errors"]) == (2, 1, 1, 0)
    assert f["fmr"]["subjects"] == 2 and mm["fmr"]["subjects"] == 2
    x = m["mixed"]["sex"]
    assert (x["fmr"]["n"], x["fmr"]["errors"], x["fnmr"]["n"]) == (2, 1, 0)
    assert m["failures"]["comparisons"] == {"genuine": 1, "impostor": 0}
    assert m["failures"]["by_group"]["sex"]["m"]["fte"]["errors"] == 1
    assert m["threshold"]["achieved"] == pytest.approx(0.5)
    json.dumps(m, allow_nan=False)   # JSON-safe: no NaN anywhere
    assert "lfw_accuracy" not in m   # no folds


def test_exclude_policy_drops_failed_comparisons_and_says_so():
    m = summarise(table(**T), failure_policy="exclude", **COMMON)
    assert m["failures"]["excluded_comparisons"] == 1
    assert m["groups"]["sex"]["m"]["fnmr"]["n"] == 1 and m["groups"]["sex"]["m"]["fnmr"]["errors"] == 0


def test_target_fmr_threshold_is_set_on_all_impostors():
    m = summarise(table(**T), failure_policy="nonmatch", **{**COMMON, "threshold_policy": "global_fmr",
                                                            "target_fmr": 0.25})
    # 4 impostors, k = floor(0.25 * 4) = 1 false match allowed: threshold just below 0.45
    assert 0.4 <= m["threshold"]["value"] < 0.45
    assert m["overall"]["fmr"]["errors"] == 1


def test_lfw_accuracy_present_with_folds():
    rng = np.random.default_rng(0)
    n = 200
    mated = np.arange(n) % 2 == 0
    d = np.where(mated, rng.normal(0.4, 0.1, n), rng.normal(0.8, 0.1, n))
    subj_a = np.array([f"s{i}" for i in range(n)])
    subj_b = np.where(mated, subj_a, np.array([f"t{i}" for i in range(n)]))
    t = table(d, mated, subj_a, subj_b, ["f"] * n, ["f"] * n, fold=np.arange(n) % 10)
    m = summarise(t, failure_policy="nonmatch", **{**COMMON, "image_failures": [], "image_groups": {"sex": np.array([])}})
    acc = m["lfw_accuracy"]
    assert acc["n_folds"] == 10 and 0.95 < acc["mean"] <= 1.0
