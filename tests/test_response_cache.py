"""The scoring services' response cache: JSON entries, keys that change with everything that can
change an answer, atomic writes, unreadable entries treated as absent."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from evalkit.backends.scoring_base import (CallPlan, CostLimitExceeded, check_limits, present_scores,
                                           sigmoid_similarity, similarity_to_distance, to_internal)
from evalkit.response_cache import ResponseCache, request_key

BASE = dict(service="rekognition", region="us-east-1", model_version="7.0", operation="CompareFaces",
            images=["a" * 64, "b" * 64], params={"SimilarityThreshold": 0.0, "QualityFilter": "NONE"})


def test_key_changes_with_everything_that_can_change_the_answer():
    k0, req = request_key(**BASE)
    assert req["images"] == BASE["images"] and request_key(**BASE)[0] == k0
    variants = [dict(region="eu-west-1"), dict(model_version="6.0"), dict(operation="SearchFacesByImage"),
                dict(images=BASE["images"][::-1]), dict(params={**BASE["params"], "QualityFilter": "HIGH"})]
    keys = {request_key(**{**BASE, **v})[0] for v in variants}
    assert len(keys) == len(variants) and k0 not in keys


def test_entries_are_json_written_atomically(tmp_path, monkeypatch):
    cache = ResponseCache(tmp_path, "rekognition")
    key, req = request_key(**BASE)
    assert cache.get(key) is None and key not in cache
    cache.put(key, req, {"response": {"FaceMatches": [{"Similarity": 97.5}]}})
    files = list((tmp_path / "rekognition").rglob("*"))
    assert [p.suffix for p in files if p.is_file()] == [".json"]          # no temporary left behind
    entry = json.loads(next(p for p in files if p.is_file()).read_text())
    assert entry["request"] == req and entry["key"] == key
    assert ResponseCache(tmp_path, "rekognition").get(key) == {"response": {"FaceMatches": [{"Similarity": 97.5}]}}

    # a write interrupted before the rename leaves the old entry intact and no temporary file
    def boom(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put(key, req, {"response": {"FaceMatches": []}})
    monkeypatch.undo()
    assert cache.get(key)["response"]["FaceMatches"][0]["Similarity"] == 97.5
    assert [p.suffix for p in (tmp_path / "rekognition").rglob("*") if p.is_file()] == [".json"]


def test_a_corrupt_entry_counts_as_absent(tmp_path):
    cache = ResponseCache(tmp_path, "rekognition")
    key, req = request_key(**BASE)
    cache.put(key, req, {"response": {}})
    path = next(p for p in (tmp_path / "rekognition").rglob("*.json"))
    path.write_text('{"schema": "evalkit.response_cache/1", "key": ')   # half-written by hand
    assert cache.get(key) is None


def test_similarity_enters_the_metrics_negated_exactly():
    s = np.array([0.0, 12.5, 80.0, 99.99999, 100.0, np.nan])
    d = to_internal(s, "similarity")
    np.testing.assert_array_equal(present_scores(d, "similarity"), s)
    t = 80.0
    np.testing.assert_array_equal((d <= -t)[:-1], (s >= t)[:-1])          # the same decisions
    np.testing.assert_array_equal(to_internal(s, "distance"), s)
    with pytest.raises(ValueError, match="direction"):
        to_internal(s, "similar")


def test_the_fakes_similarity_map_is_monotone_and_documented():
    d = np.linspace(0, 1.5, 301)
    s = sigmoid_similarity(d, 0.6, 0.05)
    assert np.all(np.diff(s) < 0) and s[0] < 100 and s[-1] > 0
    assert sigmoid_similarity(0.6, 0.6, 0.05) == pytest.approx(50)
    for v, dist in ((80, 0.531), (99, 0.370)):                           # the README's numbers
        assert similarity_to_distance(v, 0.6, 0.05) == pytest.approx(dist, abs=5e-4)


def test_cost_limits():
    plan = CallPlan(calls={"CompareFaces": 6000}, cached=0, price_per_call=0.001)
    assert plan.cost == pytest.approx(6.0) and "6,000 billable calls" in plan.describe()
    with pytest.raises(CostLimitExceeded, match="6,000 calls > backend.max_calls=1,000"):
        check_limits(plan, 1000, None, False)
    with pytest.raises(CostLimitExceeded, match="6.00 USD > backend.max_cost=5"):
        check_limits(plan, None, 5.0, False)
    check_limits(plan, 1000, 5.0, True)          # told to accept it
    check_limits(plan, 6000, 6.0, False)         # at the caps exactly
