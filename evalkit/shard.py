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
