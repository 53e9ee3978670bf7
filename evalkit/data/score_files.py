"""Vendors' score files: 1:1 comparison scores and NIST-style 1:N candidate lists.

An auditor who received a vendor's scores runs every evalkit analysis on them with the dataset's
own labels (``backend=scores``). Two CSV formats, told apart by their header:

1:1 comparisons::

    sample_a,sample_b,score[,failure]
    Aaron_Peirsol/0001,Aaron_Peirsol/0002,97.3
    Abdullah_Gul/0001,Abdullah_Gul/0013,,no_face

  one line per comparison; the pair is unordered ((a, b) and (b, a) are the same comparison). An
  empty score needs a failure reason; ``failure`` is one of ``FAILURE_REASONS``, optionally
  prefixed ``a:`` or ``b:`` to name the image that failed (``b:no_face``).

1:N candidate lists (NIST FRVT/FRTE's candidate list: rank, candidate, score per search)::

    probe,rank,candidate,score[,failure]
    George_W_Bush/0007,1,Colin_Powell/0001,88.1
    George_W_Bush/0007,2,Tony_Blair/0001,71.0
    Kofi_Annan/0003,,,,no_face

  candidates are gallery sample ids, ranks 1, 2, ... per probe (best first); a probe whose search
  failed has one line with empty rank, candidate and score and a failure reason; a probe that
  returned no candidate has one line with only the probe.

Other 1:1 layouts (:class:`PairColumns`): any CSV whose columns name the two images and hold a
score, e.g. the BFW datatable (``p1,p2,...,senet50,...``: image paths and the cosine similarities
of vendor models), read with ``PairColumns(sample_a="p1", sample_b="p2", score="senet50",
failure=None, strip_extension=True)`` (``backend=bfw-scores``). Every other column is ignored;
a named column the header lacks is an error naming the columns it has.

Every problem is a ``ScoreFileError`` naming the file and line: unknown sample ids, duplicate
comparisons or ranks, non-numeric or non-finite scores, ranks out of order or contradicting the
scores, unknown failure reasons, an empty score without a failure reason (unless the backend
counts such comparisons as failed: ``empty="failure"``, reason ``missing_score``). Sample ids
are the dataset's (``evalkit data info`` lists them; LFW's look like ``Aaron_Peirsol/0001``).
"""

from __future__ import annotations

import csv
import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.scoring_base import FAILURE_REASONS, MISSING_SCORE, SIMILARITY, check_direction

PAIR_COLUMNS = ("sample_a", "sample_b", "score")
LIST_COLUMNS = ("probe", "rank", "candidate", "score")


class ScoreFileError(ValueError):
    """A score file evalkit cannot use; the message names the file and line."""


@dataclass(frozen=True)
class PairColumns:
    """Which columns of a 1:1 score file name the two images, hold the score and (optionally) a
    failure reason; ``strip_extension``: the image columns hold file paths, and a sample id is the
    path without its extension (BFW: ``asian_females/n000009/0010_01.jpg`` is the sample
    ``asian_females/n000009/0010_01``). The defaults are evalkit's own format."""

    sample_a: str = "sample_a"
    sample_b: str = "sample_b"
    score: str = "score"
    failure: str | None = "failure"       # None: the file has no failure column
    strip_extension: bool = False

    @property
    def is_default(self) -> bool:
        return self == PairColumns()

    def sample_id(self, value: str) -> str:
        return os.path.splitext(value)[0] if self.strip_extension and value else value

    def as_dict(self) -> dict:
        return {"sample_a": self.sample_a, "sample_b": self.sample_b, "score": self.score, "failure": self.failure,
                "strip_extension": self.strip_extension}


#: the backend option that names each column (for the messages)
COLUMN_OPTIONS = {"sample_a": "backend.sample_a_column", "sample_b": "backend.sample_b_column",
                  "score": "backend.score_column"}


def check_columns(path: str | Path, columns: PairColumns) -> list[str]:
    """The header, after checking that it has every column ``columns`` names (the failure column
    only where the mapping is evalkit's own format, where it is optional).

    Raises:
        ScoreFileError: ``<file>:1`` naming the missing column, the option that names it, the
        header's columns and the closest one.
    """
    path = Path(path)
    header = _header(path)
    for key, option in COLUMN_OPTIONS.items():
        name = getattr(columns, key)
        if name not in header:
            hint = difflib.get_close_matches(name, header, n=1)
            raise ScoreFileError(f"{path}:1: no column {name!r} ({option}); the header has {header}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                 + f". Set {option} to the column that holds it")
    if columns.failure is not None and not columns.is_default and columns.failure not in header:
        raise ScoreFileError(f"{path}:1: no column {columns.failure!r} (backend.failure_column); the header has "
                             f"{header}. Set backend.failure_column to it, or to null when the file has none")
    if len({columns.sample_a, columns.sample_b, columns.score}) < 3:
        raise ScoreFileError(f"{path}:1: the two image columns and the score column must differ "
                             f"({columns.sample_a}, {columns.sample_b}, {columns.score})")
    return header


@dataclass(slots=True)
class PairEntry:
    score: float | None
    failure: str | None
    side: str | None          # "a" | "b" | None: which image the failure is about (as written)
    line: int
    a: str
    b: str


@dataclass
class CandidateEntry:
    candidates: list = field(default_factory=list)    # [(candidate id, score, line)], rank order
    failure: str | None = None
    line: int = 0


def file_format(path: str | Path) -> str:
    """"pairs" or "candidates", from the header; ScoreFileError otherwise."""
    header = _header(Path(path))
    cols = set(header)
    if set(PAIR_COLUMNS) <= cols:
        return "pairs"
    if set(LIST_COLUMNS) <= cols:
        return "candidates"
    raise ScoreFileError(f"{path}:1: header {header} is neither a 1:1 score file ({', '.join(PAIR_COLUMNS)}"
                         f"[, failure]) nor a 1:N candidate list ({', '.join(LIST_COLUMNS)}[, failure])")


def _header(path: Path) -> list[str]:
    if not path.is_file():
        raise ScoreFileError(f"score file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        row = next(csv.reader(fh), None)
    if not row:
        raise ScoreFileError(f"{path}:1: the file is empty (expected a header line)")
    return [c.strip() for c in row]


def _rows(path: Path):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        for row in reader:
            if None in row:
                raise ScoreFileError(f"{path}:{reader.line_num}: more fields than the header's {len(reader.fieldnames)}")
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def _score(text: str, path: Path, line: int, column: str | None = None) -> float:
    fix = (f" (column {column}); correct it, or empty the cell (with backend.missing=failure an empty score is "
           "a failed comparison, missing_score)" if column else "")
    try:
        v = float(text)
    except ValueError:
        raise ScoreFileError(f"{path}:{line}: score {text!r} is not a number{fix}") from None
    if not math.isfinite(v):
        raise ScoreFileError(f"{path}:{line}: score {text!r} is not finite{fix}")
    return v


def _failure(text: str, path: Path, line: int) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    side = None
    if text[:2] in ("a:", "b:"):
        side, text = text[0], text[2:]
    if text not in FAILURE_REASONS:
        import difflib

        hint = difflib.get_close_matches(text, FAILURE_REASONS, n=1)
        raise ScoreFileError(f"{path}:{line}: unknown failure reason {text!r}; use one of {list(FAILURE_REASONS)}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return text, side


def _known(sid: str, known, path: Path, line: int, column: str) -> str:
    if not sid:
        raise ScoreFileError(f"{path}:{line}: empty {column}")
    if sid not in known:
        import difflib

        hint = difflib.get_close_matches(sid, list(known)[:200000], n=1)
        raise ScoreFileError(f"{path}:{line}: unknown sample id {sid!r} in column {column}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + "; ids are the dataset's (e.g. LFW: Name/0001)")
    return sid


def read_pair_scores(path: str | Path, known_ids, columns: PairColumns | None = None,
                     empty: str = "error") -> dict[frozenset, PairEntry]:
    """{frozenset({a, b}): PairEntry} from a 1:1 score file; every id must be in ``known_ids``.

    ``columns``: which columns to read (default: evalkit's ``sample_a,sample_b,score[,failure]``).
    ``empty``: an empty score without a failure reason is an error naming the line (``"error"``)
    or a failed comparison with reason ``missing_score`` (``"failure"``; ``backend.missing=failure``).
    """
    path = Path(path)
    cols = columns or PairColumns()
    if cols.is_default:
        if file_format(path) != "pairs":
            raise ScoreFileError(f"{path}:1: this is a 1:N candidate list; a 1:1 protocol needs columns "
                                 f"{', '.join(PAIR_COLUMNS)}[, failure]")
    else:
        check_columns(path, cols)
    if empty not in ("error", "failure"):
        raise ValueError(f"empty must be 'error' or 'failure', got {empty!r}")
    known = known_ids if isinstance(known_ids, (set, frozenset, dict)) else set(known_ids)
    out: dict[frozenset, PairEntry] = {}
    for line, row in _rows(path):
        a = _known(cols.sample_id(row[cols.sample_a]), known, path, line, cols.sample_a)
        b = _known(cols.sample_id(row[cols.sample_b]), known, path, line, cols.sample_b)
        if a == b:
            raise ScoreFileError(f"{path}:{line}: {cols.sample_a} and {cols.sample_b} are the same image ({a})")
        failure, side = _failure(row.get(cols.failure, "") if cols.failure else "", path, line)
        text = row[cols.score]
        score = None if text == "" else _score(text, path, line, None if cols.is_default else cols.score)
        if score is None and failure is None:
            if empty == "failure":
                failure = MISSING_SCORE
            else:
                reason = (f" or a failure reason in column {cols.failure} ({', '.join(FAILURE_REASONS)})"
                          if cols.failure else "")
                raise ScoreFileError(f"{path}:{line}: empty score and no failure reason (column {cols.score}); "
                                     f"fill in the score{reason}, or pass backend.missing=failure to count "
                                     "comparisons without a score as failed (missing_score)")
        if score is not None and failure is not None:
            raise ScoreFileError(f"{path}:{line}: both a score and a failure reason ({failure}); give one")
        key = frozenset((a, b))
        if key in out:
            raise ScoreFileError(f"{path}:{line}: duplicate comparison ({a}, {b}); first given on line {out[key].line}")
        out[key] = PairEntry(score, failure, side, line, a, b)
    return out


def read_candidate_lists(path: str | Path, known_ids, direction: str) -> dict[str, CandidateEntry]:
    """{probe id: CandidateEntry} from a 1:N candidate-list file, ranks checked against scores."""
    path = Path(path)
    check_direction(direction)
    if file_format(path) != "candidates":
        raise ScoreFileError(f"{path}:1: this is a 1:1 score file; a search protocol needs columns "
                             f"{', '.join(LIST_COLUMNS)}[, failure]")
    known = known_ids if isinstance(known_ids, (set, frozenset, dict)) else set(known_ids)
    out: dict[str, CandidateEntry] = {}
    last_rank: dict[str, int] = {}
    for line, row in _rows(path):
        probe = _known(row["probe"], known, path, line, "probe")
        failure, _ = _failure(row.get("failure", ""), path, line)
        e = out.get(probe)
        if not row["rank"] and not row["candidate"] and not row["score"]:
            if e is not None:
                raise ScoreFileError(f"{path}:{line}: probe {probe} already has lines (first on line {e.line}); a "
                                     "probe with no candidate (or a failed search) has exactly one line")
            out[probe] = CandidateEntry([], failure, line)
            last_rank[probe] = -1
            continue
        if failure is not None:
            raise ScoreFileError(f"{path}:{line}: a failure reason on a candidate line; a failed search has one line "
                                 "with empty rank, candidate and score")
        if e is not None and last_rank.get(probe) == -1:
            raise ScoreFileError(f"{path}:{line}: probe {probe} was given as having no candidates on line {e.line}")
        try:
            rank = int(row["rank"])
        except ValueError:
            raise ScoreFileError(f"{path}:{line}: rank {row['rank']!r} is not an integer") from None
        cand = _known(row["candidate"], known, path, line, "candidate")
        score = _score(row["score"], path, line)
        if e is None:
            e = out[probe] = CandidateEntry([], None, line)
        expected = len(e.candidates) + 1
        if rank != expected:
            raise ScoreFileError(f"{path}:{line}: probe {probe}: rank {rank} where rank {expected} was expected "
                                 "(ranks are 1, 2, ... in order, one line each)")
        if any(c == cand for c, _, _ in e.candidates):
            raise ScoreFileError(f"{path}:{line}: probe {probe}: candidate {cand} listed twice")
        if e.candidates:
            prev = e.candidates[-1][1]
            worse = score > prev if direction == SIMILARITY else score < prev
            if worse:
                raise ScoreFileError(f"{path}:{line}: probe {probe}: rank {rank} has a better score ({score:g}) than "
                                     f"rank {rank - 1} ({prev:g}) for a {direction}")
        e.candidates.append((cand, score, line))
        last_rank[probe] = rank
    return out
