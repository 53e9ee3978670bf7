"""Where evalkit keeps its own files; light on purpose (no backend, no model library), so the
config layer can name the cache folder without importing any backend."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def evalkit_home() -> Path:
    """evalkit's own cache/weights folder: $EVALKIT_HOME, else ~/.cache/evalkit."""
    return Path(os.environ.get("EVALKIT_HOME", Path.home() / ".cache" / "evalkit"))


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``final`` so no reader ever sees a partial file: a temporary file unique
    to this writer (host, pid, random part) in the same folder, fsync, then ``os.replace``
    (atomic on POSIX file systems, NFS and Lustre included). An interrupted write removes its
    temporary file and leaves any earlier ``final`` intact. The caches (embeddings, service
    responses, figures) and the cluster manifests all write through this."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
