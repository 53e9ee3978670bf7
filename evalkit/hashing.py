"""SHA-256 of files: one helper for dataset files, weights, images and the run record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CACHE: dict[tuple[str, int, int], str] = {}


class NotARegularFile(OSError):
    """The path is a device, pipe, socket or folder: it is never read (``/dev/zero`` never ends)."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes by ``hashlib`` algorithm ``algorithm``, read in chunks.

    Only a regular file is read: the file is opened non-blocking (a FIFO cannot stall the open)
    and checked with ``fstat`` first; anything else raises :class:`NotARegularFile`."""
    import stat

    h = hashlib.new(algorithm)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path}: not a regular file (a device, pipe, socket or folder)")
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
