"""The backend contract: images in; an embedding matrix, a per-image failure reason and a
fingerprint out. A backend knows nothing about subjects, pairs or demographic groups.

A backend is built from its config (plain keyword arguments) and loads its model lazily on the
first ``embed_one`` call, so it can be constructed cheaply in the parent process (to read its
fingerprint and check its weights) and again inside each worker process.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Failure reasons, recorded per image. A failure is never dropped: it travels with the image
# into every comparison that uses it and is counted per demographic group.
MISSING_FILE = "missing_file"
UNREADABLE = "unreadable"
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
ERROR = "error"
FAILURE_REASONS = (MISSING_FILE, UNREADABLE, NO_FACE, MULTIPLE_FACES, ERROR)


class EnrolmentFailure(Exception):
    """An image the backend cannot turn into an embedding, with a reason from FAILURE_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in FAILURE_REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class WeightsMissing(RuntimeError):
    """Model weights are not where the backend expects them. The message names the file, the
    place it is expected and where it comes from; raised before any image is processed."""


@dataclass
class EmbeddingResult:
    """Embeddings of a list of images, in input order.

    vectors: float32 (n, d); rows of failed images are NaN.
    failures: per image, None when embedded, else a reason from FAILURE_REASONS.
    details: per image, a short detail: why it failed, or a fallback note for a success ("" otherwise).
    """

    vectors: np.ndarray
    failures: list
    details: list
    keys: list | None = None   # SHA-256 of each image's bytes (None: missing), set by the extraction loop

    @property
    def ok(self) -> np.ndarray:
        return np.array([f is None for f in self.failures], dtype=bool)


def check_choice(backend: str, key: str, value, allowed) -> None:
    """Raise ValueError naming the backend, the option and the allowed values (with a did-you-mean)."""
    if value not in allowed:
        import difflib

        hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        raise ValueError(f"{backend} backend: {key} must be one of {tuple(allowed)}, got {value!r}"
                         + (f". Did you mean {hint[0]!r}?" if hint else ""))


def read_image_bgr(path: str) -> np.ndarray:
    """Read an image as a BGR uint8 array, or raise EnrolmentFailure (missing / unreadable)."""
    import cv2

    if not os.path.isfile(path):
        raise EnrolmentFailure(MISSING_FILE, path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise EnrolmentFailure(UNREADABLE, f"cannot decode {path}")
    return img


@dataclass(frozen=True)
class DefaultThreshold:
    """A backend's own decision threshold (a distance: ``distance <= value`` is a match) and
    where it comes from, e.g. "DeepFace's default threshold for ArcFace (cosine)"."""

    value: float
    source: str


class Backend(ABC):
    """Subclasses set ``name`` and ``distance`` and implement ``embed_one`` and ``fingerprint``."""

    name: str = "backend"
    distance: str = "euclidean"

    @abstractmethod
    def embed_one(self, path: str):
        """Embed one image file; raise EnrolmentFailure when it cannot.

        Returns the vector, or (vector, note) when the embedding needed a documented fallback
        (e.g. "center_box: no face detected"): the note is kept per image and counted."""

    @abstractmethod
    def fingerprint(self) -> dict:
        """JSON-able description that changes whenever embeddings could change: model name,
        weights hash, detector, alignment, preprocessing and library versions. Keys the cache
        and goes into the run record."""

    def check_ready(self) -> None:
        """Raise WeightsMissing (or another clear error) before any work if the backend cannot run."""

    @classmethod
    def required_files(cls, options: dict) -> list:
        """The weight files (``weights.WeightFile``) this backend needs with these options, for
        ``evalkit weights`` and for ``check_ready``. Default: none."""
        return []

    @classmethod
    def validate_config(cls, backend_cfg) -> None:
        """Checks of the backend's config node that need no model (allowed values, files), run by
        evalkit.config.validate before any work; raise evalkit.config.ConfigError. Default: none."""

    @classmethod
    def default_threshold(cls, options: dict, distance: str) -> "DefaultThreshold | None":
        """The backend's (vendor's) own default threshold for these options and distance, used by
        ``threshold=fixed threshold.deepface_default=true`` and by search audits; never a
        measurement. None: the backend has none. Raises ValueError when it has a table of them
        but no entry for this model and distance. Default: None."""
        return None

    def embed(self, paths: Sequence[str]) -> EmbeddingResult:
        vectors, failures, details = [], [], []
        for p in paths:
            try:
                out = self.embed_one(p)
                note = ""
                if isinstance(out, tuple):
                    out, note = out
                vectors.append(np.asarray(out, dtype=np.float32).ravel())
                failures.append(None)
                details.append(note)
            except EnrolmentFailure as exc:
                vectors.append(None)
                failures.append(exc.reason)
                details.append(exc.detail)
            except Exception as exc:  # a backend bug on one image must not lose the run
                vectors.append(None)
                failures.append(ERROR)
                details.append(f"{type(exc).__name__}: {exc}")
        return EmbeddingResult(stack_vectors(vectors), failures, details)


def stack_vectors(vectors: list) -> np.ndarray:
    """float32 (n, d) matrix of per-image vectors; rows of failed images (None) are NaN."""
    dim = next((len(v) for v in vectors if v is not None), 0)
    mat = np.full((len(vectors), dim), np.nan, dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            mat[i] = v
    return mat


def fingerprint_key(fp: dict) -> str:
    """Short stable hash of a fingerprint, used as the cache folder name."""
    import json

    blob = json.dumps(fp, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
