"""Pair scores from an embedding matrix: one distance per comparison, vectorised and chunked.

Scores are distances (lower = more similar). A comparison touching an image that failed to
enrol has no score: it is flagged ``failed`` and the failure policy decides what it counts as
(see ``apply_failure_policy``).

Distances (``DISTANCES``):

- ``euclidean``: ``||x - y||_2``;
- ``euclidean_l2``: the same on L2-normalised vectors;
- ``cosine``: ``1 - <x, y> / (||x|| ||y||)`` (these three are DeepFace's definitions,
  deepface/modules/verification.py);
- ``chi2``: the histogram chi-square distance ``sum_k (x_k - y_k)^2 / (x_k + y_k)``, a term with
  ``x_k + y_k == 0`` contributing 0 (Ahonen, Hadid & Pietikainen 2006, "Face description with
  local binary patterns", IEEE TPAMI 28(12), the LBPH face recogniser; OpenCV's
  ``HISTCMP_CHISQR_ALT`` without its factor 2). Meant for non-negative histograms: on vectors
  with negative entries the terms are not distances and the result has no meaning.

``pair_distances`` scores a list of pairs; ``distance_matrix`` scores every row of ``X`` against
every row of ``Y`` in bounded memory (the all-vs-all building block).
"""

from __future__ import annotations

import numpy as np

FAILURE_POLICIES = ("nonmatch", "exclude")
DISTANCES = ("euclidean", "euclidean_l2", "cosine", "chi2")


def _check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")


def _check_failure_policy(policy: str) -> None:
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"failure policy must be one of {FAILURE_POLICIES}, got {policy!r}")


def _chi2_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise chi-square distance between equally shaped ``x`` and ``y`` (2-D), in float64
    whatever their dtype. A NaN input (failed image) stays NaN: ``NaN != 0`` keeps its term out of
    the zero-denominator rule."""
    den = np.add(x, y, dtype=np.float64)
    num = np.subtract(x, y, dtype=np.float64)
    np.square(num, out=num)
    nonzero = den != 0
    np.divide(num, den, out=num, where=nonzero)
    num[~nonzero] = 0.0
    return num.sum(axis=1)


#: Matrix-sized float64 temporaries per pair in ``pair_distances`` (the two gathered rows, the
#: difference or numerator and denominator, numpy's own temporary in ``norm``): the budget divides
#: by this, a bound for every distance.
_TEMPORARIES = 4
DEFAULT_MEMORY_BUDGET_BYTES = 256 << 20


def pair_chunk_rows(dim: int, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES) -> int:
    """Pairs per chunk of ``pair_distances`` so its temporaries stay within ``memory_budget_bytes``:
    ``budget // (dim * 8 bytes * 4 temporaries)``, at least 1. At 128-d and 256 MiB that is 65,536
    pairs (the fixed chunk of earlier versions); at 16,384-d (LBPH) 512."""
    return max(1, int(memory_budget_bytes) // (max(1, int(dim)) * 8 * _TEMPORARIES))


def pair_distances(emb: np.ndarray, a: np.ndarray, b: np.ndarray, distance: str,
                   chunk: int | None = None,
                   memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES) -> np.ndarray:
    """Distance between rows ``emb[a[i]]`` and ``emb[b[i]]`` for every i (NaN if either is NaN).

    euclidean: ||x - y||_2; euclidean_l2: the same on L2-normalised vectors;
    cosine: 1 - <x, y> / (||x|| ||y||)  (DeepFace's definitions, deepface/modules/verification.py);
    chi2: sum_k (x_k - y_k)^2 / (x_k + y_k), zero-denominator terms 0 (Ahonen et al. 2006).

    Computed in float64 on the rows each chunk gathers (the matrix itself stays in its own dtype,
    float32 for every backend: no float64 copy of it), so every value is the one a float64 copy of
    the whole matrix would give, bit for bit. Memory is bounded in bytes, whatever the width: the
    pairs go through in chunks of :func:`pair_chunk_rows` (``chunk``, if given, caps it further),
    so the temporaries stay within ``memory_budget_bytes`` beside the ``(len(a),)`` result.
    """
    _check_distance(distance)
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"embedding matrix must be 2-D, got shape {emb.shape}")
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} indices, b has {len(b)}")
    rows = pair_chunk_rows(emb.shape[1], memory_budget_bytes)
    if chunk is not None:
        rows = max(1, min(rows, int(chunk)))
    unit = distance in ("euclidean_l2", "cosine")
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), rows):
        x, y = emb[a[s:s + rows]], emb[b[s:s + rows]]   # gathered in the matrix's own dtype
        if unit:
            x, y = x.astype(np.float64), y.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                x /= np.linalg.norm(x, axis=1, keepdims=True)
                y /= np.linalg.norm(y, axis=1, keepdims=True)
        if distance == "cosine":
            out[s:s + rows] = 1.0 - np.einsum("ij,ij->i", x, y)
        elif distance == "chi2":
            out[s:s + rows] = _chi2_rows(x, y)
        else:   # the difference taken in float64: float64(x) - float64(y), as on a float64 copy
            out[s:s + rows] = np.linalg.norm(np.subtract(x, y, dtype=np.float64), axis=1)
    return out


class BlockDistance:
    """Distances between row blocks of one or two embedding matrices, prepared once.

    Preparation normalises rows (cosine, euclidean_l2) and precomputes squared norms in
    ``dtype``, so each block is one matrix product (GEMM) plus a few element-wise passes:

    - euclidean / euclidean_l2: ``sqrt(max(||x||^2 + ||y||^2 - 2 <x, y>, 0))`` (clipping at 0 absorbs
      the rounding of the expansion for near-identical vectors);
    - cosine: ``1 - <x^, y^>`` on unit rows;
    - chi2: no product form; computed directly over column chunks whose ``(rows, cols, d)``
      temporary stays under ``chunk_bytes``.

    A NaN row (failed image) gives NaN distances in its row/column; so does a zero row under
    cosine / euclidean_l2 (no direction). With ``dtype=float32`` the expansion loses precision:
    distances agree with ``pair_distances`` (float64, direct difference) to about 1e-6 times the
    squared norms (absolute, on d^2), which matters only for scores within that of a threshold.
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray | None, distance: str,
                 dtype=np.float64, chunk_bytes: int = 64 << 20):
        _check_distance(distance)
        self.distance = distance
        self.dtype = np.dtype(dtype)
        self.chunk_bytes = int(chunk_bytes)
        self.X = self._prep(X)
        self.Y = self.X if Y is None else self._prep(Y)
        if self.X.shape[1] != self.Y.shape[1]:
            raise ValueError(f"X has {self.X.shape[1]} columns, Y has {self.Y.shape[1]}")
        if distance in ("euclidean", "euclidean_l2"):
            self.sx = np.einsum("ij,ij->i", self.X, self.X)
            self.sy = self.sx if Y is None else np.einsum("ij,ij->i", self.Y, self.Y)

    def _prep(self, M) -> np.ndarray:
        M = np.asarray(M)
        if M.ndim != 2:
            raise ValueError(f"embedding matrix must be 2-D, got shape {M.shape}")
        if self.distance in ("euclidean_l2", "cosine"):
            M64 = M.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                M = M64 / np.linalg.norm(M64, axis=1, keepdims=True)
        return np.ascontiguousarray(M, dtype=self.dtype)

    def block(self, r0: int, r1: int, c0: int, c1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Distances of rows ``X[r0:r1]`` to rows ``Y[c0:c1]``, shape ``(r1 - r0, c1 - c0)``."""
        x, y = self.X[r0:r1], self.Y[c0:c1]
        if self.distance == "chi2":
            res = np.empty((len(x), len(y)), dtype=self.dtype) if out is None else out
            per_col = max(1, self.chunk_bytes // max(1, len(x) * x.shape[1] * self.dtype.itemsize * 3))
            for s in range(0, len(y), per_col):
                yy = y[s:s + per_col]
                num = (x[:, None, :] - yy[None, :, :]) ** 2
                den = x[:, None, :] + yy[None, :, :]
                with np.errstate(invalid="ignore", divide="ignore"):
                    np.divide(num, den, out=num, where=den != 0)
                num[den == 0] = 0
                res[:, s:s + per_col] = num.sum(axis=2)
            return res
        g = np.matmul(x, y.T, out=out)
        if self.distance == "cosine":
            np.subtract(1, g, out=g)
            return g
        g *= -2
        g += self.sx[r0:r1, None]
        g += self.sy[None, c0:c1]
        np.maximum(g, 0, out=g)
        np.sqrt(g, out=g)
        return g


def distance_matrix(X: np.ndarray, Y: np.ndarray, distance: str, dtype=np.float64,
                    memory_budget_mb: float = 256.0) -> np.ndarray:
    """All distances between the rows of ``X`` (n, d) and ``Y`` (m, d): an ``(n, m)`` array.

    Same definitions as ``pair_distances`` (see the module docstring), computed block-wise
    (``BlockDistance``): a matrix product with precomputed squared norms for euclidean,
    euclidean_l2 and cosine, chunked direct sums for chi2. The temporaries stay within about
    ``memory_budget_mb`` (the ``(n, m)`` result itself is the caller's). NaN rows give NaN.
    """
    bd = BlockDistance(X, Y, distance, dtype=dtype, chunk_bytes=int(memory_budget_mb * 2 ** 20))
    n, m = len(bd.X), len(bd.Y)
    out = np.empty((n, m), dtype=bd.dtype)
    if distance == "chi2":
        rows = 256  # block() chunks the columns so each (rows, cols, d) temporary fits the budget
        for r in range(0, n, rows):
            bd.block(r, min(n, r + rows), 0, m, out=out[r:r + rows])
    else:
        bd.block(0, n, 0, m, out=out)  # one GEMM straight into the result: no temporaries
    return out


def apply_failure_policy(scores: np.ndarray, failed: np.ndarray, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores ready for metrics, and the mask of comparisons kept.

    nonmatch: a failed comparison is a non-match (score +inf), as ISO/IEC 19795-1 counts a
        failure to acquire/enrol in the generalised FMR/FNMR: it raises FNMR, never FMR.
    exclude: failed comparisons are left out (and counted in the report as excluded).
    """
    _check_failure_policy(policy)
    scores = np.where(failed, np.inf, scores)
    keep = np.ones(len(scores), dtype=bool) if policy == "nonmatch" else ~failed
    return scores, keep
