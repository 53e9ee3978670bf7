"""On-disk cache of a scoring service's responses: every call made once, ever.

A cloud face API bills per call and a 1:1 protocol makes one call per comparison (6,000
CompareFaces calls for LFW View 2). Every call's result is stored as one JSON file (no pickle)
under a key that changes whenever the answer could change:

    key = SHA-256 of the canonical JSON of {service, region, model_version, operation,
                                            images: [SHA-256 of each image's bytes, in call order],
                                            params: the call's other parameters}

so a rerun with a new threshold policy makes no call, an interrupted run resumes where it stopped
(each entry is written to a temporary file and moved into place with ``os.replace``, which is
atomic: an entry is either complete or absent), and a different region, face model version or
QualityFilter is a different entry. Permanent errors (no face in the image) are cached too: the
service would answer the same again. Transient errors (throttling, service faults) are not.

Layout::

    <root>/<service>/<key[:2]>/<key>.json    {"key": ..., "request": {...}, "response": {...}}

Nothing secret is ever part of a key or an entry: credentials never reach this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from .paths import atomic_write_bytes

SCHEMA = "evalkit.response_cache/1"


def canonical(obj) -> str:
    """Canonical JSON (sorted keys, no whitespace): the bytes a key is hashed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def request_key(*, service: str, region: str, model_version: str, operation: str, images: list[str],
                params: dict) -> tuple[str, dict]:
    """(hex key, the request description it was computed from)."""
    req = {"service": service, "region": region, "model_version": str(model_version), "operation": operation,
           "images": list(images), "params": params}
    return hashlib.sha256(canonical(req).encode()).hexdigest(), req


class ResponseCache:
    """JSON entries on disk; safe for several threads and processes (atomic replace)."""

    def __init__(self, root: str | os.PathLike, service: str):
        self.root = Path(root) / service
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.hits = 0
        self.writes = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str):
        """The stored response, or None (also for an unreadable entry, which is then recomputed)."""
        p = self._path(key)
        try:
            entry = json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if entry.get("schema") != SCHEMA or entry.get("key") != key:
            return None
        with self._lock:
            self.hits += 1
        return entry["response"]

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, request: dict, response) -> None:
        """Store one entry atomically (``paths.atomic_write_bytes``: a temporary file, fsync, os.replace)."""
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        blob = json.dumps({"schema": SCHEMA, "key": key, "request": request, "response": response},
                          sort_keys=True, indent=1)
        atomic_write_bytes(p, blob.encode())
        with self._lock:
            self.writes += 1

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json"))
