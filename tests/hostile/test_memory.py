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


def test_a_warm_extraction_holds_the_embeddings_once(tmp_path):
    """Issue 13, item 3 (LBPH on LFW View 2 peaked above 1 GB warm): reading 300 cached 16,384-d
    vectors (19.7 MB) must not keep a second copy. The cache used to load every vector of its
    folder into memory and the loop then stacked them into the returned matrix: twice the
    matrix. Now the cache keeps an index and copies each shard's vectors straight into the one
    matrix; the peak (numpy buffers are traced by tracemalloc) is the matrix plus one shard."""
    from evalkit import embeddings
    from evalkit.backends.base import Backend

    class Cached(Backend):
        """Only ever asked for images that are already in the cache."""
        name = "wide"

        def embed_one(self, path):
            raise AssertionError("a warm extraction must not embed")

        def fingerprint(self):
            return {"backend": "wide", "version": 1}

    n, dim = 300, 16384
    rng = np.random.default_rng(2)
    paths = []
    for i in range(n):
        p = tmp_path / f"img{i}.bin"
        p.write_bytes(rng.bytes(64))
        paths.append(str(p))
    keys = [embeddings.image_key(p) for p in paths]
    want = rng.random((n, dim), dtype=np.float32)
    cache = embeddings.EmbeddingCache(tmp_path / "cache", "wide", Cached().fingerprint())
    for s in range(0, n, 100):              # three shards, as the extraction loop writes them
        cache.write(keys[s:s + 100], want[s:s + 100], [None] * 100, [""] * 100)
    del cache
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res, stats, _ = embeddings.extract(paths, "wide", {}, tmp_path / "cache", progress=False, backend=Cached())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert stats.from_cache == n and stats.computed == 0
    np.testing.assert_array_equal(res.vectors, want)
    shard = want[:100].nbytes
    assert peak < want.nbytes + 2.5 * shard, (
        f"peak {peak / 2**20:.1f} MiB for a {want.nbytes / 2**20:.1f} MiB matrix (shards {shard / 2**20:.1f} MiB)")
