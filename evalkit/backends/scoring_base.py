"""The second backend contract: systems that return SCORES, not vectors.

A cloud API (Amazon Rekognition), a vendor SDK with opaque templates or a vendor's score file
cannot hand evalkit an embedding. Such a system answers two questions instead:

- 1:1: ``compare(pairs)`` -> one score per (image a, image b) comparison;
- 1:N: ``search(gallery, probes, candidates)`` -> per probe, a candidate list of gallery entries
  with their scores (the NIST FRTE "search" interface).

Every backend of this kind declares:

- ``score_direction``: ``"similarity"`` (higher = more alike, e.g. Rekognition's 0-100) or
  ``"distance"`` (lower = more alike, as every embedding backend in evalkit);
- ``score_range``: the documented range of its scores (or None);
- ``fingerprint()``: what identifies the system that produced the scores (service, region, model
  version ...); it keys the response cache and goes into the run record. Never a credential.
- ``default_audit_thresholds()``: the operating points its maker documents, in its own units,
  with their source (the search protocol's vendor-threshold audit uses them).

Failures are per image with a reason (``FAILURE_REASONS``): no face in the source or target,
several faces, quality-filtered, a service error. They are counted per group like embedding
failures, and a comparison that touches one counts as the failure policy says.

How the direction is honoured downstream (one rule, in one place): evalkit's metrics work on
distance-oriented scores (a match when ``score <= threshold``). A similarity ``s`` enters them as
``-s`` (:func:`to_internal`): exact in floating point, order-reversing, ties preserved, so
``-s <= -T`` exactly when ``s >= T`` and every threshold rule (FMR/FPIR targets, fixed values,
per-group thresholds, calibration, folds) gives the same decisions as it would on the similarity
itself. Everything a reader sees is converted back (:func:`present_scores`,
:func:`present_metrics`): scores.csv and search.csv hold the service's own numbers, metrics.json's
thresholds are in the service's units with ``direction`` and ``match_rule`` beside them, and the
figures' axes are labelled with the direction.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .base import ERROR, MISSING_FILE, MULTIPLE_FACES, NO_FACE, UNREADABLE

# Failure reasons of a scoring backend, per image (a superset of the embedding backends' ones).
QUALITY_FILTERED = "quality_filtered"     # the service found a face but its quality filter dropped it
SERVICE_ERROR = "service_error"           # a permanent error of the service on this image
MISSING_SCORE = "missing_score"           # a score file has no line for a comparison of the protocol
FAILURE_REASONS = (MISSING_FILE, UNREADABLE, NO_FACE, MULTIPLE_FACES, QUALITY_FILTERED, SERVICE_ERROR,
                   MISSING_SCORE, ERROR)

SIMILARITY = "similarity"
DISTANCE = "distance"
DIRECTIONS = (SIMILARITY, DISTANCE)


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"score direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def to_internal(scores, direction: str) -> np.ndarray:
    """Scores in the distance orientation evalkit's metrics use (a match when ``<= threshold``):
    a similarity ``s`` becomes ``-s`` (exact), a distance stays. NaN stays NaN."""
    s = np.asarray(scores, dtype=np.float64)
    return -s if check_direction(direction) == SIMILARITY else s.copy()


def present_scores(internal, direction: str) -> np.ndarray:
    """The inverse of :func:`to_internal`: the backend's own numbers (failures' +inf become -inf
    for a similarity: callers write failed comparisons as empty cells)."""
    s = np.asarray(internal, dtype=np.float64)
    return -s if check_direction(direction) == SIMILARITY else s.copy()


def present_value(v, direction: str):
    """One internal threshold/score value in the backend's units (None stays None)."""
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return -float(v) if direction == SIMILARITY else v
    return v


def match_rule(direction: str) -> str:
    return ("a match when similarity >= threshold (higher = more alike)" if direction == SIMILARITY
            else "a match when distance <= threshold (lower = more alike)")


def axis_label(direction: str, unit: str = "") -> str:
    """The score axis of a figure, with the direction spelled out."""
    unit = f" {unit}" if unit else ""
    return (f"similarity{unit} (higher = more alike)" if direction == SIMILARITY
            else f"distance{unit} (lower = more alike)")


def _present_threshold_block(th: dict, direction: str) -> dict:
    th = dict(th)
    for k in ("value", "global_value"):
        if k in th:
            th[k] = present_value(th[k], direction)
    if th.get("per_group"):
        th["per_group"] = {a: {g: {**e, "value": present_value(e.get("value"), direction)} for g, e in groups.items()}
                           for a, groups in th["per_group"].items()}
    if isinstance(th.get("label"), str):
        th["label"] = th["label"].replace("fixed distance threshold", f"fixed {direction} threshold")
        if th["label"].startswith(f"fixed {direction} threshold") and th.get("value") is not None:
            th["label"] = f"fixed {direction} threshold {th['value']:.6g}"
    th["direction"] = direction
    th["match_rule"] = match_rule(direction)
    return th


def present_metrics(metrics: dict, direction: str) -> dict:
    """metrics.json with every score-valued field in the backend's own units (see the module
    docstring): the operating threshold (and per-group ones), each group's thresholds at the FMR
    targets, the LFW folds' thresholds, search audit thresholds. A distance backend's metrics are
    returned unchanged apart from the recorded direction."""
    check_direction(direction)
    out = dict(metrics)
    if isinstance(out.get("threshold"), dict):
        out["threshold"] = _present_threshold_block(out["threshold"], direction)
    if direction == DISTANCE:
        return out

    def walk(node):
        if isinstance(node, dict):
            res = {}
            for k, v in node.items():
                if k == "fnmr_at_fmr" and isinstance(v, dict):
                    res[k] = {t: ({**e, "threshold": present_value(e.get("threshold"), direction)}
                                  if isinstance(e, dict) else e) for t, e in v.items()}
                else:
                    res[k] = walk(v)
            return res
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    for key in ("overall", "groups", "intersections", "mixed"):
        if key in out:
            out[key] = walk(out[key])
    if isinstance(out.get("lfw_accuracy"), dict) and out["lfw_accuracy"].get("thresholds") is not None:
        out["lfw_accuracy"] = {**out["lfw_accuracy"],
                               "thresholds": [present_value(t, direction) for t in out["lfw_accuracy"]["thresholds"]]}
    if isinstance(out.get("search"), dict) and out["search"].get("audit"):
        out["search"] = {**out["search"], "audit": [{**a, "threshold": present_value(a.get("threshold"), direction)}
                                                    for a in out["search"]["audit"]]}
    return out


@dataclass
class PairScores:
    """What a scoring backend returns for a list of 1:1 comparisons, in input order.

    scores: float64 (n,) in the backend's own direction; NaN where the comparison failed.
    pair_failure: per comparison, None or a reason from FAILURE_REASONS.
    pair_detail: per comparison, a short detail (the service's error, "2 faces in target" ...).
    image_failure: per distinct image (keyed by the caller's image index), a reason or None.
    records: per comparison, the JSON the backend keeps of the call (FaceMatches ...), or None.
    """

    scores: np.ndarray
    pair_failure: list
    pair_detail: list
    image_failure: dict
    image_detail: dict
    records: list = field(default_factory=list)


@dataclass
class Candidates:
    """What a scoring backend returns for a 1:N search, in input order.

    lists: per probe, [(gallery index, score), ...] best first, in the backend's direction; one
        entry per returned gallery IMAGE (the caller reduces images to subjects).
    probe_failure / probe_detail: per probe, None or a reason (no face in the probe ...).
    gallery_failure / gallery_detail: per gallery image, None or a reason (not indexed ...).
    """

    lists: list
    probe_failure: list
    probe_detail: list
    gallery_failure: list
    gallery_detail: list


@dataclass
class CallPlan:
    """How many billable calls a run will make (after the response cache) and what they cost."""

    calls: dict                      # operation -> number of calls not answered by the cache
    cached: int                      # calls answered by the cache
    price_per_call: float            # currency units per billable call
    currency: str = "USD"
    free_calls: dict = field(default_factory=dict)   # operation -> calls that are not billed (collections)
    upper_bound: bool = False        # the count is an upper bound (e.g. a collection may be reused)

    @property
    def n_calls(self) -> int:
        return int(sum(self.calls.values()))

    @property
    def cost(self) -> float:
        return self.n_calls * self.price_per_call

    def describe(self) -> str:
        ops = ", ".join(f"{op} {n:,}" for op, n in self.calls.items() if n) or "none"
        free = ", ".join(f"{op} {n:,}" for op, n in self.free_calls.items() if n)
        return (f"{'at most ' if self.upper_bound else ''}{self.n_calls:,} billable calls ({ops}) at "
                f"{self.price_per_call:g} {self.currency} per call = {self.cost:,.2f} {self.currency}"
                f"{'; not billed: ' + free if free else ''}; {self.cached:,} answered from the response cache")


class CostLimitExceeded(RuntimeError):
    """A run would make more calls (or cost more) than the configured cap; raised before any call."""


class CredentialsMissing(RuntimeError):
    """No credentials in the standard chain of the service; raised before any work."""


def check_limits(plan: CallPlan, max_calls: int | None, max_cost: float | None, allow_over_limit: bool,
                 backend: str = "backend") -> None:
    """Raise CostLimitExceeded when the plan exceeds ``max_calls`` or ``max_cost`` (unless allowed)."""
    if allow_over_limit:
        return
    over = []
    if max_calls is not None and plan.n_calls > int(max_calls):
        over.append(f"{plan.n_calls:,} calls > {backend}.max_calls={int(max_calls):,}")
    if max_cost is not None and plan.cost > float(max_cost) + 1e-12:
        over.append(f"{plan.cost:,.2f} {plan.currency} > {backend}.max_cost={float(max_cost):g}")
    if over:
        raise CostLimitExceeded(
            f"refusing to start: this run needs {plan.describe()}; {'; '.join(over)}. Raise the cap "
            f"(e.g. {backend}.max_calls={plan.n_calls}) or pass {backend}.allow_over_limit=true to accept it. "
            "No call was made.")


class ScoringBackend(ABC):
    """A system evalkit can only call. Subclasses set ``name``, ``score_direction``,
    ``score_range`` and implement what they support of ``compare`` / ``search``."""

    kind = "scoring"                 # tells the pipeline this is not an embedding backend
    name: str = "scoring"
    score_direction: str = SIMILARITY
    score_range: tuple | None = None
    score_unit: str = ""

    def check_ready(self) -> None:
        """Raise a clear error (CredentialsMissing, FileNotFoundError ...) before any work."""

    @abstractmethod
    def fingerprint(self) -> dict:
        """Service, region, model version, the parameters that change scores; never a secret."""

    @classmethod
    def direction_of_config(cls, backend_cfg) -> str:
        """The score direction of a run with this backend config (before it is built)."""
        return cls.score_direction

    @classmethod
    def default_threshold(cls, options: dict, distance: str):
        """No DeepFace-style default threshold: see ``default_audit_thresholds``."""
        return None

    @classmethod
    def required_files(cls, options: dict) -> list:
        """Weight files (none: the system is called, not run here); for ``evalkit weights``."""
        return []

    @classmethod
    def default_audit_thresholds(cls) -> list[dict]:
        """[{threshold, source}] in the backend's own units: the operating points its maker
        documents (audited by protocol=search). Default: none."""
        return []

    def plan_compare(self, pairs: Sequence[tuple[str, str]]) -> CallPlan:
        """The calls ``compare`` would make (default: none, e.g. a score file)."""
        return CallPlan(calls={}, cached=0, price_per_call=0.0)

    def plan_search(self, gallery: Sequence[tuple[str, str]], probes: Sequence[str], candidates: int) -> CallPlan:
        return CallPlan(calls={}, cached=0, price_per_call=0.0)

    def compare(self, pairs: Sequence[tuple[str, str]]) -> PairScores:
        """Score each (path a, path b); failures recorded, never raised per pair."""
        raise NotImplementedError(f"the {self.name} backend does not do 1:1 comparisons")

    def search(self, gallery: Sequence[tuple[str, str]], probes: Sequence[str], candidates: int) -> Candidates:
        """gallery: (path, external id) per gallery image; probes: paths; returns candidate lists
        of at least ``candidates`` gallery images per probe where the gallery allows."""
        raise NotImplementedError(f"the {self.name} backend does not do 1:N search")

    def call_stats(self) -> dict:
        """Counts for the run record: calls made, cached, retried, failed."""
        return {}


def sigmoid_similarity(distance, centre: float, scale: float) -> np.ndarray:
    """A documented monotone map from a distance to a 0-100 similarity (used by the fake
    Rekognition endpoint): ``100 / (1 + exp((d - centre) / scale))``; 50 at ``d = centre``,
    strictly decreasing in ``d``."""
    d = np.asarray(distance, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 100.0 / (1.0 + np.exp((d - centre) / scale))


def similarity_to_distance(similarity: float, centre: float, scale: float) -> float:
    """Inverse of :func:`sigmoid_similarity` for 0 < s < 100."""
    return centre + scale * math.log(100.0 / similarity - 1.0)


def direction_of(metrics: dict) -> str:
    """The score direction of a run's metrics.json: the threshold's (or backend's) declared one;
    runs without one (every embedding backend) are distances."""
    th = metrics.get("threshold") or {}
    be = metrics.get("backend") or {}
    return th.get("direction") or be.get("score_direction") or DISTANCE


def words(direction: str) -> dict:
    """The phrases a report needs to describe scores and thresholds in one direction."""
    if direction == SIMILARITY:
        return {"kind": "similarity", "cmp": ">=", "at": "at a similarity >= the threshold",
                "at_or": "at a similarity at or above the threshold", "alike": "higher = more alike",
                "beyond_impostors": "the threshold sits above every impostor score", "side": "at or above",
                "beyond_set": "the threshold sits above every score it was set on",
                "sign": -1.0}
    return {"kind": "distance", "cmp": "<=", "at": "at a distance <= the threshold",
            "at_or": "at a distance at or below the threshold", "alike": "lower = more alike",
            "beyond_impostors": "the threshold sits below every impostor score", "side": "at or below",
            "beyond_set": "the threshold sits below every score it was set on",
            "sign": 1.0}


def backend_scores_text(backend: dict) -> str:
    """"distance euclidean" for an embedding backend; "scores: similarity (higher = more alike)"
    for a scoring one."""
    d = backend.get("score_direction")
    if d:
        return f"scores: {d} ({words(d)['alike']})"
    return f"distance {backend.get('distance')}"
