"""The extraction loop: each image embedded once per backend fingerprint, cached on disk,
computed in worker processes, failures recorded with their reason and never dropped.

Cache layout (no pickle anywhere; ``np.load(..., allow_pickle=False)``)::

    <cache_root>/<backend>-<fingerprint key>/
        fingerprint.json             the backend fingerprint this folder belongs to
        part-<digest>.npz            shards: keys (sha256 of the image bytes), vectors, failure,
                                     detail, sha256 (checksum of the other four)
        .tmp-*                       a write in progress (or left by a killed writer): never read

An image is keyed by the SHA-256 of its bytes, so renaming or moving a dataset reuses the cache
and an edited image is embedded again. Shards are written as work progresses (every
``flush_every`` images) and on any interruption, so a crash never loses finished work. Shards
are immutable and renamed into place atomically, so any number of processes (cluster jobs on a
shared file system) may fill one folder at once; see ``EmbeddingCache``. ``evalkit cache`` lists
and verifies the folders (``cache_main``).
Missing files and unexpected backend errors are not cached: they are retried next run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .backends import build_backend
from .backends.base import MISSING_FILE, UNCACHED_REASONS, EmbeddingResult, fingerprint_key, render_detail
from .hashing import NotARegularFile, file_sha256
from .paths import atomic_write_bytes

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
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, NotARegularFile):
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


#: arrays every shard holds; ``sha256`` is the digest of the other four (see ``_shard_digest``)
SHARD_ARRAYS = ("keys", "vectors", "failure", "detail", "sha256")


def _shard_digest(keys: np.ndarray, vectors: np.ndarray, failure: np.ndarray, detail: np.ndarray) -> str:
    """SHA-256 over a shard's arrays (dtype, shape and bytes of each), so a shard whose bytes
    changed after it was written (a bad disk, a truncated copy) is found by ``verify``."""
    h = hashlib.sha256()
    for a in (keys, vectors, failure, detail):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B") if a.size and a.dtype.kind != "U" else a.tobytes())   # no copy of the vectors
    return h.hexdigest()


def _read_shard(path: Path) -> dict:
    """The arrays of one shard, checked: raises ValueError on anything but a complete, consistent
    shard (missing array, lengths that disagree, checksum mismatch); OSError/zipfile errors on a
    file that is not an npz at all."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in SHARD_ARRAYS if k not in z.files]
        if missing and missing != ["sha256"]:   # shards written before checksums have none: still readable
            raise ValueError(f"missing arrays {missing}")
        arrays = {k: z[k] for k in SHARD_ARRAYS if k in z.files}
    n = len(arrays["keys"])
    if arrays["vectors"].ndim != 2 or any(len(arrays[k]) != n for k in ("vectors", "failure", "detail")):
        raise ValueError("arrays of different lengths")
    if "sha256" in arrays and str(arrays["sha256"]) != _shard_digest(
            arrays["keys"], arrays["vectors"], arrays["failure"], arrays["detail"]):
        raise ValueError("checksum mismatch")
    return arrays


def _read_index(path: Path) -> dict:
    """A shard's keys, failure and detail arrays (not its vectors), checked for equal lengths:
    what the cache index needs. The vectors and the checksum are read by ``_read_shard`` when a
    run needs the shard's vectors."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("keys", "vectors", "failure", "detail") if k not in z.files]
        if missing:
            raise ValueError(f"missing arrays {missing}")
        arrays = {k: z[k] for k in ("keys", "failure", "detail")}
    n = len(arrays["keys"])
    if any(len(arrays[k]) != n for k in ("failure", "detail")):
        raise ValueError("arrays of different lengths")
    return arrays


class EmbeddingCache:
    """Shards of embeddings for one backend fingerprint, safe for many concurrent writers.

    Every write is a new, immutable shard file: written under a temporary name unique to the
    writer (``.tmp-*``), flushed to disk, then renamed with ``os.replace`` (atomic on POSIX file
    systems, NFS and Lustre included) to ``part-<digest of its keys>.npz``. There is no index or
    other shared file that is rewritten in place, so two jobs writing the same folder never
    overwrite each other's entries, and a writer killed at any moment leaves at most a temporary
    file, which readers never open (they read ``part-*.npz`` only) and ``evalkit cache --clean``
    removes. A shard that cannot be read or fails its checksum (copied half, damaged) is skipped,
    its images recomputed. The same image embedded by two jobs appears in two shards with the same
    result (same fingerprint); the first shard read wins.

    Memory: the cache holds an index (key -> shard, row, failure, detail), never the vectors.
    Vectors are read shard by shard, checked against the shard's checksum, straight into the
    caller's matrix (``read_into``), so a run holds one copy of its embeddings whatever the width
    and however many other images the folder holds (LBPH's 16,384-d histograms of LFW: 505 MB
    once, not twice). A shard whose index reads but whose vectors or checksum do not is found
    then: it is added to ``skipped_shards`` and its entries fall back to another shard holding
    the same image, or are absent (recomputed).
    """

    def __init__(self, root: str | os.PathLike, backend_name: str, fingerprint: dict):
        self.dir = Path(root) / f"{backend_name}-{fingerprint_key(fingerprint)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        fp_file = self.dir / "fingerprint.json"
        if not fp_file.exists():
            atomic_write_bytes(fp_file, json.dumps(fingerprint, indent=2, sort_keys=True).encode())
        self._shards: list[Path] = []
        # key -> [(shard number, row, failure or None, detail), ...]: first one wins, later ones
        # are copies of the same image in other shards (used if the first shard proves damaged)
        self._index: dict[str, list[tuple[int, int, str | None, str]]] = {}
        self._bad: set[int] = set()
        self._memo: tuple[int, np.ndarray] | None = None   # the last shard's vectors (for get)
        self._seen: set[str] = set()
        self.skipped_shards: list[str] = []
        self.refresh()

    def refresh(self) -> int:
        """Index the shards written since the last look (by this or any other process); returns
        how many entries were added."""
        before = len(self._index)
        for shard in sorted(self.dir.glob("part-*.npz")):
            if shard.name in self._seen:
                continue
            self._seen.add(shard.name)
            try:
                z = _read_index(shard)
            except Exception:  # damaged or foreign file: ignore, its images are recomputed
                self.skipped_shards.append(shard.name)
                continue
            self._add(shard, z["keys"].tolist(), z["failure"].tolist(), z["detail"].tolist())
        return len(self._index) - before

    def _add(self, shard: Path, keys, failures, details) -> None:
        no = len(self._shards)
        self._shards.append(shard)
        for row, (k, f, d) in enumerate(zip(keys, failures, details)):
            self._index.setdefault(str(k), []).append((no, row, str(f) or None, str(d)))

    def _drop_shard(self, no: int) -> None:
        """A shard whose vectors or checksum proved bad: forget it, fall back to other copies."""
        self._bad.add(no)
        self.skipped_shards.append(self._shards[no].name)
        for k in [k for k, locs in self._index.items() if any(loc[0] == no for loc in locs)]:
            locs = [loc for loc in self._index[k] if loc[0] != no]
            if locs:
                self._index[k] = locs
            else:
                del self._index[k]

    def _vectors(self, no: int) -> np.ndarray | None:
        """The vectors of shard ``no``, checked in full (checksum), or None if it is damaged."""
        if self._memo is not None and self._memo[0] == no:
            return self._memo[1]
        try:
            vecs = _read_shard(self._shards[no])["vectors"]
        except Exception:
            self._drop_shard(no)
            return None
        self._memo = (no, vecs)
        return vecs

    def get(self, key: str):
        """(vector or None, failure or None, detail) of one cached image, or None if absent.
        Reads the image's shard (one shard is remembered): for a few keys; runs use
        ``read_into``."""
        while key in self._index:
            no, row, f, d = self._index[key][0]
            if f:
                return None, f, d
            vecs = self._vectors(no)
            if vecs is not None:
                return vecs[row], None, d
        return None

    def keys(self) -> list[str]:
        return list(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def read_into(self, wanted: dict[str, list[int]], target) -> dict[str, tuple[str | None, str]]:
        """Copy the cached vectors of ``wanted`` (key -> output rows) into the matrix that
        ``target(dim)`` returns, one shard at a time. Returns key -> (failure or None, detail) for
        every key found; keys not returned are not in the cache (or only in damaged shards)."""
        found: dict[str, tuple[str | None, str]] = {}
        self._memo = None       # one shard in memory at a time
        pending = {k: rows for k, rows in wanted.items() if k in self._index}
        while pending:
            by_shard: dict[int, list[tuple[str, int]]] = {}
            for k in pending:
                no, row, f, d = self._index[k][0]
                if f:
                    found[k] = (f, d)
                else:
                    by_shard.setdefault(no, []).append((k, row))
            retry: dict[str, list[int]] = {}
            for no, items in by_shard.items():
                vecs = self._vectors(no)
                if vecs is None:    # damaged: its keys fall back to other copies, if any
                    retry.update({k: pending[k] for k, _ in items if k in self._index})
                    continue
                mat = target(vecs.shape[1])
                for k, row in items:
                    mat[pending[k]] = vecs[row]
                    found[k] = (None, self._index[k][0][3])
                self._memo = vecs = None
            pending = retry
        return found

    def write(self, keys: list[str], vectors: np.ndarray, failures: list, details: list) -> None:
        """Persist one shard atomically and index its entries."""
        keep = [i for i, f in enumerate(failures) if f not in UNCACHED_REASONS]   # retried next run
        if not keep:
            return
        keys = [keys[i] for i in keep]
        arrays = {"keys": np.array(keys, dtype=str), "vectors": np.asarray(vectors[keep], dtype=np.float32),
                  "failure": np.array([failures[i] or "" for i in keep], dtype=str),
                  "detail": np.array([details[i][:300] for i in keep], dtype=str)}
        arrays["sha256"] = np.array(_shard_digest(**arrays))
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
        final = self.dir / f"part-{digest}.npz"
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(final, buf.getvalue())
        if final.name not in self._seen:
            self._seen.add(final.name)
            self._add(final, keys, arrays["failure"].tolist(), arrays["detail"].tolist())



# ------------------------------------------------------------------ `evalkit cache`: inspect, verify


def cache_folders(root: str | os.PathLike) -> list[Path]:
    """The fingerprint folders under a cache root (those holding a fingerprint.json)."""
    root = Path(root)
    return sorted(p.parent for p in root.glob("*/fingerprint.json")) if root.is_dir() else []


def describe_folder(folder: str | os.PathLike, verify: bool = False) -> dict:
    """What one fingerprint folder holds: entries (distinct images), failures by reason, shards,
    bytes, leftover temporary files, and with ``verify`` every shard read in full and checked
    (arrays present and of one length, checksum, successful rows finite, the folder's name
    matching its fingerprint.json). ``problems`` lists what is wrong (empty: all good)."""
    folder = Path(folder)
    problems: list[str] = []
    try:
        fp = json.loads((folder / "fingerprint.json").read_text())
    except (OSError, ValueError) as exc:
        fp, problems = {}, [f"fingerprint.json unreadable: {exc}"]
    if fp and not folder.name.endswith("-" + fingerprint_key(fp)):
        problems.append(f"folder name does not match fingerprint.json (key {fingerprint_key(fp)})")
    shards = sorted(folder.glob("part-*.npz"))
    tmps = sorted(folder.glob(".tmp-*"))
    keys: set[str] = set()
    failures: dict[str, int] = {}
    rows = dups = unchecked = 0
    bad: list[str] = []
    dims: set[int] = set()
    for shard in shards:
        try:
            z = _read_shard(shard)
            if verify:
                okrow = z["failure"] == ""
                if not np.isfinite(z["vectors"][okrow]).all():
                    raise ValueError("a successful entry holds a non-finite value")
                if len(np.unique(z["keys"])) != len(z["keys"]):
                    raise ValueError("a key appears twice")
            if "sha256" not in z:
                unchecked += 1
        except Exception as exc:
            bad.append(f"{shard.name}: {type(exc).__name__}: {exc}")
            continue
        if len(z["keys"]):
            dims.add(int(z["vectors"].shape[1]))
        rows += len(z["keys"])
        for k, f in zip(z["keys"].tolist(), z["failure"].tolist()):
            if k in keys:
                dups += 1
                continue
            keys.add(k)
            if f:
                failures[f] = failures.get(f, 0) + 1
    problems += [f"unreadable shard {b}" for b in bad]
    if len(dims) > 1:
        problems.append(f"shards of different dimensions {sorted(dims)}")
    return {"folder": str(folder), "backend": fp.get("backend", folder.name.rsplit("-", 1)[0]),
            "model": fp.get("model") or fp.get("model_name") or "", "fingerprint": fp,
            "key": folder.name.rsplit("-", 1)[-1], "entries": len(keys),
            "failures": dict(sorted(failures.items())), "shards": len(shards), "rows": rows,
            "duplicate_rows": dups, "shards_without_checksum": unchecked, "bytes": sum(_size(p) for p in shards), "temporary_files": len(tmps),
            "temporary_bytes": sum(_size(p) for p in tmps), "bad_shards": bad, "problems": problems}


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:   # removed meanwhile by another process
        return 0


def clean_folder(folder: str | os.PathLike, older_than_s: float = 3600.0) -> list[str]:
    """Remove temporary files left by killed writers, if older than ``older_than_s`` (a live
    writer's file is seconds old), and unreadable shards. Returns the names removed."""
    removed = []
    now = time.time()
    for p in Path(folder).glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                removed.append(p.name)
        except OSError:
            pass
    for entry in describe_folder(folder, verify=False)["bad_shards"]:
        name = entry.split(":", 1)[0]
        try:
            (Path(folder) / name).unlink()
            removed.append(name)
        except OSError:
            pass
    return removed


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cache_main(args: list[str]) -> int:
    """``evalkit cache [--root DIR] [--verify] [--clean] [--json] [FINGERPRINT...]``: entries, size
    and fingerprint of each cache folder; --verify reads every shard in full (exit 1 on a
    problem); --clean removes temporary files of killed writers (older than an hour) and
    unreadable shards."""
    import argparse

    from .config import default_cache_dir

    p = argparse.ArgumentParser(prog="evalkit cache", description=cache_main.__doc__)
    p.add_argument("keys", nargs="*", help="only folders whose name contains one of these (e.g. a fingerprint key)")
    p.add_argument("--root", default=None, help="cache root (default: the runs' cache_dir, <evalkit home>/embeddings)")
    p.add_argument("--verify", action="store_true", help="read and check every shard")
    p.add_argument("--clean", action="store_true", help="remove stale temporary files and unreadable shards")
    p.add_argument("--json", action="store_true", help="print one JSON object per folder")
    p.add_argument("--show-fingerprint", action="store_true", help="print each folder's fingerprint.json")
    ns = p.parse_args(args)
    root = Path(ns.root or default_cache_dir())
    folders = [f for f in cache_folders(root) if not ns.keys or any(k in f.name for k in ns.keys)]
    if not folders:
        print(f"evalkit cache: no cache folders under {root}" + (f" matching {ns.keys}" if ns.keys else ""))
        return 0 if not ns.keys else 1
    status = 0
    total = 0
    for f in folders:
        if ns.clean:
            for name in clean_folder(f):
                print(f"removed {f.name}/{name}")
        d = describe_folder(f, verify=ns.verify)
        total += d["bytes"]
        if d["problems"]:
            status = 1
        if ns.json:
            print(json.dumps(d, sort_keys=True))
            continue
        fails = ", ".join(f"{k} {v}" for k, v in d["failures"].items()) or "none"
        print(f"{f.name}")
        print(f"  backend {d['backend']}" + (f", model {d['model']}" if d["model"] else "")
              + f"; {d['entries']:,} entries (failures: {fails}); {d['shards']:,} shards, {_human(d['bytes'])}"
              + (f"; {d['duplicate_rows']:,} rows embedded twice" if d["duplicate_rows"] else "")
              + (f"; {d['temporary_files']} temporary file(s) of unfinished writes ({_human(d['temporary_bytes'])})"
                 if d["temporary_files"] else ""))
        if ns.show_fingerprint:
            for line in json.dumps(d["fingerprint"], indent=2, sort_keys=True).splitlines():
                print("    " + line)
        if ns.verify:
            print("  verify: " + ("ok" if not d["problems"] else "PROBLEMS")
                  + (f" ({d['shards_without_checksum']} shard(s) from an older evalkit have no checksum: "
                     "arrays checked, bytes not)" if d["shards_without_checksum"] else ""))
        for prob in d["problems"]:
            print(f"  problem: {prob}")
    print(f"{len(folders)} folder(s), {_human(total)} in {root}")
    return status


class MissingEmbeddings(RuntimeError):
    """Images a run needs are not in the cache and it was told not to embed them
    (``embed_missing=false``, or after a sharded ``evalkit embed``). ``paths`` lists them."""

    def __init__(self, message: str, paths: list[str]):
        super().__init__(message)
        self.paths = paths


def extract(paths: Sequence[str], family: str, options: dict, cache_root: str | os.PathLike,
            workers: int = 2, chunk_size: int = 16, flush_every: int = 256,
            progress: bool = True, embed_missing: bool = True,
            backend=None) -> tuple[EmbeddingResult, ExtractionStats, dict]:
    """Embed ``paths`` with backend ``family(**options)``, reusing and filling the cache.

    ``backend``: an already built Backend instance (a user's model, evalkit.api) used instead of
    ``family(**options)``; it runs in this process (no worker processes: it may not be picklable),
    and ``family`` only names its cache folder.
    Returns the embeddings in input order, statistics, and the backend fingerprint.
    Raises before any work if the backend is not ready (e.g. weights missing). With
    ``embed_missing=False`` nothing is embedded: images not in the cache raise
    ``MissingEmbeddings`` listing them (missing files are still recorded failures, not raised).
    """
    t0 = time.perf_counter()
    given = backend is not None
    if given:
        workers = 1
    backend = backend if given else build_backend(family, options)
    backend.check_ready()
    fingerprint = backend.fingerprint()
    cache = EmbeddingCache(cache_root, family, fingerprint)
    # a chunk goes to the backend's batch method (Backend.embed) whole: at least one model batch
    chunk_size = max(int(chunk_size), int(getattr(backend, "batch_size", 1)))

    n = len(paths)
    keys = [image_key(p) for p in paths]
    failures: list[str | None] = [None] * n
    details: list[str] = [""] * n
    stats = ExtractionStats(n_images=n, workers=workers)
    # one (n, d) float32 matrix, filled in place from the cache's shards and the backend's
    # results: the run never holds a second copy of its embeddings (rows that fail stay NaN)
    out: list[np.ndarray] = []

    def target(dim: int) -> np.ndarray:
        if not out:
            out.append(np.full((n, dim), np.nan, dtype=np.float32))
        elif out[0].shape[1] != dim:
            raise ValueError(f"embeddings of different widths ({out[0].shape[1]} and {dim}) for one backend "
                             f"fingerprint: the cache folder {cache.dir} is inconsistent; remove it")
        return out[0]

    wanted: dict[str, list[int]] = {}
    for i, (p, k) in enumerate(zip(paths, keys)):
        if k is None:
            failures[i], details[i] = MISSING_FILE, p
        else:
            wanted.setdefault(k, []).append(i)

    def from_cache(want: dict[str, list[int]]) -> None:
        for k, (f, d) in cache.read_into(want, target).items():
            for i in want.pop(k):
                failures[i], details[i] = f, render_detail(d)
                stats.from_cache += 1

    from_cache(wanted)
    todo_by_key = wanted          # what the cache did not have
    if todo_by_key and not embed_missing:
        cache.refresh()    # other jobs may have written since this process first looked
        from_cache(todo_by_key)
        if todo_by_key:
            missing = [paths[i] for idx in todo_by_key.values() for i in idx]
            raise MissingEmbeddings(f"{len(missing)} of {n} images are not in the embedding cache {cache.dir} "
                                    f"(first: {missing[0]})", missing)
    todo_keys = list(todo_by_key)  # input order (dicts keep it); identical images (same bytes) embedded once
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
                rows = todo_by_key[todo_keys[ti]]
                if not result.failures[j]:
                    target(result.vectors.shape[1])[rows] = result.vectors[j]
                for i in rows:
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
    mat = out[0] if out else np.full((n, 0), np.nan, dtype=np.float32)
    stats.seconds = time.perf_counter() - t0
    return EmbeddingResult(mat, failures, details, keys), stats, fingerprint


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, mininterval=1.0)
