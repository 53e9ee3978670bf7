"""Runs with a scoring backend (a system evalkit can only call, or a vendor's score file).

The glue between ``evalkit.backends.scoring_base.ScoringBackend`` and the rest of evalkit: it
turns a backend's scores into the values every downstream step already takes, so threshold
policies, groups, intervals, disparity, figures, report, check and compare run unchanged:

- 1:1: :func:`score_pairs` -> internal distance-oriented scores (``to_internal``), the per-image
  failures as an ``EmbeddingResult`` without vectors, per-comparison failures, a stats record;
- 1:N: :func:`search_result` -> the ``evalkit.metrics.search.SearchResult`` the search metrics
  take, built from the backend's candidate lists (a subject's score is its best returned image's;
  a mate not in the returned list is not returned: its rank is past the list).

Everything shown to a reader is converted back to the backend's own units
(:func:`present_table`, ``scoring_base.present_metrics``).
"""

from __future__ import annotations

import logging
import time
from collections import namedtuple
from dataclasses import dataclass, field, replace

import numpy as np

from .backends.base import EmbeddingResult
from .backends.scoring_base import SIMILARITY, present_scores, to_internal

log = logging.getLogger("evalkit")

#: One image as a scoring backend sees it: the dataset's sample id and the file.
Ref = namedtuple("Ref", "id path")


def backend_class(family: str):
    from .backends import BACKENDS

    return BACKENDS.get(family)


def is_scoring(cfg) -> bool:
    """True when the run's backend returns scores rather than embeddings."""
    return getattr(backend_class(cfg.backend.family), "kind", "embedding") == "scoring"


def build(cfg):
    """The run's scoring backend, ready (credentials, files) or raising before any work."""
    from .config import backend_options

    backend = backend_class(cfg.backend.family)(**backend_options(cfg.backend))
    backend.check_ready()
    return backend


@dataclass
class ScoringStats:
    """The run record's ``extraction`` block for a scoring backend: images, failures, calls."""

    n_images: int = 0
    from_cache: int = 0
    computed: int = 0
    failures: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"n_images": self.n_images, "from_cache": self.from_cache, "computed": self.computed,
                "failures": dict(sorted(self.failures.items())), "calls": self.calls,
                "seconds": round(self.seconds, 3)}


def _image_result(samples, used, failure: dict, detail: dict) -> EmbeddingResult:
    from .embeddings import image_key

    ids = [str(samples.ids[i]) for i in used]
    fails = [failure.get(s) for s in ids]
    dets = [detail.get(s, "") for s in ids]
    keys = [image_key(samples.paths[i]) for i in used]
    return EmbeddingResult(np.zeros((len(used), 0), np.float32), fails, dets, keys)


def _stats(emb: EmbeddingResult, backend, t0: float) -> ScoringStats:
    st = ScoringStats(n_images=len(emb.failures), calls=backend.call_stats(), seconds=time.perf_counter() - t0)
    st.computed = int(st.calls.get("calls_total", 0))
    st.from_cache = int(st.calls.get("cached_total", 0))
    for f in emb.failures:
        if f is not None:
            st.failures[f] = st.failures.get(f, 0) + 1
    return st


def score_pairs(backend, samples, pairs, used):
    """Score every pair of the protocol with the backend.

    Returns (internal scores over the pairs, image ok over ALL sample rows, per-pair failed,
    EmbeddingResult over ``used`` rows (failures, details, image SHA-256s), stats, pair details).
    """
    t0 = time.perf_counter()
    refs = [Ref(str(samples.ids[a]), str(samples.paths[a])) for a in range(len(samples))]
    res = backend.compare([(refs[a], refs[b]) for a, b in zip(pairs.a, pairs.b)])
    dist = to_internal(res.scores, backend.score_direction)
    pair_failed = np.array([f is not None for f in res.pair_failure], dtype=bool) | np.isnan(dist)
    emb = _image_result(samples, used, res.image_failure, res.image_detail)
    ok = np.zeros(len(samples), dtype=bool)
    ok[used] = emb.ok
    log.info("%s: %d comparisons scored, %d failed", backend.name, int((~pair_failed).sum()), int(pair_failed.sum()))
    return dist, ok, pair_failed, emb, _stats(emb, backend, t0), res


def mark_pair_failures(table, pair_failed):
    """The score table with comparisons the backend could not score flagged failed too."""
    failed = table.failed | np.asarray(pair_failed, bool)
    return replace(table, failed=failed, distance=np.where(failed, np.nan, table.distance))


def present_table(table, direction: str):
    """The score table with the backend's own numbers in its score column (for scores.csv)."""
    return replace(table, distance=present_scores(table.distance, direction))


def search_result(backend, samples, split, candidates: int, images_per_subject: int):
    """(SearchResult, EmbeddingResult over split.used_samples(), stats) from the backend's lists."""
    from .metrics.search import NO_RANK, SearchResult

    t0 = time.perf_counter()
    gallery = [Ref(str(samples.ids[r]), str(samples.paths[r])) for r in split.gallery]
    probes = [Ref(str(samples.ids[r]), str(samples.paths[r])) for r in split.probes]
    cand = backend.search(gallery, probes, int(candidates) * int(images_per_subject))
    col = np.asarray(split.gallery_column, dtype=np.int64)
    n_col = int(len(split.enrolled))
    L = int(min(int(candidates), n_col))
    n_p = len(probes)
    mate = np.asarray(split.probe_mate, dtype=np.int64)
    g_ok = np.array([f is None for f in cand.gallery_failure], dtype=bool)
    p_ok = np.array([f is None for f in cand.probe_failure], dtype=bool)
    column_ok = np.zeros(n_col, dtype=bool)
    column_ok[col[g_ok]] = True
    mate_score = np.full(n_p, np.inf)
    rank = np.zeros((n_p, 1), dtype=np.int64)
    best_nonmate = np.full((n_p, 1), np.inf)
    top_column = np.full((n_p, L), -1, dtype=np.int64)
    top_score = np.full((n_p, L), np.inf)
    for j in range(n_p):
        best: dict[int, float] = {}
        if p_ok[j]:
            for g, s in cand.lists[j]:
                if not g_ok[g]:
                    continue
                d = float(to_internal([s], backend.score_direction)[0])
                c = int(col[g])
                if c not in best or d < best[c]:
                    best[c] = d
        ranked = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))   # ties: enrolment order
        for k, (c, d) in enumerate(ranked[:L]):
            top_column[j, k], top_score[j, k] = c, d
        m = int(mate[j])
        others = [d for c, d in ranked if c != m]
        if others:
            best_nonmate[j, 0] = min(others)
        if m >= 0:
            if m in best:
                mate_score[j] = best[m]
                rank[j, 0] = 1 + sum(1 for d in others if d <= best[m])   # ties count against the mate
            else:
                rank[j, 0] = NO_RANK
    res = SearchResult(sizes=np.array([n_col], dtype=np.int64), candidates=L, probe_mate=mate, probe_ok=p_ok,
                       column_ok=column_ok, mate_score=mate_score, rank=rank, best_nonmate=best_nonmate,
                       top_column=top_column, top_score=top_score,
                       distance=f"{backend.name} {backend.score_direction}", seconds=time.perf_counter() - t0,
                       block_rows=0)
    used = split.used_samples()
    failure, detail = {}, {}
    for refs, fails, dets in ((gallery, cand.gallery_failure, cand.gallery_detail),
                              (probes, cand.probe_failure, cand.probe_detail)):
        for r, f, d in zip(refs, fails, dets):
            if f is not None:
                failure[r.id] = f
            if d:
                detail[r.id] = d
    emb = _image_result(samples, used, failure, detail)
    return res, emb, _stats(emb, backend, t0)


def to_internal_threshold(value, direction: str):
    """A threshold given in the backend's units, in the internal orientation."""
    if value is None:
        return None
    return -float(value) if direction == SIMILARITY else float(value)
