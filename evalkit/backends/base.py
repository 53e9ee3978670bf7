"""The backend contract: images in; an embedding matrix, a per-image failure reason and a
fingerprint out. A backend knows nothing about subjects, pairs or demographic groups.

A backend is built from its config (plain keyword arguments) and loads its model lazily on the
first ``embed_one`` call, so it can be constructed cheaply in the parent process (to read its
fingerprint and check its weights) and again inside each worker process.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Failure reasons, recorded per image. A failure is never dropped: it travels with the image
# into every comparison that uses it and is counted per demographic group.
MISSING_FILE = "missing_file"
UNREADABLE = "unreadable"        # not a regular file, not an image, or a truncated one
TOO_LARGE = "too_large"          # over backend.max_image_bytes or backend.max_image_pixels
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
ERROR = "error"
FAILURE_REASONS = (MISSING_FILE, UNREADABLE, TOO_LARGE, NO_FACE, MULTIPLE_FACES, ERROR)
#: Failures the embedding cache does not keep (retried next run): a missing file may appear, a
#: backend bug may be fixed, and a too_large image may fit once the user raises the caps (the caps
#: are not part of the fingerprint, so they must not be baked into cached results).
UNCACHED_REASONS = (MISSING_FILE, ERROR, TOO_LARGE)

#: Default caps on one image (``backend.max_image_bytes``, ``backend.max_image_pixels``): 50 MiB
#: of file and 25 megapixels (5,000 x 5,000) decoded. A 6,000 x 6,000 photo cost 1.9 GB and 211 s
#: in one backend; a decompression bomb (a few KB of PNG declaring 50,000 x 50,000) is refused from
#: its header, before any pixel is decoded.
DEFAULT_MAX_IMAGE_BYTES = 50 << 20
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000
IMAGE_LIMIT_KEYS = ("max_image_bytes", "max_image_pixels")


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


@dataclass(frozen=True)
class ImageLimits:
    """Caps on one image file: bytes on disk and pixels once decoded (``None``: no cap)."""

    max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS

    @classmethod
    def from_options(cls, options: dict) -> "ImageLimits":
        """Pop ``max_image_bytes`` / ``max_image_pixels`` from backend options (defaults when absent)."""
        def cap(key, default):
            v = options.pop(key, default)
            if v is None:
                return None
            if isinstance(v, bool) or int(v) != v or int(v) < 1:
                raise ValueError(f"backend.{key} must be a positive integer or null (no cap), got {v!r}")
            return int(v)
        return cls(cap("max_image_bytes", DEFAULT_MAX_IMAGE_BYTES), cap("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS))


_LIMITS = ImageLimits()   # the limits in force: set by Backend.embed from the backend's own


def read_image_file(path: str, limits: ImageLimits | None = None) -> bytes:
    """The bytes of an image file, opened only if it is a regular file within the byte cap.

    Opened non-blocking (a FIFO cannot stall the open) and checked with ``fstat`` on the open
    descriptor, so a device (``/dev/zero``), pipe, socket or folder is refused before any byte is
    read, and a file over ``limits.max_bytes`` is refused from its size. Raises EnrolmentFailure:
    ``missing_file``, ``unreadable`` (not a regular file, no permission) or ``too_large``. Details
    never name the path: they are cached by image content and shown beside the current path.
    """
    limits = limits or _LIMITS
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise EnrolmentFailure(MISSING_FILE, "no such file") from None
    except IsADirectoryError:
        raise EnrolmentFailure(UNREADABLE, "a folder, not an image file") from None
    except PermissionError:
        raise EnrolmentFailure(UNREADABLE, "permission denied") from None
    except OSError as exc:   # e.g. ENXIO: a socket, or a FIFO with no writer on some systems
        raise EnrolmentFailure(UNREADABLE, f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise EnrolmentFailure(UNREADABLE, "not a regular file (a device, pipe, socket or folder)")
        if limits.max_bytes is not None and st.st_size > limits.max_bytes:
            raise EnrolmentFailure(TOO_LARGE, f"{st.st_size:,} bytes, over the cap of {limits.max_bytes:,} "
                                              "(raise backend.max_image_bytes to embed it)")
        chunks, left = [], st.st_size
        while left > 0:
            block = os.read(fd, min(left, 1 << 22))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header (Pillow, no pixel decoded), None if Pillow cannot
    identify the format."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            max_px, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None   # our cap, not Pillow's
            try:
                with Image.open(io.BytesIO(data)) as im:
                    return im.size
            finally:
                Image.MAX_IMAGE_PIXELS = max_px
    except Exception:
        return None


def _strict_decodes(data: bytes) -> bool:
    """Pillow decodes every pixel without reaching the end of the data early."""
    import io

    from PIL import Image, ImageFile

    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:
        return False
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def truncation(data: bytes) -> str | None:
    """Why a JPEG or PNG is cut short, or None. OpenCV decodes a truncated JPEG partially (grey
    below the cut) without an error, which a detector then reports as ``no_face``: a JPEG must end
    with its EOI marker (FF D9; trailing padding of up to 1 KiB allowed) and a PNG must hold its
    IEND chunk. A file without one is decoded strictly by Pillow before it is called truncated
    (some cameras append data after the image)."""
    tail = data[-1024:]
    if data[:2] == b"\xff\xd8":
        if b"\xff\xd9" in tail or _strict_decodes(data):
            return None
        return "truncated JPEG: no end-of-image marker (the file is cut short)"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" in tail or _strict_decodes(data):
            return None
        return "truncated PNG: no IEND chunk (the file is cut short)"
    return None


def decode_image_bgr(data: bytes, limits: ImageLimits | None = None) -> np.ndarray:
    """Decode image bytes to BGR uint8 (OpenCV's ``imdecode``, EXIF orientation applied as
    ``imread`` does), or raise EnrolmentFailure: ``too_large`` when the header declares more than
    ``limits.max_pixels`` pixels (checked before decoding), ``unreadable`` when the bytes are not an
    image OpenCV reads or are truncated."""
    import cv2

    limits = limits or _LIMITS
    if not data:
        raise EnrolmentFailure(UNREADABLE, "empty file (0 bytes)")
    size = _image_size(data)
    if size is not None and limits.max_pixels is not None and size[0] * size[1] > limits.max_pixels:
        raise EnrolmentFailure(TOO_LARGE, f"{size[0]:,} x {size[1]:,} pixels, over the cap of "
                                          f"{limits.max_pixels:,} (raise backend.max_image_pixels to embed it)")
    why = truncation(data)
    if why:
        raise EnrolmentFailure(UNREADABLE, why)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:   # e.g. over OpenCV's own pixel limit
        raise EnrolmentFailure(UNREADABLE, f"OpenCV cannot decode it: {str(exc).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise EnrolmentFailure(UNREADABLE, "cannot decode (not an image format OpenCV reads)")
    if size is None and limits.max_pixels is not None and img.shape[0] * img.shape[1] > limits.max_pixels:
        raise EnrolmentFailure(TOO_LARGE, f"{img.shape[1]:,} x {img.shape[0]:,} pixels, over the cap of "
                                          f"{limits.max_pixels:,} (raise backend.max_image_pixels to embed it)")
    return img


def read_image_bgr(path: str, limits: ImageLimits | None = None) -> np.ndarray:
    """Read an image as a BGR uint8 array, or raise EnrolmentFailure (``missing_file``,
    ``unreadable``, ``too_large``): only regular files are opened, within the byte and pixel caps
    (see :func:`read_image_file`, :func:`decode_image_bgr`)."""
    limits = limits or _LIMITS
    return decode_image_bgr(read_image_file(path, limits), limits)


_OLD_PATH_DETAIL = re.compile(r"^cannot decode (/|[A-Za-z]:\\).*$")


def render_detail(detail: str) -> str:
    """A failure detail fit to show beside the current path. Details are cached by image content,
    so one written by an earlier version that named the image's path then (``cannot decode
    /old/dataset/x.jpg``) would name another dataset's path: that form is rewritten pathless."""
    if _OLD_PATH_DETAIL.match(detail or ""):
        return "cannot decode (not an image format OpenCV reads)"
    return detail


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
    #: the ``multiple_faces`` rules this backend implements (None: it has no such option). A
    #: dataset's declared face rule is passed only when the backend implements it.
    multiple_faces_choices: tuple | None = ("largest", "central", "fail")

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

    image_limits: ImageLimits = ImageLimits()

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
        global _LIMITS
        saved, _LIMITS = _LIMITS, self.image_limits
        try:
            return self._embed_all(paths)
        finally:
            _LIMITS = saved

    def _embed_all(self, paths: Sequence[str]) -> EmbeddingResult:
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
                details.append(exc.detail.replace(str(p), "<image>") if exc.detail else exc.detail)
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
