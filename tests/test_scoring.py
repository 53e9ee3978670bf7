"""Distances: pair_distances and the block distance_matrix against formulas written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.scoring import DISTANCES, apply_failure_policy, distance_matrix, pair_distances


def _chi2_by_hand(x, y):
    """Ahonen, Hadid & Pietikainen (2006): sum over bins of (x - y)^2 / (x + y); empty bins add 0."""
    total = 0.0
    for xk, yk in zip(x, y):
        if xk + yk != 0:
            total += (xk - yk) ** 2 / (xk + yk)
    return total


def _by_hand(x, y, distance):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if distance == "euclidean":
        return float(np.sqrt(((x - y) ** 2).sum()))
    if distance == "euclidean_l2":
        return float(np.sqrt(((x / np.sqrt((x * x).sum()) - y / np.sqrt((y * y).sum())) ** 2).sum()))
    if distance == "cosine":
        return float(1 - (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
    return _chi2_by_hand(x, y)


def _matrix(n=25, d=10, seed=0):
    rng = np.random.default_rng(seed)
    X = np.abs(rng.normal(size=(n, d))).astype(np.float32)
    X[:, :3] = 0.0          # bins empty in every image
    X[4, 5:] = 0.0          # more empty bins, in one image only
    X[7] = np.nan           # a failed image
    return X


@pytest.mark.parametrize("distance", DISTANCES)
def test_pair_distances_against_hand_formula(distance):
    X = _matrix()
    a, b = np.triu_indices(len(X), 1)
    got = pair_distances(X, a, b, distance, chunk=17)
    for k in range(0, len(a), 7):
        want = _by_hand(X[a[k]], X[b[k]], distance)
        if 7 in (a[k], b[k]):
            assert np.isnan(got[k])
        else:
            assert got[k] == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_chi2_known_values():
    x = np.array([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    # (1-3)^2/4 + 0 (empty bin) + (2-0)^2/2 + 0 = 1 + 2 = 3
    assert pair_distances(x, [0], [1], "chi2")[0] == pytest.approx(3.0)
    assert pair_distances(x, [0], [0], "chi2")[0] == 0.0
    assert distance_matrix(x, x, "chi2")[0, 1] == pytest.approx(3.0)


@pytest.mark.parametrize("distance", DISTANCES)
def test_distance_matrix_equals_pair_distances(distance):
    X = _matrix(n=31)
    Y = _matrix(n=12, seed=1)
    D = distance_matrix(X, Y, distance)
    assert D.shape == (31, 12)
    a, b = np.meshgrid(np.arange(31), np.arange(12), indexing="ij")
    both = np.concatenate([X, Y])
    want = pair_distances(both, a.ravel(), 31 + b.ravel(), distance).reshape(31, 12)
    assert (np.isnan(D) == np.isnan(want)).all()
    np.testing.assert_allclose(D[~np.isnan(D)], want[~np.isnan(want)], rtol=1e-9, atol=1e-7)


def test_distance_matrix_chi2_memory_chunks():
    """A tiny budget forces one column at a time through the chi2 kernel: same numbers."""
    X = _matrix(n=40)
    np.testing.assert_array_equal(distance_matrix(X, X, "chi2", memory_budget_mb=0.0001),
                                  distance_matrix(X, X, "chi2"))


def test_float32_distance_matrix_is_close_on_dlib_scale_vectors():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(50, 128)) * 0.09).astype(np.float32)  # dlib descriptors: norm ~1
    a, b = np.triu_indices(50, 1)
    D = distance_matrix(X, X, "euclidean", dtype=np.float32)
    np.testing.assert_allclose(D[a, b], pair_distances(X, a, b, "euclidean"), atol=2e-6)


def test_unknown_distance_raises():
    X = _matrix()
    with pytest.raises(ValueError, match="unknown distance"):
        pair_distances(X, [0], [1], "manhattan")
    with pytest.raises(ValueError, match="unknown distance"):
        distance_matrix(X, X, "manhattan")


def test_apply_failure_policy():
    s, keep = apply_failure_policy(np.array([0.1, np.nan]), np.array([False, True]), "nonmatch")
    assert s.tolist() == [0.1, np.inf] and keep.tolist() == [True, True]
    s, keep = apply_failure_policy(np.array([0.1, np.nan]), np.array([False, True]), "exclude")
    assert keep.tolist() == [True, False]
