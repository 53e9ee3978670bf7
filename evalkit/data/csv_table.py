"""A dataset described by a CSV file: one row per image, demographic labels as columns.

Required columns: ``path`` (relative to the CSV's folder, or absolute) and ``subject``. Optional
``id`` (default: the path as written in the CSV). Every other column, or only the ones listed
in ``attributes``, is a demographic attribute. Empty or NA cells are ``unlabelled`` (explicit,
never dropped). Numeric columns such as age can be cut into bands.

Example::

    path,subject,sex,ethnicity,age
    img/alice_1.jpg,alice,female,,34
    img/bob_1.jpg,bob,male,latino,NA

A row whose image file does not exist is kept: reading it fails later and that failure is
recorded (and counted per group) downstream. Every path must resolve (symlinks followed) inside
the CSV's folder, and one that exists must be a regular file: anything else is a DatasetError
naming the row, before any work, unless ``allow_outside_root`` gives a reason
(``dataset.allow_outside_root``). The file is read in ``encoding`` (default UTF-8, a BOM allowed);
bytes that do not decode are a DatasetError naming the line and the ``dataset.encoding`` option.

Numeric columns: a column named in ``numeric_bands`` is cut at its edges. Otherwise the default
rule (:data:`DEFAULT_AGE_BANDS`): a numeric ``age`` column is cut into the bands <18, 18-29,
30-44, 45-59, >=60 (stated in its label source); any other column whose labels are all numbers
with more than :data:`MAX_NUMERIC_GROUPS` distinct values is refused, with the exact override
to type (quartile edges of the column), since each value would be its own group.
"""

from __future__ import annotations

import csv
import difflib
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from evalkit.data.base import Dataset
from evalkit.data.samples import UNLABELLED, DatasetError, Samples, confine_paths

__all__ = ["REQUIRED_COLUMNS", "NA_VALUES", "load_csv_dataset", "band_labels", "band_label",
           "DEFAULT_AGE_BANDS", "MAX_NUMERIC_GROUPS"]

REQUIRED_COLUMNS = ("path", "subject")
#: Cell values (compared case-insensitively, after stripping whitespace) read as "no label".
NA_VALUES = frozenset({"", "na", "n/a", "nan", "null"})
#: The default bands of a numeric ``age`` column: <18, 18-29, 30-44, 45-59, >=60 (minors apart,
#: then roughly 15-year adult bands, as in the README's example). Override with
#: ``+dataset.numeric_bands.age=[...]``.
DEFAULT_AGE_BANDS = (18, 30, 45, 60)
#: A numeric column with more distinct values than this is refused unless banded.
MAX_NUMERIC_GROUPS = 12


def _fmt(edge: float) -> str:
    return str(int(edge)) if float(edge).is_integer() else repr(float(edge))


def band_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bands cut by ascending ``edges`` (lower edge inclusive).

    Integer edges ``[18, 30, 45, 60]`` give ``["<18", "18-29", "30-44", "45-59", ">=60"]``
    (whole-number bands, as ages are usually given). If any edge is not an integer the inner
    bands are written as half-open intervals, e.g. ``"[18.5,30)"``.
    """
    edges = [float(e) for e in edges]
    integral = all(e.is_integer() for e in edges)
    labels = [f"<{_fmt(edges[0])}"]
    for lo, hi in zip(edges[:-1], edges[1:]):
        if integral:
            labels.append(f"{_fmt(lo)}-{_fmt(hi - 1)}")
        else:
            labels.append(f"[{_fmt(lo)},{_fmt(hi)})")
    labels.append(f">={_fmt(edges[-1])}")
    return labels


def band_label(value: float, edges: Sequence[float], labels: Sequence[str] | None = None) -> str:
    """The band of ``value``: band k holds ``edges[k-1] <= value < edges[k]``."""
    labels = labels if labels is not None else band_labels(edges)
    k = int(np.searchsorted(np.asarray(edges, dtype=float), value, side="right"))
    return labels[k]


def _check_edges(column: str, edges: Sequence[float]) -> list[float]:
    try:
        out = [float(e) for e in edges]
    except (TypeError, ValueError):
        raise DatasetError(f"numeric_bands[{column!r}] must be a list of numbers, got {edges!r}") from None
    if not out:
        raise DatasetError(f"numeric_bands[{column!r}] needs at least one band edge")
    if any(not math.isfinite(e) for e in out) or any(b <= a for a, b in zip(out, out[1:])):
        raise DatasetError(f"numeric_bands[{column!r}] must be finite and strictly ascending, got {edges!r}")
    return out


def _unknown_column(what: str, name: str, columns: Sequence[str], csv_path: Path) -> DatasetError:
    hint = difflib.get_close_matches(name, list(columns), n=1)
    extra = f"; did you mean {hint[0]!r}?" if hint else ""
    return DatasetError(f"{what} {name!r} is not a column of {csv_path} (columns: {', '.join(columns)}){extra}")


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _suggest_edges(numbers: list[float]) -> list[float]:
    """Quartile edges of a column, rounded to whole numbers where they are whole-ish."""
    q = np.quantile(np.asarray(numbers, dtype=float), [0.25, 0.5, 0.75])
    edges = sorted({float(round(v)) if abs(v) >= 10 else float(round(v, 2)) for v in q})
    return edges or [float(np.median(numbers))]


def _read_text(csv_path: Path, encoding: str) -> str:
    """The CSV's text in ``encoding``; undecodable bytes name the line and the option to set."""
    raw = csv_path.read_bytes()
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return raw.decode(enc)
    except LookupError:
        raise DatasetError(f"dataset.encoding={encoding!r} is not an encoding Python knows "
                           "(e.g. utf-8, latin-1, cp1252, utf-16)") from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start:exc.end].hex(" ")
        raise DatasetError(
            f"{csv_path}, line {line}, column {col}: byte(s) {bad} are not valid {encoding}. Save the file as "
            f"UTF-8, or give its encoding: dataset.encoding=latin-1 (or cp1252, utf-16, ...)") from None


def load_csv_dataset(
    csv_path: str | os.PathLike,
    name: str | None = None,
    attributes: list[str] | None = None,
    numeric_bands: dict[str, list[float]] | None = None,
    encoding: str = "utf-8",
    allow_outside_root: str | None = None,
    per_subject: list[str] | None = None,
) -> Samples:
    """Read a CSV image table into :class:`Samples`.

    Args:
        csv_path: the CSV file (UTF-8, header row first; read with the stdlib ``csv`` module).
        name: dataset name; default the CSV file's stem.
        attributes: the demographic columns to keep; default every column except ``path``,
            ``subject`` and ``id``.
        numeric_bands: column -> ascending band edges; that column's numbers become band labels
            (see :func:`band_labels`), e.g. ``{"age": [18, 30, 45, 60]}``. A numeric ``age``
            column not named here gets :data:`DEFAULT_AGE_BANDS`.
        encoding: the file's text encoding (default UTF-8; a BOM is skipped).
        allow_outside_root: a reason to let paths resolve outside the CSV's folder (None: refused).
        per_subject: attribute columns that describe the subject, not the image (sex, race):
            every image of a subject carries the one value its rows give (empty cells filled),
            and a subject whose rows disagree is ``conflict``. Other columns are per image (age
            at capture): each row keeps its own value.

    Returns:
        Samples in file order; paths absolute; ``label_sources[c]`` is
        ``"column <c> of <csv file>"`` (plus the band edges when banded).

    Raises:
        DatasetError: a missing required column (listing the columns found), an empty path or
        subject (row number), an attribute or banded column not in the header (with a
        did-you-mean hint), a non-numeric value in a banded column (row number), a row with
        the wrong number of fields, or a duplicate id; bytes not in ``encoding`` (line); a path
        outside the CSV's folder or not a regular file (row); an unbanded numeric column with
        more than MAX_NUMERIC_GROUPS values (the override to type).
    """
    import io

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"CSV dataset file not found: {csv_path}")
    base = csv_path.absolute().parent
    numeric_bands = dict(numeric_bands or {})
    text = _read_text(csv_path, encoding)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DatasetError(f"{csv_path}, line {line}: a NUL byte; this is not a text CSV (or it is UTF-16: "
                           "dataset.encoding=utf-16)")

    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"{csv_path} is empty (expected a header row with path, subject, ...)") from None
        except csv.Error as exc:
            raise DatasetError(f"{csv_path}, line {reader.line_num}: not a readable CSV header: {exc}") from None
        columns = [c.strip() for c in header]
        dup = sorted({c for c in columns if columns.count(c) > 1})
        if dup:
            raise DatasetError(f"{csv_path}: duplicate column name(s) {dup}")
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DatasetError(
                f"{csv_path} lacks required column(s) {missing}; columns found: {columns}. "
                "A dataset CSV needs 'path' and 'subject' (and optionally 'id')."
            )
        reserved = {"path", "subject", "id"}
        if attributes is None:
            attr_cols = [c for c in columns if c not in reserved]
        else:
            attr_cols = list(dict.fromkeys(attributes))
            for c in attr_cols:
                if c in reserved:
                    raise DatasetError(f"{c!r} is a reserved column of {csv_path}, not a demographic attribute")
                if c not in columns:
                    raise _unknown_column("attribute", c, columns, csv_path)
        bands: dict[str, tuple[list[float], list[str]]] = {}
        for c, edges in numeric_bands.items():
            if c not in columns:
                raise _unknown_column("banded column", c, columns, csv_path)
            if c not in attr_cols:
                raise DatasetError(f"banded column {c!r} is not among the attributes {attr_cols}")
            e = _check_edges(c, edges)
            bands[c] = (e, band_labels(e))

        col = {c: i for i, c in enumerate(columns)}
        ids, paths, subjects = [], [], []
        values: dict[str, list[str]] = {c: [] for c in attr_cols}
        wheres: list[str] = []
        seen: dict[str, int] = {}
        row_no = 0
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DatasetError(f"{csv_path}, line {reader.line_num}: not a readable CSV row: {exc}") from None
            if not any(cell.strip() for cell in row):
                continue  # blank line
            row_no += 1
            where = f"{csv_path}, row {row_no} (line {reader.line_num})"
            if len(row) != len(columns):
                raise DatasetError(f"{where}: {len(row)} fields, the header has {len(columns)}")
            raw_path = row[col["path"]].strip()
            subject = row[col["subject"]].strip()
            if not raw_path:
                raise DatasetError(f"{where}: empty 'path'")
            if not subject:
                raise DatasetError(f"{where}: empty 'subject'")
            sid = row[col["id"]].strip() if "id" in col else raw_path
            if not sid:
                raise DatasetError(f"{where}: empty 'id'")
            if sid in seen:
                raise DatasetError(f"{where}: id {sid!r} already used on row {seen[sid]}")
            seen[sid] = row_no
            p = Path(raw_path)
            ids.append(sid)
            paths.append(os.path.normpath(str(p if p.is_absolute() else base / p)))
            wheres.append(where)
            subjects.append(subject)
            for c in attr_cols:
                cell = row[col[c]].strip()
                if cell.lower() in NA_VALUES:
                    values[c].append(UNLABELLED)
                elif c in bands:
                    try:
                        x = float(cell)
                    except ValueError:
                        raise DatasetError(f"{where}: column {c!r} must be a number, got {cell!r}") from None
                    if math.isnan(x):
                        values[c].append(UNLABELLED)
                    else:
                        values[c].append(band_label(x, *bands[c]))
                else:
                    values[c].append(cell)

    if not ids:
        raise DatasetError(f"{csv_path} has a header but no rows")
    confine_paths(paths, base, allow_outside_root, where=lambda i: wheres[i])
    default_banded = _numeric_columns(csv_path, values, bands)
    subject_cols = list(dict.fromkeys(per_subject or []))
    for c in subject_cols:
        if c not in attr_cols:
            raise _unknown_column("per-subject attribute", c, attr_cols, csv_path)
    sources = {}
    for c in attr_cols:
        src = f"column {c} of {csv_path.absolute()}"
        if c in bands:
            edges = ", ".join(_fmt(e) for e in bands[c][0])
            src += f", banded at edges [{edges}] (lower edge inclusive): {', '.join(bands[c][1])}"
            if c in default_banded:
                src += (" (evalkit's default age bands, as no dataset.numeric_bands was given for it; "
                        f"override: +dataset.numeric_bands.{c}=[...])")
        src += "; empty/NA cells are 'unlabelled'"
        if c in subject_cols:   # evalkit.data.adapters.per_subject: one value per subject, disagreement -> conflict
            from evalkit.data.adapters import level_note
            from evalkit.data.adapters import per_subject as _per_subject

            resolved, conflicts = _per_subject(np.asarray(subjects, dtype=str), np.asarray(values[c], dtype=str))
            values[c] = resolved.tolist()
            src += "; " + level_note("subject", conflicts)
        else:
            src += "; per image"
        sources[c] = src
    return Samples(
        banded=tuple(c for c in attr_cols if c in bands),
        name=name or csv_path.stem,
        ids=np.asarray(ids, dtype=object),
        paths=np.asarray(paths, dtype=object),
        subjects=np.asarray(subjects, dtype=object),
        attributes={c: np.asarray(v, dtype=object) for c, v in values.items()},
        label_sources=sources,
    )


def _numeric_columns(csv_path: Path, values: dict[str, list[str]],
                     bands: dict[str, tuple[list[float], list[str]]]) -> set[str]:
    """Apply the default rule to unbanded numeric columns, in place: a numeric ``age`` column is
    cut at DEFAULT_AGE_BANDS (the names of the columns so banded are returned); any other column
    whose labels are all numbers, with more than MAX_NUMERIC_GROUPS distinct values, is refused."""
    banded = set()
    for c, vals in values.items():
        if c in bands:
            continue
        labelled = [v for v in vals if v != UNLABELLED]
        distinct = set(labelled)
        if not labelled or not all(_is_number(v) for v in distinct):
            continue
        if c.strip().lower() == "age":
            edges = [float(e) for e in DEFAULT_AGE_BANDS]
            bands[c] = (edges, band_labels(edges))
            values[c] = [v if v == UNLABELLED else band_label(float(v), *bands[c]) for v in vals]
            banded.add(c)
        elif len(distinct) > MAX_NUMERIC_GROUPS:
            edges = ",".join(_fmt(e) for e in _suggest_edges([float(v) for v in labelled]))
            raise DatasetError(
                f"{csv_path}: column {c!r} holds numbers with {len(distinct)} distinct values, so each value would "
                f"be its own group. Band it, e.g. at its quartiles: +dataset.numeric_bands.{c}=[{edges}] ; or leave it "
                f"out: dataset.attributes=[{','.join(a for a in values if a != c)}]")
    return banded


class CSVDataset(Dataset):
    """``kind: csv`` (conf/dataset/csv.yaml, schema evalkit.config.CSVDatasetConfig): your own
    CSV with columns path, subject and any attribute columns."""

    name = "csv"

    def load(self, cfg) -> Samples:
        return load_csv_dataset(cfg.path, name=cfg.name, attributes=list(cfg.attributes) or None,
                                numeric_bands={k: list(v) for k, v in cfg.numeric_bands.items()},
                                encoding=cfg.get("encoding") or "utf-8",
                                allow_outside_root=cfg.get("allow_outside_root"),
                                per_subject=list(cfg.get("per_subject") or []))

    def files(self, cfg) -> list[Path]:
        return [Path(cfg.path)]
