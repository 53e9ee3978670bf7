"""The extraction loop: each image embedded once per backend fingerprint, cached on disk,
computed in worker processes, failures recorded with their reason and never dropped.

Cache layout (no pickle anywhere; ``np.load(..., allow_pickle=False)``)::

    <cache_root>/<backend>-<fingerprint key>/
        fingerprint.json             the backend fingerprint this folder belongs to
        part-<digest>.npz            shards: keys (sha256 of the image bytes), vectors, failure, detail

An image is keyed by the SHA-256 of its bytes, so renaming or moving a dataset reuses the cache
and an edited image is embedded again. Shards are written as work progresses (every
``flush_every`` images) and on any interruption, so a crash never loses finished work.
Missing files and unexpected backend errors are not cached: they are retried next run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .backends import build_backend
from .backends.base import ERROR, MISSING_FILE, EmbeddingResult, fingerprint_key, stack_vectors
from .hashing import file_sha256

_WORKER_BACKEND = None


def _init_worker(family: str, options: dict) -> None:
    global _WORKER_BACKEND
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _WORKER_BACKEND = build_backend(family, options)


def _embed_chunk(paths: list[str]) -> EmbeddingResult:
    return _WORKER_BACKEND.embed(paths)


def image_key(path: str) -> str | None:
    """SHA-256 of the image bytes, or None when the file is missing."""
    try:
        return file_sha256(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


@dataclass
class ExtractionStats:
    n_images: int = 0
    from_cache: int = 0
    computed: int = 0
    failures: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1

    def as_dict(self) -> dict:
        return {"n_images": self.n_images, "from_cache": self.from_cache, "computed": self.computed,
                "failures": dict(sorted(self.failures.items())), "notes": dict(sorted(self.notes.items())),
                "seconds": round(self.seconds, 3),
                "workers": self.workers}


class EmbeddingCache:
    """Shards of embeddings for one backend fingerprint."""

    def __init__(self, root: str | os.PathLike, backend_name: str, fingerprint: dict):
        self.dir = Path(root) / f"{backend_name}-{fingerprint_key(fingerprint)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        fp_file = self.dir / "fingerprint.json"
        if not fp_file.exists():
            fp_file.write_text(json.dumps(fingerprint, indent=2, sort_keys=True))
        self._entries: dict[str, tuple[np.ndarray | None, str | None, str]] = {}
        for shard in sorted(self.dir.glob("part-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    for k, v, f, d in zip(z["keys"], z["vectors"], z["failure"], z["detail"]):
                        self._entries[str(k)] = (None if f else v, str(f) or None, str(d))
            except Exception:  # a half-written shard from a killed run: ignore, recompute
                continue

    def get(self, key: str):
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def write(self, keys: list[str], vectors: np.ndarray, failures: list, details: list) -> None:
        """Persist one shard atomically and remember its entries."""
        keep = [i for i, f in enumerate(failures) if f not in (ERROR, MISSING_FILE)]   # retried next run
        if not keep:
            return
        keys = [keys[i] for i in keep]
        vecs = vectors[keep]
        fails = np.array([failures[i] or "" for i in keep], dtype=str)
        dets = np.array([details[i][:300] for i in keep], dtype=str)
        digest = hashlib.sha256("".join(keys).encode()).hexdigest()[:20]
        final = self.dir / f"part-{digest}.npz"
        tmp = self.dir / f"tmp-{digest}-{os.getpid()}.npz"
        np.savez(tmp, keys=np.array(keys, dtype=str), vectors=vecs.astype(np.float32), failure=fails, detail=dets)
        os.replace(tmp, final)
        for k, v, f, d in zip(keys, vecs, fails, dets):
            self._entries[k] = (None if f else v, str(f) or None, str(d))


def extract(paths: Sequence[str], family: str, options: dict, cache_root: str | os.PathLike,
            workers: int = 2, chunk_size: int = 16, flush_every: int = 256,
            progress: bool = True, backend=None) -> tuple[EmbeddingResult, ExtractionStats, dict]:
    """Embed ``paths`` with backend ``family(**options)``, reusing and filling the cache.

    ``backend``: an already built Backend instance (a user's model, evalkit.api) used instead of
    ``family(**options)``; it runs in this process (no worker processes: it may not be picklable),
    and ``family`` only names its cache folder.
    Returns the embeddings in input order, statistics, and the backend fingerprint.
    Raises before any work if the backend is not ready (e.g. weights missing).
    """
    t0 = time.perf_counter()
    given = backend is not None
    if given:
        workers = 1
    backend = backend if given else build_backend(family, options)
    backend.check_ready()
    fingerprint = backend.fingerprint()
    cache = EmbeddingCache(cache_root, family, fingerprint)

    n = len(paths)
    keys = [image_key(p) for p in paths]
    vectors: list[np.ndarray | None] = [None] * n
    failures: list[str | None] = [None] * n
    details: list[str] = [""] * n
    stats = ExtractionStats(n_images=n, workers=workers)

    todo_by_key: dict[str, list[int]] = {}
    for i, (p, k) in enumerate(zip(paths, keys)):
        if k is None:
            failures[i], details[i] = MISSING_FILE, p
            continue
        hit = cache.get(k)
        if hit is not None:
            vectors[i], failures[i], details[i] = hit
            stats.from_cache += 1
        else:
            todo_by_key.setdefault(k, []).append(i)

    todo_keys = list(todo_by_key)  # identical images (same bytes) are embedded once
    todo_paths = [paths[todo_by_key[k][0]] for k in todo_keys]
    stats.computed = len(todo_keys)

    if todo_keys:
        chunks = [list(range(s, min(s + chunk_size, len(todo_keys)))) for s in range(0, len(todo_keys), chunk_size)]
        pending_keys: list[str] = []
        pending: list[EmbeddingResult] = []

        def flush():
            if not pending:
                return
            dim = max(r.vectors.shape[1] for r in pending)
            mats = [r.vectors if r.vectors.shape[1] == dim else np.full((len(r.failures), dim), np.nan, np.float32)
                    for r in pending]
            cache.write(list(pending_keys), np.concatenate(mats),
                        [f for r in pending for f in r.failures], [d for r in pending for d in r.details])
            pending_keys.clear()
            pending.clear()

        def consume(chunk_idx, result: EmbeddingResult):
            for j, ti in enumerate(chunk_idx):
                for i in todo_by_key[todo_keys[ti]]:
                    vectors[i] = None if result.failures[j] else result.vectors[j]
                    failures[i] = result.failures[j]
                    details[i] = result.details[j]
            pending_keys.extend(todo_keys[ti] for ti in chunk_idx)
            pending.append(result)
            if sum(len(r.failures) for r in pending) >= flush_every:
                flush()

        bar = _progress(len(todo_keys), f"embedding ({family})", progress)
        try:
            if workers <= 1 or len(chunks) == 1:
                for c in chunks:
                    consume(c, backend.embed([todo_paths[i] for i in c]))
                    bar.update(len(c))
            else:
                ctx = mp.get_context("spawn")
                with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(family, dict(options))) as pool:
                    results = pool.map(_embed_chunk, [[todo_paths[i] for i in c] for c in chunks])
                    for c, res in zip(chunks, results):  # map keeps input order: deterministic
                        consume(c, res)
                        bar.update(len(c))
        finally:
            flush()  # keep finished work even when interrupted
            bar.close()

    for f, d in zip(failures, details):
        if f is not None:
            stats.failures[f] = stats.failures.get(f, 0) + 1
        elif d:
            stats.notes[d] = stats.notes.get(d, 0) + 1
    mat = stack_vectors(vectors)
    stats.seconds = time.perf_counter() - t0
    return EmbeddingResult(mat, failures, details, keys), stats, fingerprint


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, mininterval=1.0)
