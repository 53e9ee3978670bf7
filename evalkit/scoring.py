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
    """Row-wise chi-square distance between equally shaped ``x`` and ``y`` (2-D)."""
    num = (x - y) ** 2
    den = x + y
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(den != 0, num / np.where(den != 0, den, 1), 0.0)
    # a NaN input (failed image) must stay NaN, not vanish with the zero-denominator rule
    terms[np.isnan(den)] = np.nan
    return terms.sum(axis=1)


def pair_distances(emb: np.ndarray, a: np.ndarray, b: np.ndarray, distance: str,
                   chunk: int = 65536) -> np.ndarray:
    """Distance between rows ``emb[a[i]]`` and ``emb[b[i]]`` for every i (NaN if either is NaN).

    euclidean: ||x - y||_2; euclidean_l2: the same on L2-normalised vectors;
    cosine: 1 - <x, y> / (||x|| ||y||)  (DeepFace's definitions, deepface/modules/verification.py);
    chi2: sum_k (x_k - y_k)^2 / (x_k + y_k), zero-denominator terms 0 (Ahonen et al. 2006).
    Computed in float64.
    """
    _check_distance(distance)
    emb = np.asarray(emb, dtype=np.float64)
    if distance in ("euclidean_l2", "cosine"):
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            emb = emb / norms
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        x, y = emb[a[s:s + chunk]], emb[b[s:s + chunk]]
        if distance == "cosine":
            out[s:s + chunk] = 1.0 - np.einsum("ij,ij->i", x, y)
        elif distance == "chi2":
            out[s:s + chunk] = _chi2_rows(x, y)
        else:
            out[s:s + chunk] = np.linalg.norm(x - y, axis=1)
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
