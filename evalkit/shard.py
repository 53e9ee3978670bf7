"""Splitting work into jobs and writing their outputs: the pieces a cluster scheduler (SLURM,
through Hydra's submitit launcher) runs as independent jobs, each a pure function of its inputs
writing one file, and a merge that combines the files exactly.

- ``shard_items(costs, index, count)``: the contiguous items of shard ``index`` of ``count``,
  balanced by cost (images, comparisons); deterministic, independent of workers or machines;
- ``save_npz_atomic``: one partial result as an npz of plain arrays (no pickle), written under a
  temporary name and renamed into place, so a reader never sees half a file and a killed job
  leaves nothing that looks finished.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
from pathlib import Path

import numpy as np


def shard_items(costs, index: int, count: int) -> tuple[int, int]:
    """Items ``[b0, b1)`` of shard ``index`` of ``count`` (see ``metrics.exhaustive.shard_range``)."""
    from .metrics.exhaustive import shard_range

    return shard_range(costs, index, count)


def save_npz_atomic(path, arrays: dict) -> Path:
    """Write ``arrays`` (name -> numpy array; strings as 0-d unicode arrays) to ``path`` as an
    npz, atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    tmp = path.with_name(f".tmp-{path.name}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path


# ------------------------------------------------------------------ run stages (evalkit embed / stage=...)
#
# A run split into cluster jobs, every job an ordinary `evalkit run` with different overrides
# (so Hydra's submitit launcher can start them on SLURM without evalkit knowing about SLURM):
#
#   stage=embed shard.index=i shard.count=n   embed shard i of the planned images into the cache
#   stage=score shard.index=i shard.count=n   score shard i of the block grid into a partial file
#   stage=merge shard.count=n                 merge the n partials; the usual run folder
#   stage=run                                 (default) everything in one process
#
# Each embed or score job writes a small JSON manifest next to its output (status running ->
# done, or failed with the error), so the run that follows can say which shard did not finish.

STAGES = ("run", "embed", "score", "merge")


def _digest(obj) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _container(node):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else node


def embed_key(cfg, paths) -> str:
    """Names one run's set of planned images under one backend configuration: the folder of
    its embed manifests (the same for every shard job and for the run that follows)."""
    from .config import backend_options

    return _digest({"family": cfg.backend.get("target") or cfg.backend.family,
                    "backend": backend_options(cfg.backend), "paths": list(paths)})   # not workers / chunk_size


def manifests_dir(cfg, kind: str, key: str) -> Path:
    base = Path(cfg.shard.dir) if cfg.shard.get("dir") else Path(cfg.cache_dir) / "shards"
    return base / f"{kind}-{key}"


def write_manifest(folder: Path, index: int, count: int, record: dict) -> Path:
    import json
    import time as _time

    rec = {"index": int(index), "count": int(count), "host": socket.gethostname(), "pid": os.getpid(),
           "time": _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime()), **record}
    path = folder / f"shard-{int(index):05d}-of-{int(count):05d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from .paths import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(rec, indent=2, sort_keys=True).encode())
    return path


def read_manifests(folder: Path) -> dict[int, dict]:
    """Shard index -> its latest manifest, for the shard count of each (several counts may have
    been run into one folder: keyed ``(count, index)``)."""
    import json

    out: dict = {}
    for p in sorted(folder.glob("shard-*-of-*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        out[(int(rec["count"]), int(rec["index"]))] = rec
    return out


def shard_status(folder: Path, count: int | None = None) -> dict:
    """``{"count", "done", "failed": {index: error}, "unfinished": [...], "absent": [...]}`` for the
    largest (or given) shard count that has manifests in ``folder``; None when there are none."""
    recs = read_manifests(folder)
    if not recs:
        return None
    count = count or max(c for c, _ in recs)
    mine = {i: r for (c, i), r in recs.items() if c == count}
    return {"count": count,
            "done": sorted(i for i, r in mine.items() if r.get("status") == "done"),
            "failed": {i: r.get("error", "") for i, r in sorted(mine.items()) if r.get("status") == "failed"},
            "unfinished": sorted(i for i, r in mine.items() if r.get("status") == "running"),
            "absent": sorted(set(range(count)) - set(mine))}


def describe_status(st: dict) -> str:
    parts = [f"{len(st['done'])} of {st['count']} embed shards finished"]
    if st["failed"]:
        parts.append("failed: " + "; ".join(f"shard {i} ({e})" for i, e in st["failed"].items()))
    if st["unfinished"]:
        parts.append("started but never finished (killed?): " + ", ".join(map(str, st["unfinished"])))
    if st["absent"]:
        parts.append("never started: " + ", ".join(map(str, st["absent"])))
    return "; ".join(parts)


def check_stage(cfg, protocol) -> None:
    """Before any work: a protocol that cannot be scored in shards refuses stage=score/merge."""
    if cfg.get("stage", "run") in ("score", "merge") and not hasattr(protocol, "score_shard"):
        raise ValueError(f"stage={cfg.stage}: protocol {protocol.name!r} cannot be scored in shards (exhaustive "
                         "and search can); use stage=embed to fill the cache, then one stage=run")


def embed_stage(cfg, samples, plan, out_dir: Path, extract_kwargs: dict) -> dict:
    """``stage=embed``: embed shard ``shard.index`` of ``shard.count`` of the plan's images into
    the cache. Shards are contiguous runs of the planned rows of (nearly) equal image counts, a
    function of the plan and the count only (not of workers or machines). Writes a manifest
    (running -> done / failed) and ``embed.json`` in the job's folder. Returns that record."""
    import json

    from .embeddings import extract

    paths = [samples.paths[i] for i in plan.rows]
    index, count = int(cfg.shard.index), int(cfg.shard.count)
    b0, b1 = shard_items(np.ones(len(paths)), index, count)
    folder = manifests_dir(cfg, "embed", embed_key(cfg, paths))
    base = {"images": [b0, b1], "n_images": b1 - b0, "n_planned": len(paths)}
    write_manifest(folder, index, count, {"status": "running", **base})
    try:
        emb, stats, fingerprint = extract(paths[b0:b1], **extract_kwargs)
    except BaseException as exc:
        write_manifest(folder, index, count, {"status": "failed", "error": f"{type(exc).__name__}: {exc}", **base})
        raise
    rec = {"stage": "embed", "status": "done", **base, "extraction": stats.as_dict(),
           "fingerprint_key": _digest(fingerprint)}
    write_manifest(folder, index, count, rec)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "embed.json").write_text(json.dumps({**rec, "shard": [index, count], "manifests": str(folder)},
                                                   indent=2, sort_keys=True))
    return rec


def run_embeddings(cfg, paths, out_dir: Path | None, extract_kwargs: dict):
    """The run's embeddings of ``paths``. ``embed_missing`` (true / false / null = auto) says
    whether images missing from the cache are embedded here; auto embeds them unless a sharded
    ``evalkit embed`` ran for these images (its manifests exist), in which case a missing image
    means a shard did not finish: the run stops, names the shards and lists the images in
    ``missing.csv``."""
    from .embeddings import MissingEmbeddings, extract

    folder = manifests_dir(cfg, "embed", embed_key(cfg, paths))
    st = shard_status(folder)
    embed_missing = cfg.get("embed_missing")
    if embed_missing is None:
        embed_missing = st is None
    try:
        return extract(paths, embed_missing=bool(embed_missing), **extract_kwargs)
    except MissingEmbeddings as exc:
        where = ""
        if out_dir is not None:
            import csv

            out_dir.mkdir(parents=True, exist_ok=True)
            with open(out_dir / "missing.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["path"])
                w.writerows([p] for p in exc.paths)
            where = f"; listed in {out_dir / 'missing.csv'}"
        shards = (describe_status(st) if st else "no sharded embedding ran for these images")
        raise MissingEmbeddings(f"{exc}{where}. {shards}. Rerun the missing shards (evalkit embed ... "
                                f"shard.index=I shard.count=N), or embed them here with embed_missing=true",
                                exc.paths) from None


def score_key(cfg) -> str:
    """Names the partial files of one sharded scoring: everything the scores depend on."""
    from .config import backend_options

    c = _container(cfg)
    prot = {k: v for k, v in (c.get("protocol") or {}).items() if k != "device"}   # a GPU shard merges with CPU ones
    return _digest({"dataset": c.get("dataset"), "protocol": prot, "backend": backend_options(cfg.backend),
                    "threshold": c.get("threshold"), "failure_policy": c.get("failure_policy"), "seed": c.get("seed")})


def score_stage(cfg, protocol, plan, embedded, out_dir: Path) -> dict:
    """``stage=score``: score shard ``shard.index`` of ``shard.count`` of the protocol's block
    grid and write its partial (npz) where ``stage=merge`` will look."""
    import json
    import time as _time

    index, count = int(cfg.shard.index), int(cfg.shard.count)
    if not hasattr(protocol, "score_shard"):
        raise ValueError(f"protocol {protocol.name!r} cannot be scored in shards (exhaustive and search can)")
    folder = manifests_dir(cfg, "score", score_key(cfg))
    write_manifest(folder, index, count, {"status": "running"})
    t = _time.perf_counter()
    try:
        part = protocol.score_shard(cfg, plan, embedded, index, count)
        path = save_npz_atomic(folder / f"partial-{index:05d}-of-{count:05d}.npz", part)
    except BaseException as exc:
        write_manifest(folder, index, count, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
    rec = {"stage": "score", "status": "done", "partial": str(path), "seconds": round(_time.perf_counter() - t, 3),
           "bytes": path.stat().st_size}
    write_manifest(folder, index, count, rec)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "score.json").write_text(json.dumps({**rec, "shard": [index, count]}, indent=2, sort_keys=True))
    return rec


def load_partials(cfg) -> list[dict]:
    """``stage=merge``: the ``shard.count`` partials of this run, or an error naming the missing
    or failed shards."""
    count = int(cfg.shard.count)
    folder = manifests_dir(cfg, "score", score_key(cfg))
    paths = [folder / f"partial-{i:05d}-of-{count:05d}.npz" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        st = shard_status(folder, count)
        failed = "; ".join(f"shard {i}: {e}" for i, e in (st or {}).get("failed", {}).items())
        raise RuntimeError(f"stage=merge: {len(missing)} of {count} score shards have no partial in {folder} "
                           f"(shards {', '.join(map(str, missing))})" + (f"; failed: {failed}" if failed else "")
                           + ": run them with stage=score shard.index=I shard.count=" + str(count))
    with_arrays = []
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            with_arrays.append({k: z[k] for k in z.files})
    return with_arrays


def merge_stage(cfg, protocol, plan, embedded):
    """``stage=merge``: the protocol's output from the ``shard.count`` partials, exactly the
    one-process ``protocol.score`` output (the run folder and metrics.json follow as usual)."""
    if not hasattr(protocol, "merge_shards"):
        raise ValueError(f"protocol {protocol.name!r} cannot be scored in shards (exhaustive and search can)")
    return protocol.merge_shards(cfg, plan, embedded, load_partials(cfg))
