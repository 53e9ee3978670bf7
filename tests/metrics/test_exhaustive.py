"""Exhaustive all-vs-all counts against a brute-force double loop over every pair."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.data.protocols import cap_images_per_subject, generated_pairs
from evalkit.data.samples import Samples
from evalkit.metrics import rates
from evalkit.metrics.exhaustive import exhaustive_counts, exhaustive_protocol, float32_threshold
from evalkit.scoring import distance_matrix, pair_distances


def _data(seed=0, n=70, d=12, n_subjects=14, fail_rate=0.1, hist=False):
    rng = np.random.default_rng(seed)
    subjects = np.array([f"s{k:02d}" for k in rng.integers(0, n_subjects, n)])
    centres = rng.normal(size=(n_subjects, d))
    codes = np.array([int(s[1:]) for s in subjects])
    X = centres[codes] + 0.6 * rng.normal(size=(n, d))
    if hist:
        X = np.abs(X)
        X[:, :2] = 0.0  # bins empty in both images: the zero-denominator rule
    X = X.astype(np.float32)
    ok = rng.random(n) > fail_rate
    ok[:2] = True
    X[~ok] = np.nan
    groups = {"sex": np.array(["female", "male", "unlabelled"])[rng.integers(0, 3, n)],
              "race": np.array(["a", "b"])[rng.integers(0, 2, n)]}
    return X, ok, subjects, groups


def _brute(X, ok, subjects, groups, thresholds, distance, policy):
    """Plain double loop: one comparison at a time, float32 scores from the same matrix."""
    n = len(X)
    D = distance_matrix(X, X, distance, dtype=np.float32).astype(np.float64)
    out = {}

    def bump(key):
        out[key] = out.get(key, 0) + 1

    for i in range(n):
        for j in range(i + 1, n):
            mated = subjects[i] == subjects[j]
            failed = not (ok[i] and ok[j])
            cells = [("all",)] + [(a, *sorted((g[i], g[j]))) for a, g in groups.items()]
            for cell in cells:
                kind = "gen" if mated else "imp"
                if failed:
                    bump((cell, kind, "failed"))
                    if policy == "exclude":
                        continue
                bump((cell, kind, "n"))
                for k, t in enumerate(thresholds):
                    match = (not failed) and D[i, j] <= t
                    if mated and not match:
                        bump((cell, "fnm", k))
                    if not mated and match:
                        bump((cell, "fm", k))
    return out


def _check(res, brute, groups, thresholds):
    def get(*key):
        return brute.get(key, 0)

    def same(c, cell):
        assert c.n_genuine == get(cell, "gen", "n")
        assert c.n_impostor == get(cell, "imp", "n")
        assert c.failed_genuine == get(cell, "gen", "failed")
        assert c.failed_impostor == get(cell, "imp", "failed")
        assert c.false_nonmatches.tolist() == [get(cell, "fnm", k) for k in range(len(thresholds))]
        assert c.false_matches.tolist() == [get(cell, "fm", k) for k in range(len(thresholds))]

    same(res.overall, ("all",))
    for attr in groups:
        cc = res.groups[attr]
        assert list(cc.labels) == sorted(set(groups[attr]))
        for a in cc.labels:
            for b in cc.labels:
                same(cc.cell(a, b), (attr, *sorted((a, b))))
        mixed = cc.mixed()
        cross = [(a, b) for ia, a in enumerate(cc.labels) for b in cc.labels[ia + 1:]]
        assert mixed.n_impostor == sum(cc.cell(a, b).n_impostor for a, b in cross)
        assert mixed.false_matches.tolist() == np.sum([cc.cell(a, b).false_matches for a, b in cross],
                                                      axis=0).tolist()
        assert (cc.completed_impostor == cc.completed_impostor.T).all()


def _thresholds(X, distance, qs=(0.02, 0.3, 0.6)):
    """Thresholds at score quantiles, nudged to fall strictly between two float32 scores."""
    D = distance_matrix(X, X, distance, dtype=np.float32)
    s = np.unique(D[np.triu_indices(len(X), 1)][np.isfinite(D[np.triu_indices(len(X), 1)])])
    out = []
    for q in qs:
        k = int(q * (len(s) - 1))
        out.append(float((np.float64(s[k]) + np.float64(s[k + 1])) / 2))
    return out[::-1]  # unsorted on purpose: counts must come back in the caller's order


@pytest.mark.parametrize("policy", ["nonmatch", "exclude"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "euclidean_l2", "chi2"])
def test_counts_match_brute_force(policy, distance):
    X, ok, subjects, groups = _data(seed=1, hist=distance == "chi2")
    thresholds = _thresholds(X, distance)
    res = exhaustive_counts(X, ok, subjects, groups, thresholds, distance, policy, block_rows=9)
    _check(res, _brute(X, ok, subjects, groups, thresholds, distance, policy), groups, thresholds)
    assert res.n_comparisons == len(X) * (len(X) - 1) // 2
    assert res.n_blocks == math.ceil((len(X) - 1) / 9)


def test_threshold_on_a_score_counts_as_match():
    """A score equal to the threshold is a match (score <= threshold), also in float32."""
    X, ok, subjects, groups = _data(seed=2, n=40, fail_rate=0.1)
    first = exhaustive_counts(X, ok, subjects, groups, [1.0], "euclidean", block_rows=4, keep_scores=True)
    done = ~first.genuine_failed
    t = [float(first.impostor_scores[10]), float(np.sort(first.genuine_scores[done])[3])]
    res = exhaustive_counts(X, ok, subjects, groups, t, "euclidean", block_rows=4, keep_scores=True)
    for k, tk in enumerate(t):
        assert res.overall.false_matches[k] == int((first.impostor_scores <= tk).sum())
        assert res.overall.false_nonmatches[k] == int((first.genuine_scores > tk).sum())
    # ranks 0..10 of the impostors and 0..3 of the completed genuine scores are matches
    assert res.overall.false_matches[0] == 11
    assert res.overall.n_genuine - res.overall.false_nonmatches[1] == 4


def test_genuine_and_kept_impostor_scores_agree_with_pair_distances():
    X, ok, subjects, groups = _data(seed=3)
    res = exhaustive_counts(X, ok, subjects, groups, [1.0], "euclidean", keep_scores=True, block_rows=5)
    assert res.impostor_complete and np.isinf(res.impostor_cutoff)
    d = pair_distances(X, res.genuine_a, res.genuine_b, "euclidean")
    np.testing.assert_allclose(res.genuine_scores[~res.genuine_failed], d[~res.genuine_failed], atol=1e-5)
    assert np.isinf(res.genuine_scores[res.genuine_failed]).all()
    assert (subjects[res.genuine_a] == subjects[res.genuine_b]).all()
    # every completed impostor comparison exactly once, sorted by score
    a, b = np.triu_indices(len(X), 1)
    imp = (subjects[a] != subjects[b]) & ok[a] & ok[b]
    assert len(res.impostor_scores) == imp.sum()
    assert set(zip(res.impostor_a.tolist(), res.impostor_b.tolist())) == set(zip(a[imp].tolist(), b[imp].tolist()))
    assert (np.diff(res.impostor_scores) >= 0).all()
    np.testing.assert_allclose(res.impostor_scores,
                               pair_distances(X, res.impostor_a, res.impostor_b, "euclidean"), atol=1e-5)
    assert len(res.genuine_a) == (subjects[a] == subjects[b]).sum()


@pytest.mark.parametrize("policy", ["nonmatch", "exclude"])
def test_tiny_budget_keeps_exact_topk(policy):
    """A budget too small to keep every impostor score forces the top-k path; what it keeps is
    exactly the k smallest, and thresholds at FMRs it covers equal rates.threshold_at_fmr."""
    X, ok, subjects, groups = _data(seed=4, n=90)
    # float32 GEMM results can differ in the last bit between block shapes: same block_rows for both
    full = exhaustive_counts(X, ok, subjects, groups, [1.5, 3.0], "euclidean", policy, keep_scores=True,
                             block_rows=3)
    small = exhaustive_counts(X, ok, subjects, groups, [1.5, 3.0], "euclidean", policy,
                              memory_budget_mb=0.001, topk=80, block_rows=3)
    assert not small.impostor_complete
    assert len(small.impostor_scores) == 80
    np.testing.assert_array_equal(small.impostor_scores, full.impostor_scores[:80])
    assert small.impostor_cutoff == full.impostor_scores[79]
    for attr in groups:  # the counting itself never depends on the kept list
        np.testing.assert_array_equal(small.groups[attr].false_matches, full.groups[attr].false_matches)
    assert small.overall.as_dict() == full.overall.as_dict()
    # the independent reference: rates.threshold_at_fmr on every impostor score (+inf = failed)
    a, b = np.triu_indices(len(X), 1)
    imp = subjects[a] != subjects[b]
    failed = ~(ok[a] & ok[b])
    keep = np.ones(len(a), bool) if policy == "nonmatch" else ~failed
    n_failed_imp = int((imp & failed).sum()) if policy == "nonmatch" else 0
    scores = np.r_[full.impostor_scores, np.full(n_failed_imp, np.inf)]
    assert len(scores) == (imp & keep).sum()
    for target in (1e-3, 0.005, 0.01, 0.02):
        want = rates.threshold_at_fmr(scores, target)
        got = small.threshold_at_fmr(target)
        assert (got.threshold, got.achieved_fmr, got.n_impostor, got.resolvable) == \
               (want.threshold, want.achieved_fmr, want.n_impostor, want.resolvable)
    with pytest.raises(ValueError, match="topk"):
        small.threshold_at_fmr(0.5)
    # exact per-group counts at a threshold below the cut-off, without a second pass
    t = [float(small.impostor_scores[30]), float(small.impostor_scores[5])]
    over, grp = small.counts_at(t)
    ref = exhaustive_counts(X, ok, subjects, groups, t, "euclidean", policy, block_rows=3)
    assert over.false_matches.tolist() == ref.overall.false_matches.tolist()
    assert over.false_nonmatches.tolist() == ref.overall.false_nonmatches.tolist()
    for attr in groups:
        np.testing.assert_array_equal(grp[attr].false_matches, ref.groups[attr].false_matches)
        np.testing.assert_array_equal(grp[attr].false_nonmatches, ref.groups[attr].false_nonmatches)
    with pytest.raises(ValueError, match="cut-off"):
        small.counts_at([float(small.impostor_cutoff)])


def test_auto_keeps_all_when_it_fits_and_topk_otherwise():
    X, ok, subjects, groups = _data(seed=5, n=50)
    assert exhaustive_counts(X, ok, subjects, groups, [1.0]).impostor_complete
    res = exhaustive_counts(X, ok, subjects, groups, [1.0], memory_budget_mb=0.002, topk=10)
    assert not res.impostor_complete and len(res.impostor_scores) == 10
    res = exhaustive_counts(X, ok, subjects, groups, [1.0], keep_scores=False, topk=10 ** 6)
    assert res.impostor_complete  # fewer impostors than k: nothing dropped


def test_float32_threshold():
    t = np.array([0.1, 0.6, 1.0, 1e-30, 3.4e38, 1e300])
    t32 = float32_threshold(t)
    assert (t32.astype(np.float64) <= t).all()
    with np.errstate(over="ignore"):
        up = np.nextafter(t32, np.float32(np.inf))
    assert ((up.astype(np.float64) > t) | np.isinf(up)).all()


def test_bad_input_raises():
    X, ok, subjects, groups = _data(seed=6, n=10, fail_rate=0.0)
    with pytest.raises(ValueError, match="distance"):
        exhaustive_counts(X, ok, subjects, groups, [1.0], "manhattan")
    with pytest.raises(ValueError, match="failure policy"):
        exhaustive_counts(X, ok, subjects, groups, [1.0], failure_policy="drop")
    with pytest.raises(ValueError, match="finite"):
        exhaustive_counts(X, ok, subjects, groups, [float("inf")])
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        exhaustive_counts(bad, ok, subjects, groups, [1.0])
    with pytest.raises(ValueError, match="length"):
        exhaustive_counts(X, ok, subjects, {"sex": groups["sex"][:-1]}, [1.0])


def test_cap_per_subject_protocol_matches_generated_pairs():
    """The exhaustive protocol compares exactly the pairs generated_pairs lists for the same cap and
    seed (every mated and non-mated pair of the kept images)."""
    X, ok, subjects, groups = _data(seed=7, n=80, n_subjects=6, fail_rate=0.05)
    samples = Samples(name="toy", ids=[f"img{i:03d}" for i in range(len(X))],
                      paths=[f"/nowhere/{i}.jpg" for i in range(len(X))], subjects=subjects,
                      attributes=groups)
    cap, seed = 4, 11
    kept, res = exhaustive_protocol(samples, X, ok, max_images_per_subject=cap, seed=seed,
                                    thresholds=[2.0, 4.0], distance="euclidean", keep_scores=True)
    np.testing.assert_array_equal(kept, cap_images_per_subject(samples, cap, np.random.default_rng(seed)))
    assert np.bincount(np.unique(subjects[kept], return_inverse=True)[1]).max() <= cap
    pairs = generated_pairs(samples, cap, None, seed)
    gen = set(zip(pairs.a[pairs.mated].tolist(), pairs.b[pairs.mated].tolist()))
    assert set(zip(res.genuine_a.tolist(), res.genuine_b.tolist())) == gen
    imp_done = {(a, b) for a, b in zip(pairs.a[~pairs.mated].tolist(), pairs.b[~pairs.mated].tolist())
                if ok[a] and ok[b]}
    assert set(zip(res.impostor_a.tolist(), res.impostor_b.tolist())) == imp_done
    # counts against the pair list scored with pair_distances (float64): thresholds far from scores
    d = np.where(ok[pairs.a] & ok[pairs.b], pair_distances(X, pairs.a, pairs.b, "euclidean"), np.inf)
    for k, t in enumerate([2.0, 4.0]):
        assert np.abs(d[np.isfinite(d)] - t).min() > 1e-4
        assert res.overall.false_matches[k] == int((d[~pairs.mated] <= t).sum())
        assert res.overall.false_nonmatches[k] == int((d[pairs.mated] > t).sum())
        fem = (groups["sex"][pairs.a] == "female") & (groups["sex"][pairs.b] == "female")
        assert res.groups["sex"].group("female").false_matches[k] == int((d[~pairs.mated & fem] <= t).sum())
    assert res.overall.n_impostor == int((~pairs.mated).sum())
