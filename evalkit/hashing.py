"""SHA-256 of files: one helper for dataset files, weights, images and the run record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes by ``hashlib`` algorithm ``algorithm``, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    return file_digest(path, "sha256", chunk)


def cached_sha256(path: str | os.PathLike) -> str:
    """``file_sha256`` memoised on (path, size, mtime): cheap for weights hashed on every run."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = file_sha256(p)
    return _CACHE[key]
