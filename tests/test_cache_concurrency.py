"""The embedding cache under concurrent writers: several processes fill one fingerprint folder at
once (overlapping images, as cluster jobs whose shards share duplicates do), one is killed with
SIGKILL in the middle of a write, and a reader keeps loading the folder meanwhile. No entry may be
lost or corrupted, no reader may fail or see a partial file."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evalkit import embeddings

FP = {"backend": "fake", "model": "concurrency-test"}
DIM = 64
ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import os, sys, time, hashlib
import numpy as np
sys.path.insert(0, {root!r})
from evalkit import embeddings

root, first, last, per_shard, mode, signal_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]

def vec(k):
    return np.frombuffer(hashlib.sha256(k.encode()).digest() * 8, dtype=np.uint8)[:{dim}].astype(np.float32)

if mode == "hang_before_rename":        # killed after the data is on disk, before os.replace
    real = os.replace
    def stuck(src, dst):
        open(signal_file, "w").write(str(src))
        time.sleep(600)
    os.replace = stuck
elif mode == "hang_mid_write":          # killed with half the bytes written
    real_fsync = os.fsync
    def stuck_fsync(fd):
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        open(signal_file, "w").write("mid")
        time.sleep(600)
    os.fsync = stuck_fsync
cache = embeddings.EmbeddingCache(root, "fake", {fp!r})
n = 0
for s in range(first, last, per_shard):
    keys = [f"img-{{i:06d}}" for i in range(s, min(last, s + per_shard))]
    fails = [None if i % 7 else "no_face" for i in range(s, min(last, s + per_shard))]
    vecs = np.stack([vec(k) if f is None else np.full({dim}, np.nan, np.float32) for k, f in zip(keys, fails)])
    cache.write(keys, vecs, fails, ["" if f is None else "d" for f in fails])
    n += 1
    if mode == "loop":
        if n == 2:
            open(signal_file, "w").write("started")
        time.sleep(0.005)
print("done", n)
"""


def _vec(k: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(k.encode()).digest() * 8, dtype=np.uint8)[:DIM].astype(np.float32)


def _writer(tmp_path, first, last, per_shard, mode, tag):
    script = tmp_path / "writer.py"
    if not script.exists():
        script.write_text(WRITER.format(root=str(ROOT), dim=DIM, fp=FP))
    sig = tmp_path / f"signal-{tag}"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(first), str(last),
                             str(per_shard), mode, str(sig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, sig


def _wait_for(path: Path, proc, timeout=60.0):
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"writer ended before the signal: {proc.communicate()}")
        if time.time() - t0 > timeout:
            raise AssertionError("writer never reached the signal")
        time.sleep(0.02)


def _check_entries(cache, keys):
    for k in keys:
        hit = cache.get(k)
        assert hit is not None, f"entry {k} lost"
        vec, fail, _ = hit
        i = int(k.split("-")[1])
        if i % 7:
            assert fail is None
            np.testing.assert_array_equal(vec, _vec(k))
        else:
            assert fail == "no_face" and vec is None


def test_concurrent_writers_and_a_sigkilled_one_lose_nothing(tmp_path):
    # three writers with overlapping ranges (each image written by up to two of them)
    procs = [_writer(tmp_path, 0, 3000, 50, "normal", "a"),
             _writer(tmp_path, 1500, 4500, 70, "normal", "b"),
             _writer(tmp_path, 4000, 6000, 30, "normal", "c")]
    # a writer killed at an arbitrary moment of a long loop of writes
    loop, loop_sig = _writer(tmp_path, 10_000, 10_000_000, 400, "loop", "loop")
    # writers killed mid-write: data half written / fully written but not yet renamed
    mid, mid_sig = _writer(tmp_path, 6000, 6100, 100, "hang_mid_write", "mid")
    ren, ren_sig = _writer(tmp_path, 6100, 6200, 100, "hang_before_rename", "ren")
    # a reader loading the folder over and over while they write: never fails, never sees half a shard
    reads = 0
    _wait_for(loop_sig, loop)
    while any(p.poll() is None for p, _ in procs):
        c = embeddings.EmbeddingCache(tmp_path / "cache", "fake", FP)
        assert not c.skipped_shards
        sample = c.keys()[:: max(1, len(c) // 50)]
        _check_entries(c, sample)
        reads += 1
    assert reads >= 1
    loop.send_signal(signal.SIGKILL)
    for p, sig in ((mid, mid_sig), (ren, ren_sig)):
        _wait_for(sig, p)
        p.send_signal(signal.SIGKILL)
    for p in (loop, mid, ren):
        assert p.wait(timeout=30) == -signal.SIGKILL
    for p, _ in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()

    folder = next((tmp_path / "cache").glob("fake-*"))
    cache = embeddings.EmbeddingCache(tmp_path / "cache", "fake", FP)
    assert not cache.skipped_shards                       # no partial file is ever a part-*.npz
    _check_entries(cache, [f"img-{i:06d}" for i in range(6000)])
    # the killed loop writer's finished shards are all there and intact
    loop_keys = [k for k in cache.keys() if int(k.split("-")[1]) >= 10_000]
    assert len(loop_keys) >= 800 and len(loop_keys) % 400 == 0
    _check_entries(cache, loop_keys)
    # the two writers killed inside a write left only temporary files, none of their entries
    assert not any(6000 <= int(k.split("-")[1]) < 6200 for k in cache.keys())
    tmps = list(folder.glob(".tmp-*"))
    assert len(tmps) >= 2
    info = embeddings.describe_folder(folder, verify=True)
    assert info["problems"] == [] and info["entries"] == len(cache) == 6000 + len(loop_keys)
    assert info["temporary_files"] == len(tmps) and info["duplicate_rows"] > 0   # overlaps written twice
    # `evalkit cache --verify` agrees; --clean leaves young temporary files (a live writer's) alone
    assert embeddings.cache_main(["--root", str(tmp_path / "cache"), "--verify"]) == 0
    assert embeddings.clean_folder(folder) == []
    removed = embeddings.clean_folder(folder, older_than_s=0)
    assert sorted(removed) == sorted(p.name for p in tmps) and not list(folder.glob(".tmp-*"))


def test_damaged_shards_are_skipped_and_reported(tmp_path, capsys):
    cache = embeddings.EmbeddingCache(tmp_path, "fake", FP)
    keys = [f"img-{i:06d}" for i in range(1, 7)]
    cache.write(keys, np.stack([_vec(k) for k in keys]), [None] * 6, [""] * 6)
    good = next(cache.dir.glob("part-*.npz"))
    data = good.read_bytes()
    (cache.dir / "part-truncated.npz").write_bytes(data[: len(data) // 2])     # a half copy
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vectors"][2, 5] += 1                                               # one changed value
    np.savez(cache.dir / "part-flipped.npz", **arrays)                         # a valid zip, wrong checksum
    reread = embeddings.EmbeddingCache(tmp_path, "fake", FP)
    # the half copy is not even a zip: skipped when the folder is indexed; the flipped one's index
    # reads, and the good shard (read first) serves every key, so its vectors are never needed
    assert reread.skipped_shards == ["part-truncated.npz"]
    assert len(reread) == 6
    _check_entries(reread, keys)
    assert reread.skipped_shards == ["part-truncated.npz"]
    info = embeddings.describe_folder(cache.dir, verify=True)
    assert len(info["bad_shards"]) == 2 and any("checksum mismatch" in b for b in info["bad_shards"])
    assert embeddings.cache_main(["--root", str(tmp_path), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "6 entries" in out and "checksum mismatch" in out and "PROBLEMS" in out


def test_cache_command_lists_entries_size_and_fingerprint(tmp_path, capsys):
    cache = embeddings.EmbeddingCache(tmp_path, "fake", FP)
    keys = ["a", "b", "c"]
    cache.write(keys, np.ones((3, 4), np.float32), [None, "no_face", None], ["", "d", ""])
    assert embeddings.cache_main(["--root", str(tmp_path), "--show-fingerprint"]) == 0
    out = capsys.readouterr().out
    assert f"fake-{cache.dir.name.rsplit('-', 1)[1]}" in out
    assert "3 entries (failures: no_face 1); 1 shards" in out and '"model": "concurrency-test"' in out
    assert embeddings.cache_main(["--root", str(tmp_path), "nomatch"]) == 1


def test_a_shard_damaged_after_indexing_is_skipped_and_its_images_recomputed(tmp_path):
    """The checksum is checked when a shard's vectors are read (the index reads keys only): a
    shard whose vectors changed on disk is then skipped, its images fall back to another copy or
    are absent, and ``extract`` recomputes them instead of serving the changed values."""
    cache = embeddings.EmbeddingCache(tmp_path, "fake", FP)
    keys = [f"img-{i:06d}" for i in range(1, 7)]
    cache.write(keys[:3], np.stack([_vec(k) for k in keys[:3]]), [None] * 3, [""] * 3)
    cache.write(keys[3:], np.stack([_vec(k) for k in keys[3:]]), [None] * 3, [""] * 3)
    shard = next(p for p in cache.dir.glob("part-*.npz")
                 if "img-000004" in np.load(p, allow_pickle=False)["keys"].tolist())
    reread = embeddings.EmbeddingCache(tmp_path, "fake", FP)
    assert len(reread) == 6 and not reread.skipped_shards
    with np.load(shard, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vectors"][1, 3] += 1
    np.savez(shard, **arrays)                       # damaged after the index was read
    out = np.full((6, DIM), np.nan, np.float32)
    found = reread.read_into({k: [i] for i, k in enumerate(keys)}, lambda dim: out)
    assert sorted(found) == keys[:3] and reread.skipped_shards == [shard.name]
    np.testing.assert_array_equal(out[:3], np.stack([_vec(k) for k in keys[:3]]))
    assert np.isnan(out[3:]).all() and len(reread) == 3 and reread.get("img-000004") is None
