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


def is_scoring_class(cls) -> bool:
    """True for a backend class that returns scores rather than embeddings."""
    return getattr(cls, "kind", "embedding") == "scoring"


def is_scoring(cfg) -> bool:
    """True when the run's backend returns scores rather than embeddings."""
    from .backends import backend_class

    return is_scoring_class(backend_class(cfg.backend))


def build(cfg):
    """The run's scoring backend, ready (credentials, files) or raising before any work."""
    from .backends import backend_class
    from .config import backend_options

    from .backends.base import IMAGE_LIMIT_KEYS

    # the image caps (backend.max_image_bytes / max_image_pixels) bound what evalkit decodes; a
    # scoring backend sends bytes or reads a score file, and the service's own size errors are
    # recorded failures
    opts = {k: v for k, v in backend_options(cfg.backend).items() if k not in IMAGE_LIMIT_KEYS}
    backend = backend_class(cfg.backend)(**opts)
    backend.check_ready()
    return backend


def config_direction(cfg, cls=None) -> str:
    """The score direction a scoring backend's config declares (a score file's ``backend.direction``,
    else the class's ``score_direction``)."""
    if cls is None:
        from .backends import backend_class

        cls = backend_class(cfg.backend)
    return cls.direction_of_config(cfg.backend)


def threshold_value(cfg, cls=None):
    """``threshold.value`` (in the backend's own units) in the internal orientation."""
    return to_internal_threshold(cfg.threshold.value, config_direction(cfg, cls))


def audit_thresholds(cfg, cls) -> list[dict]:
    """The thresholds a search run with a scoring backend audits, in the internal orientation:
    protocol.audit_thresholds (in the backend's units) plus the operating points the backend
    documents (Rekognition: 80 and 99)."""
    direction = config_direction(cfg, cls)
    given = [{"threshold": float(v), "source": "given (protocol.audit_thresholds)"} for v in cfg.protocol.audit_thresholds]
    for a in cls.default_audit_thresholds():
        if all(g["threshold"] != a["threshold"] for g in given):
            given.append(dict(a))
    out = [{**a, "threshold": to_internal_threshold(a["threshold"], direction)} for a in given]
    return sorted(out, key=lambda a: a["threshold"])


def declare(metrics: dict, backend) -> dict:
    """metrics.json's backend block for a scoring backend: its direction instead of a distance."""
    be = dict(metrics.get("backend") or {})
    be.update(distance=None, kind="scoring", score_direction=backend.score_direction,
              score_range=list(backend.score_range) if backend.score_range else None)
    return {**metrics, "backend": be}


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


class BlackBox:
    """What ``protocol.score`` receives from a scoring backend instead of embeddings (the
    protocol contract's "scorer"): it scores the plan's pairs or runs its searches, and keeps the
    per-image failures (``result``, aligned with the plan's rows), the call statistics and the
    fingerprint for the run folder."""

    kind = "scoring"

    def __init__(self, backend, rows, samples):
        self.backend = backend
        self.rows = np.asarray(rows)
        self.samples = samples
        self.fingerprint = backend.fingerprint()
        self.result = None
        self.stats = None
        self.direction = backend.score_direction

    def score_table(self, pairs):
        """The protocol's score table (internal orientation), comparisons the backend could not
        score flagged failed."""
        from .scores import ScoreTable

        dist, ok, pair_failed, self.result, self.stats, _ = score_pairs(self.backend, self.samples, pairs, self.rows)
        return mark_pair_failures(ScoreTable.build(self.samples, pairs, dist, ok), pair_failed)

    def search(self, split, candidates: int, images_per_subject: int):
        res, self.result, self.stats = search_result(self.backend, self.samples, split, candidates, images_per_subject)
        return res


def to_internal_threshold(value, direction: str):
    """A threshold given in the backend's units, in the internal orientation."""
    if value is None:
        return None
    return -float(value) if direction == SIMILARITY else float(value)


def validate_run(cfg) -> None:
    """A scoring backend (scores, not embeddings): what its runs cannot do, said before any work."""
    from .config import ConfigError

    b = cfg.backend
    if b.family == "scores" and b.direction not in ("similarity", "distance"):
        raise ConfigError(f"backend.direction={b.direction!r}: say whether the file's scores are a similarity "
                          "(higher = more alike) or a distance (lower = more alike)")
    if b.family == "scores" and b.missing not in ("error", "failure"):
        raise ConfigError(f"backend.missing={b.missing!r}: choose error or failure")
    if b.family == "rekognition" and b.quality_filter not in ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH"):
        raise ConfigError(f"backend.quality_filter={b.quality_filter!r}: choose NONE, AUTO, LOW, MEDIUM or HIGH")
    if cfg.protocol.kind == "exhaustive":
        raise ConfigError(f"protocol=exhaustive needs embeddings (every image against every other); the {b.family} "
                          "backend returns scores: use a pairs protocol (lfw_view2, generated) or protocol=search")
    if cfg.threshold.policy == "calibrated" and cfg.threshold.calibration == "lfw_view1_train":
        raise ConfigError(f"threshold.calibration=lfw_view1_train would score a second pair list with the {b.family} "
                          "backend; use threshold.calibration=subject_split")
    if cfg.threshold.deepface_default:
        raise ConfigError(f"threshold.deepface_default: DeepFace has no threshold for the {b.family} backend; give "
                          "threshold.value in the backend's own units")
    if cfg.protocol.kind == "search" and [v for v in cfg.protocol.gallery_sizes if v is not None]:
        raise ConfigError(f"protocol.gallery_sizes={list(cfg.protocol.gallery_sizes)}: a {b.family} search returns "
                          "candidate lists of the full gallery only (a smaller gallery's list is not a prefix of it); "
                          "use protocol.gallery_sizes=[null]")
