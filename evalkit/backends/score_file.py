"""A vendor's score file as a scoring backend (``backend=scores``): no call, no model.

The file (``evalkit.data.score_files``) holds one score per comparison of a 1:1 protocol, or one
candidate list per search of ``protocol=search``, keyed by the dataset's sample ids. Its direction
(``similarity`` or ``distance``) must be declared: evalkit cannot guess it and will not.

Pairs (or probes) of the protocol absent from the file: ``missing=error`` (default) stops with a
list of them; ``missing=failure`` counts each as a failed comparison (reason ``missing_score``),
reported in the log and the run record. Lines of the file that are not comparisons of the
protocol are ignored and counted.
With ``missing=failure`` a line whose score cell is empty (and gives no failure reason) is a failed
comparison too (``missing_score``, counted); with ``missing=error`` it is an error naming the line.

Column mapping (1:1 files only): ``sample_a_column``, ``sample_b_column``, ``score_column``,
``failure_column`` (null: none) and ``strip_extension`` read any CSV that names the two images and
holds a score, such as the BFW datatable's vendor columns (conf/backend/bfw-scores.yaml:
``p1``, ``p2``, one of ``vgg16``, ``resnet50``, ``senet50``, paths without their ``.jpg``). The
fingerprint names the file (its SHA-256) and the columns read, so two columns of one file are two
systems, never one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING, OmegaConf

from ..config import BackendConfig
from ..data.score_files import (PairColumns, ScoreFileError, check_columns, file_format, read_candidate_lists,
                                read_pair_scores)
from ..hashing import file_sha256
from .scoring_base import MISSING_SCORE, Candidates, PairScores, ScoringBackend, check_direction

log = logging.getLogger("evalkit")

MISSING_POLICIES = ("error", "failure")


@dataclass
class ScoreFileBackendConfig(BackendConfig):
    """A vendor's score file (evalkit/backends/score_file.py, conf/backend/scores.yaml)."""
    name: str = "scores"
    family: str = "scores"
    distance: str = "none"
    path: str = MISSING                      # CSV: sample_a,sample_b,score[,failure] or probe,rank,candidate,score[,failure]
    direction: str = MISSING                 # similarity (higher = more alike) | distance (lower = more alike)
    missing: str = "error"                   # error | failure: comparisons of the protocol absent from the file
    label: Optional[str] = None              # the system that produced the scores, for the report
    score_min: Optional[float] = None        # the documented score range, if any
    score_max: Optional[float] = None
    # 1:1 column mapping (defaults: evalkit's own format); e.g. the BFW datatable: p1, p2, senet50
    sample_a_column: str = "sample_a"
    sample_b_column: str = "sample_b"
    score_column: Optional[str] = None       # null: "score" (evalkit's format); required with a mapping
    failure_column: Optional[str] = "failure"   # null: the file has no failure column
    strip_extension: bool = False            # image columns hold paths: the sample id is the path minus its extension


def _score_column(score_column, sample_a_column, sample_b_column, failure_column, strip_extension) -> str:
    """The score column: as given, or ``score`` (evalkit's format) when none is given and the file
    is read in evalkit's own layout; with a column mapping it must be named."""
    if score_column not in (None, ""):
        return str(score_column)
    if (sample_a_column, sample_b_column, failure_column, bool(strip_extension)) != ("sample_a", "sample_b", "failure",
                                                                                     False):
        raise ValueError("backend.score_column is required with a column mapping: the column holding the scores "
                         "(the BFW datatable: vgg16, resnet50 or senet50; e.g. backend.score_column=senet50)")
    return "score"


class ScoreFileBackend(ScoringBackend):
    name = "scores"
    config_schema = ScoreFileBackendConfig

    def __init__(self, path: str, direction: str, missing: str = "error", label: str | None = None,
                 score_min: float | None = None, score_max: float | None = None, sample_a_column: str = "sample_a",
                 sample_b_column: str = "sample_b", score_column: str | None = None,
                 failure_column: str | None = "failure", strip_extension: bool = False, **unused):
        unused.pop("distance", None)
        if unused:
            raise TypeError(f"scores backend: unknown options {sorted(unused)}")
        self.path = Path(path).expanduser()
        self.score_direction = check_direction(direction)
        if missing not in MISSING_POLICIES:
            raise ValueError(f"scores backend: missing must be one of {MISSING_POLICIES}, got {missing!r}")
        self.missing = missing
        self.label = label
        self.score_range = (score_min, score_max) if score_min is not None or score_max is not None else None
        score_column = _score_column(score_column, sample_a_column, sample_b_column, failure_column, strip_extension)
        self.columns = PairColumns(str(sample_a_column), str(sample_b_column), str(score_column),
                                   None if failure_column in (None, "") else str(failure_column), bool(strip_extension))
        self._known: set | None = None
        self._stats: dict = {}

    @classmethod
    def validate_config(cls, backend_cfg) -> None:
        """The values a score file cannot do without (``???`` in a preset such as bfw-scores.yaml)."""
        from omegaconf import DictConfig

        from ..config import ConfigError

        if not isinstance(backend_cfg, DictConfig):
            return
        for key, what in (("path", "the score file; e.g. backend.path=vendor.csv"),
                          ("direction", "similarity or distance; e.g. backend.direction=similarity")):
            if key in backend_cfg and OmegaConf.is_missing(backend_cfg, key):
                raise ConfigError(f"backend.{key} is required: {what}")
        get = backend_cfg.get
        try:
            _score_column(get("score_column"), get("sample_a_column", "sample_a"), get("sample_b_column", "sample_b"),
                          get("failure_column", "failure"), get("strip_extension", False))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def direction_of_config(cls, backend_cfg) -> str:
        return str(backend_cfg.direction)

    def bind(self, sample_ids) -> None:
        """The dataset's sample ids: a score file's ids are checked against them."""
        self._known = set(map(str, sample_ids))

    def check_ready(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"backend.path={str(self.path)!r}: no such score file")
        if self.columns.is_default:
            file_format(self.path)
        else:   # every named column is in the header (before the dataset is read)
            check_columns(self.path, self.columns)

    def fingerprint(self) -> dict:
        what = (f"scores from {self.path.name}" if self.columns.is_default
                else f"column {self.columns.score} of {self.path.name}")
        fp = {"backend": "scores", "model": self.label or what,
              "detector": "the vendor's own", "file": self.path.name, "sha256": file_sha256(self.path),
              "direction": self.score_direction, "label": self.label, "missing": self.missing}
        if not self.columns.is_default:   # which column of the file: each is another system
            fp.update(score_column=self.columns.score, columns=self.columns.as_dict())
        return fp

    def call_stats(self) -> dict:
        return {"calls_total": 0, "cached_total": 0, **self._stats}

    def _ids(self, refs) -> set:
        return self._known if self._known is not None else {r.id for r in refs}

    def compare(self, pairs: Sequence[tuple]) -> PairScores:
        known = self._ids([r for p in pairs for r in p])
        entries = read_pair_scores(self.path, known, self.columns, empty=self.missing)
        n = len(pairs)
        scores = np.full(n, np.nan)
        pair_failure: list = [None] * n
        pair_detail: list = [""] * n
        image_failure: dict = {}
        image_detail: dict = {}
        missing, used, empty = [], set(), 0
        for i, (ra, rb) in enumerate(pairs):
            e = entries.get(frozenset((ra.id, rb.id)))
            if e is None:
                missing.append(i)
                pair_failure[i], pair_detail[i] = MISSING_SCORE, "no line in the score file"
                continue
            used.add(frozenset((ra.id, rb.id)))
            if e.failure is None:
                scores[i] = e.score
                continue
            what = f"empty score (column {self.columns.score})" if e.failure == MISSING_SCORE else e.failure
            pair_failure[i], pair_detail[i] = e.failure, f"{self.path.name}:{e.line}: {what}"
            if e.failure == MISSING_SCORE:
                empty += 1
            if e.side is not None:   # "a:"/"b:" name the image as the file's columns do
                sid = e.a if e.side == "a" else e.b
                image_failure.setdefault(sid, e.failure)
                image_detail.setdefault(sid, f"{self.path.name}:{e.line}")
        if missing:
            shown = "; ".join(f"comparison {i + 1} ({pairs[i][0].id}, {pairs[i][1].id})" for i in missing[:10])
            msg = (f"{self.path}: {len(missing)} of the protocol's {n} comparisons have no line: {shown}"
                   + (" ..." if len(missing) > 10 else ""))
            if self.missing == "error":
                raise ScoreFileError(msg + ". Add them, or pass backend.missing=failure to count them as failed "
                                           "comparisons (missing_score)")
            log.warning("%s (counted as failed comparisons: backend.missing=failure)", msg)
        extra = len(entries) - len(used)
        if extra:
            log.info("%s: %d lines are not comparisons of the protocol (ignored)", self.path, extra)
        if empty:
            log.warning("%s: %d comparisons of the protocol have an empty score (column %s), counted as failed "
                        "comparisons (missing_score; backend.missing=failure)", self.path, empty, self.columns.score)
        self._stats = {"missing_pairs": len(missing), "empty_scores": empty, "lines_not_in_protocol": int(extra),
                       "lines": len(entries)}
        return PairScores(scores=scores, pair_failure=pair_failure, pair_detail=pair_detail,
                          image_failure=image_failure, image_detail=image_detail)

    def search(self, gallery: Sequence, probes: Sequence, candidates: int) -> Candidates:
        if not self.columns.is_default:
            raise ScoreFileError(f"{self.path}: backend.sample_a_column / sample_b_column / score_column / "
                                 "failure_column / strip_extension map a 1:1 score file; a search reads a candidate "
                                 "list (probe,rank,candidate,score[,failure])")
        known = self._ids(list(gallery) + list(probes))
        lists = read_candidate_lists(self.path, known, self.score_direction)
        g_index = {r.id: i for i, r in enumerate(gallery)}
        probe_ids = {r.id for r in probes}
        P = len(probes)
        out: list = [[] for _ in range(P)]
        p_fail: list = [None] * P
        p_detail: list = [""] * P
        missing = []
        for j, r in enumerate(probes):
            e = lists.get(r.id)
            if e is None:
                missing.append(j)
                p_fail[j], p_detail[j] = MISSING_SCORE, "no line in the candidate-list file"
                continue
            if e.failure is not None:
                p_fail[j], p_detail[j] = e.failure, f"{self.path.name}:{e.line}: {e.failure}"
                continue
            for cand, score, line in e.candidates:
                if cand not in g_index:
                    raise ScoreFileError(f"{self.path}:{line}: candidate {cand} is not an image of this run's gallery "
                                         f"(the search split of protocol=search, seed and sizes as configured)")
                out[j].append((g_index[cand], score))
        if missing:
            shown = "; ".join(probes[j].id for j in missing[:10])
            msg = f"{self.path}: {len(missing)} of the {P} probes have no line: {shown}" + (" ..." if len(missing) > 10 else "")
            if self.missing == "error":
                raise ScoreFileError(msg + ". Add them (a probe with no candidate: one line with only the probe), or "
                                           "pass backend.missing=failure")
            log.warning("%s (counted as failed searches: backend.missing=failure)", msg)
        extra = sorted(set(lists) - probe_ids)
        if extra:
            log.info("%s: %d probes are not probes of this run's split (ignored)", self.path, len(extra))
        self._stats = {"missing_probes": len(missing), "probes_not_in_split": len(extra), "probes": len(lists)}
        return Candidates(lists=out, probe_failure=p_fail, probe_detail=p_detail, gallery_failure=[None] * len(gallery),
                          gallery_detail=[""] * len(gallery))
