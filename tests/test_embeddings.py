"""The extraction loop: cache (no pickle), once per fingerprint, worker order, kept work."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit import embeddings
from evalkit.backends.base import MISSING_FILE, UNREADABLE


@pytest.fixture(scope="module")
def paths(lfw_image):
    return [lfw_image("Aaron_Peirsol", i) for i in (1, 2, 3, 4)] + [lfw_image("Serena_Williams", i) for i in (1, 2)]


def test_second_extraction_reads_everything_from_cache(paths, tmp_path, evalkit_home):
    r1, s1, fp1 = embeddings.extract(paths, "dlib", {}, tmp_path, workers=1, progress=False)
    assert s1.computed == len(paths) and s1.from_cache == 0
    r2, s2, fp2 = embeddings.extract(paths, "dlib", {}, tmp_path, workers=1, progress=False)
    assert s2.computed == 0 and s2.from_cache == len(paths)
    assert fp1 == fp2
    np.testing.assert_array_equal(r1.vectors, r2.vectors)
    # a different fingerprint (option that changes embeddings) gets its own cache folder
    _, s3, _ = embeddings.extract(paths[:1], "dlib", {"num_jitters": 1}, tmp_path, workers=1, progress=False)
    assert s3.computed == 1


def test_cache_shards_load_without_pickle(paths, tmp_path, evalkit_home):
    embeddings.extract(paths[:2], "dlib", {}, tmp_path, workers=1, progress=False)
    shards = list(tmp_path.glob("dlib-*/part-*.npz"))
    assert shards
    with np.load(shards[0], allow_pickle=False) as z:
        assert z["vectors"].dtype == np.float32 and z["keys"].dtype.kind == "U"


def test_two_workers_give_the_same_embeddings_in_input_order(paths, tmp_path, evalkit_home):
    r1, _, _ = embeddings.extract(paths, "dlib", {}, tmp_path / "a", workers=1, progress=False)
    r2, s2, _ = embeddings.extract(paths, "dlib", {}, tmp_path / "b", workers=2, chunk_size=2, progress=False)
    assert s2.workers == 2
    np.testing.assert_allclose(r1.vectors, r2.vectors, atol=1e-6)


def test_failures_recorded_not_dropped_and_identical_images_embedded_once(paths, tmp_path, corrupt_image, evalkit_home):
    batch = [paths[0], str(tmp_path / "missing.jpg"), str(corrupt_image), paths[0]]
    res, stats, _ = embeddings.extract(batch, "dlib", {}, tmp_path / "c", workers=1, progress=False)
    assert res.failures == [None, MISSING_FILE, UNREADABLE, None]
    assert res.vectors.shape[0] == 4
    assert stats.computed == 2            # the duplicate image is embedded once; missing is not attempted
    assert stats.failures == {MISSING_FILE: 1, UNREADABLE: 1}


def test_interrupted_extraction_keeps_finished_work(paths, tmp_path, monkeypatch, evalkit_home):
    from evalkit.backends.dlib_native import DlibBackend

    real = DlibBackend.embed
    calls = {"n": 0}

    def flaky(self, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("user pressed ctrl-c")
        return real(self, chunk)

    monkeypatch.setattr(DlibBackend, "embed", flaky)
    with pytest.raises(KeyboardInterrupt):
        embeddings.extract(paths, "dlib", {}, tmp_path, workers=1, chunk_size=2, flush_every=100, progress=False)
    monkeypatch.setattr(DlibBackend, "embed", real)
    _, stats, _ = embeddings.extract(paths, "dlib", {}, tmp_path, workers=1, chunk_size=2, progress=False)
    assert stats.from_cache == 4 and stats.computed == 2


def test_errors_and_missing_files_are_not_cached(tmp_path):
    """Only real outcomes are cached: an unexpected error, or a file that vanished between hashing
    and reading, is retried next run instead of being served from the cache."""
    from evalkit.backends.base import ERROR, NO_FACE

    cache = embeddings.EmbeddingCache(tmp_path, "fake", {"backend": "fake"})
    vecs = np.array([[1.0, 2.0], [np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]], np.float32)
    cache.write(["k-ok", "k-err", "k-gone", "k-noface"], vecs, [None, ERROR, MISSING_FILE, NO_FACE], ["", "boom", "p", "d"])
    reread = embeddings.EmbeddingCache(tmp_path, "fake", {"backend": "fake"})   # from the shard on disk
    assert len(reread) == 2 and reread.get("k-err") is None and reread.get("k-gone") is None
    np.testing.assert_array_equal(reread.get("k-ok")[0], [1.0, 2.0])
    assert reread.get("k-noface")[0] is None and reread.get("k-noface")[1:] == (NO_FACE, "d")
