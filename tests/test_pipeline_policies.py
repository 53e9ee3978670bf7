"""Pipeline pieces of the threshold policies that a full run would make slow to test: DeepFace's
own threshold as the fixed value, and the View 1 -> View 2 calibration split."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from evalkit import config as config_mod
from evalkit.data.samples import Pairs, Samples
from evalkit.metrics import rates
from evalkit.protocols.base import fixed_threshold as _threshold_value
from evalkit.protocols.pairs import calibration_split as _calibration
from evalkit.scores import ScoreTable
from evalkit.scoring import pair_distances
from tests.conftest import compose_config


def test_deepface_default_threshold_is_deepfaces_own_value():
    from deepface.config.threshold import thresholds

    cfg = compose_config(["threshold=fixed", "threshold.deepface_default=true"])          # dlib, euclidean
    config_mod.validate(cfg)
    assert _threshold_value(cfg) == thresholds["Dlib"]["euclidean"] == 0.6
    cfg = compose_config(["backend=deepface-arcface", "threshold=fixed", "threshold.deepface_default=true"])
    assert _threshold_value(cfg) == thresholds["ArcFace"]["cosine"]
    cfg = compose_config(["backend=lbph", "threshold=fixed", "threshold.deepface_default=true"])
    with pytest.raises(config_mod.ConfigError, match="no threshold for the lbph backend"):
        _threshold_value(cfg)


def test_view1_calibration_sets_the_threshold_on_its_own_impostors_and_keeps_the_run_whole():
    rng = np.random.default_rng(0)
    subj = np.repeat(np.arange(30), 4)
    emb = (rng.normal(size=(30, 6))[subj] + rng.normal(scale=0.5, size=(len(subj), 6))).astype(np.float32)
    ok = np.ones(len(subj), bool)
    ok[5] = False                                             # a failure inside the calibration split
    samples = Samples("toy", np.array([f"{s}/{i}" for i, s in enumerate(subj)]), np.array(["x"] * len(subj)),
                      subj.astype(str), {"sex": np.where(subj % 2, "m", "f")})
    i, j = np.triu_indices(len(subj), 1)
    mated = subj[i] == subj[j]
    run_idx, cal_idx = np.arange(0, len(i), 2), np.arange(1, len(i), 2)   # two disjoint pair lists
    run = Pairs(i[run_idx], j[run_idx], mated[run_idx], np.zeros(len(run_idx), int), "run")
    cal = Pairs(i[cal_idx], j[cal_idx], mated[cal_idx], np.full(len(cal_idx), -1), "view1_train")
    table = ScoreTable.build(samples, run, pair_distances(emb, run.a, run.b, "euclidean"), ok)
    cfg = OmegaConf.create({"threshold": {"policy": "calibrated", "calibration": "lfw_view1_train"},
                            "backend": {"distance": "euclidean"}, "failure_policy": "nonmatch", "seed": 0})
    out, calib = _calibration(cfg, samples, table, cal, emb, ok)
    assert out is table                                       # View 2 stays whole: calibration is separate data
    d = pair_distances(emb, cal.a, cal.b, "euclidean")
    failed = ~(ok[cal.a] & ok[cal.b])
    want = np.where(failed, np.inf, d)[~cal.mated]            # by hand: failures are +inf impostors
    assert np.array_equal(np.sort(calib["impostor"]), np.sort(want))
    assert calib["n_genuine"] == int(cal.mated.sum()) and "View 1 DevTrain" in calib["source"]
    t = rates.threshold_at_fmr(calib["impostor"], 0.05).threshold
    assert t == rates.threshold_at_fmr(want, 0.05).threshold
