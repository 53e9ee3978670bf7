"""Pair scores from an embedding matrix: one distance per comparison, vectorised and chunked.

Scores are distances (lower = more similar). A comparison touching an image that failed to
enrol has no score: it is flagged ``failed`` and the failure policy decides what it counts as
(see ``apply_failure_policy``).
"""

from __future__ import annotations

import numpy as np

FAILURE_POLICIES = ("nonmatch", "exclude")


def pair_distances(emb: np.ndarray, a: np.ndarray, b: np.ndarray, distance: str,
                   chunk: int = 65536) -> np.ndarray:
    """Distance between rows ``emb[a[i]]`` and ``emb[b[i]]`` for every i (NaN if either is NaN).

    euclidean: ||x - y||_2; euclidean_l2: the same on L2-normalised vectors;
    cosine: 1 - <x, y> / (||x|| ||y||)  (DeepFace's definitions, deepface/modules/verification.py).
    """
    if distance not in ("euclidean", "euclidean_l2", "cosine"):
        raise ValueError(f"unknown distance {distance!r}")
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
        else:
            out[s:s + chunk] = np.linalg.norm(x - y, axis=1)
    return out


def apply_failure_policy(scores: np.ndarray, failed: np.ndarray, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores ready for metrics, and the mask of comparisons kept.

    nonmatch: a failed comparison is a non-match (score +inf), as ISO/IEC 19795-1 counts a
        failure to acquire/enrol in the generalised FMR/FNMR: it raises FNMR, never FMR.
    exclude: failed comparisons are left out (and counted in the report as excluded).
    """
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"failure policy must be one of {FAILURE_POLICIES}, got {policy!r}")
    scores = np.where(failed, np.inf, scores)
    keep = np.ones(len(scores), dtype=bool) if policy == "nonmatch" else ~failed
    return scores, keep
