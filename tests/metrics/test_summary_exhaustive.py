"""The exhaustive protocol's metrics.json equals the score-table path on the same comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.data.samples import Pairs, Samples
from evalkit.metrics.exhaustive import exhaustive_counts
from evalkit.metrics.summary import summarise, summarise_exhaustive
from evalkit.scores import ScoreTable
from evalkit.scoring import pair_distances


def counts(e: dict) -> tuple:
    """(genuine, false non-matches, impostor, false matches) of a schema-3 entry."""
    return e["fnmr"]["n"], e["fnmr"]["errors"], e["fmr"]["n"], e["fmr"]["errors"]


def world(seed=0, n_subj=40, per=5, dim=8):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), per)
    centres = rng.normal(size=(n_subj, dim))
    emb = (centres[subj] + rng.normal(scale=0.55, size=(len(subj), dim))).astype(np.float32)
    emb[[3, 77]] = np.nan                                   # two failures to enrol
    ok = np.isfinite(emb).all(axis=1)
    sex = np.where(np.arange(n_subj) % 3 == 0, "f", "m")[subj]
    samples = Samples("toy", np.array([f"s{s}/{i}" for i, s in enumerate(subj)]), np.array(["x"] * len(subj)),
                      subj.astype(str), {"sex": sex}, {"sex": "hand-made"})
    return samples, emb, ok


@pytest.mark.parametrize("policy", ["nonmatch", "exclude"])
def test_exhaustive_summary_equals_the_score_table_summary(policy):
    samples, emb, ok = world()
    i, j = np.triu_indices(len(samples), 1)
    mated = samples.subjects[i] == samples.subjects[j]
    pairs = Pairs(i, j, mated, np.full(len(i), -1), "all")
    table = ScoreTable.build(samples, pairs, pair_distances(emb, i, j, "euclidean"), ok)
    failures = [None if k else "no_face" for k in ok]
    common = dict(target_fmr=1e-2, threshold_value=None, confidence=0.95, image_failures=failures,
                  header={}, min_count=(5, 10))
    ref = summarise(table, threshold_policy="global_fmr", failure_policy=policy,
                    image_groups=samples.attributes, bootstrap=None, **common)
    res = exhaustive_counts(emb, ok, samples.subjects, dict(samples.attributes), distance="euclidean",
                            failure_policy=policy)
    ex = summarise_exhaustive(res, samples, threshold_policy="global_fmr", **common)
    # float32 vs float64 scores: the same threshold rank, hence the same counts
    assert ex["threshold"]["value"] == pytest.approx(ref["threshold"]["value"], abs=1e-5)
    assert counts(ex["overall"]) == counts(ref["overall"])
    for g in ("f", "m"):
        assert counts(ex["groups"]["sex"][g]) == counts(ref["groups"]["sex"][g])
        for rate in ("fmr", "fnmr"):
            for field in ("subjects", "small", "small_reason", "rate", "ci"):
                assert ex["groups"]["sex"][g][rate][field] == ref["groups"]["sex"][g][rate][field], (g, rate, field)
        for target in ("0.1", "0.01"):   # each group's own operating points, from the kept top-k
            got, want = ex["groups"]["sex"][g]["fnmr_at_fmr"][target], ref["groups"]["sex"][g]["fnmr_at_fmr"][target]
            assert got["fnmr"] == pytest.approx(want["fnmr"])
            assert got["achieved_fmr"] == pytest.approx(want["achieved_fmr"])
            assert got["threshold"] == pytest.approx(want["threshold"], abs=1e-5)
    assert ex["cross_fmr"]["sex"]["n_impostor"] == ref["cross_fmr"]["sex"]["n_impostor"]
    assert ex["cross_fmr"]["sex"]["false_matches"] == ref["cross_fmr"]["sex"]["false_matches"]
    assert ex["failures"]["comparisons"] == ref["failures"]["comparisons"]
    assert ex["failures"]["excluded_comparisons"] == ref["failures"]["excluded_comparisons"]
    assert ex["disparity"]["sex"]["fnmr_max_min_ratio"]["value"] == pytest.approx(
        ref["disparity"]["sex"]["fnmr_max_min_ratio"]["value"])
    assert ex["bootstrap"] is None and "bootstrap" in ex["not_computed"]


def test_exhaustive_summary_refuses_policies_it_cannot_honour():
    samples, emb, ok = world()
    res = exhaustive_counts(emb, ok, samples.subjects, dict(samples.attributes))
    with pytest.raises(ValueError, match="not available with protocol=exhaustive"):
        summarise_exhaustive(res, samples, threshold_policy="per_group_fmr", target_fmr=1e-2, threshold_value=None,
                             confidence=0.95, image_failures=[None] * len(samples), header={})


def test_a_fixed_threshold_beyond_the_kept_impostors_uses_the_counts_made_during_the_pass():
    """topk keeps only the closest impostors; a fixed threshold above their cut-off must still be
    exact, from the counts exhaustive_counts made at that threshold (not from the kept list)."""
    samples, emb, ok = world()
    full = exhaustive_counts(emb, ok, samples.subjects, dict(samples.attributes), keep_scores=True)
    t = float(np.quantile(full.impostor_scores, 0.5))     # far above a top-50 cut-off
    res = exhaustive_counts(emb, ok, samples.subjects, dict(samples.attributes), thresholds=[t], topk=50,
                            keep_scores=False)
    assert not res.impostor_complete and t > res.impostor_cutoff
    common = dict(target_fmr=1e-2, confidence=0.95, image_failures=[None] * len(samples), header={})
    ex = summarise_exhaustive(res, samples, threshold_policy="fixed", threshold_value=t, **common)
    ref = summarise_exhaustive(full, samples, threshold_policy="fixed", threshold_value=t, **common)
    assert counts(ex["overall"]) == counts(ref["overall"])
    assert ex["overall"]["fmr"]["errors"] > 50
    for g in ("f", "m"):
        assert counts(ex["groups"]["sex"][g]) == counts(ref["groups"]["sex"][g])
