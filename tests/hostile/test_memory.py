"""Issue 13, item 2: pair scoring is bounded in bytes whatever the embedding width, and gives the
same numbers as a float64 copy of the whole matrix would."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from evalkit.scoring import DISTANCES, pair_chunk_rows, pair_distances


def _reference(X, a, b, distance):
    """The definitions written out on a float64 copy of the whole matrix, one pair at a time."""
    X = X.astype(np.float64)
    out = []
    for i, j in zip(a, b):
        x, y = X[i], X[j]
        if distance in ("cosine", "euclidean_l2"):
            x, y = x / np.sqrt((x * x).sum()), y / np.sqrt((y * y).sum())
        if distance == "cosine":
            out.append(1 - (x * y).sum())
        elif distance == "chi2":
            den = x + y
            out.append(np.where(den != 0, (x - y) ** 2 / np.where(den != 0, den, 1), 0).sum())
        else:
            out.append(np.sqrt(((x - y) ** 2).sum()))
    return np.array(out)


@pytest.mark.parametrize("distance", DISTANCES)
def test_wide_embeddings_stay_within_the_byte_budget(distance):
    """4,096-d, 600 pairs, a 4 MiB budget: the peak of Python-tracked allocations during the call
    (numpy reports its buffers to tracemalloc) stays near the budget plus the result. The earlier
    code copied the matrix to float64 and took 65,536 pairs per chunk whatever the width: about
    20 MB per temporary here, over 100 MB in all."""
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(60, 4096))).astype(np.float32)
    a, b = rng.integers(0, 60, 600), rng.integers(0, 60, 600)
    budget = 4 << 20
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        got = pair_distances(X, a, b, distance, memory_budget_bytes=budget)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < budget * 1.5 + got.nbytes + (1 << 20), f"peak {peak / 2**20:.1f} MiB for a 4 MiB budget"
    np.testing.assert_allclose(got, _reference(X, a, b, distance), rtol=1e-12, atol=1e-12)


def test_chunk_rows_are_budgeted_in_bytes():
    assert pair_chunk_rows(128, 256 << 20) == 65536      # the old fixed chunk at dlib's width
    assert pair_chunk_rows(16384, 256 << 20) == 512      # LBPH: 128 times fewer pairs per chunk
    assert pair_chunk_rows(10**9, 1) == 1


@pytest.mark.parametrize("distance", DISTANCES)
def test_budget_does_not_change_a_single_bit(distance):
    """Scores written to scores.csv must not move: any budget (so any chunking) gives the same
    float64 values, for float32 and float64 input."""
    rng = np.random.default_rng(1)
    X = np.abs(rng.normal(size=(40, 128))).astype(np.float32)
    X[3] = np.nan
    X[5] = 0.0
    a, b = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    ref = pair_distances(X, a, b, distance)
    for budget in (1, 10_000, 1 << 30):
        np.testing.assert_array_equal(pair_distances(X, a, b, distance, memory_budget_bytes=budget), ref)
    np.testing.assert_array_equal(pair_distances(X.astype(np.float64), a, b, distance), ref)
