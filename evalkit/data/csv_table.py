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
recorded (and counted per group) downstream.
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
from evalkit.data.samples import UNLABELLED, DatasetError, Samples

__all__ = ["REQUIRED_COLUMNS", "NA_VALUES", "load_csv_dataset", "band_labels", "band_label"]

REQUIRED_COLUMNS = ("path", "subject")
#: Cell values (compared case-insensitively, after stripping whitespace) read as "no label".
NA_VALUES = frozenset({"", "na", "n/a", "nan", "null"})


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


def load_csv_dataset(
    csv_path: str | os.PathLike,
    name: str | None = None,
    attributes: list[str] | None = None,
    numeric_bands: dict[str, list[float]] | None = None,
) -> Samples:
    """Read a CSV image table into :class:`Samples`.

    Args:
        csv_path: the CSV file (UTF-8, header row first; read with the stdlib ``csv`` module).
        name: dataset name; default the CSV file's stem.
        attributes: the demographic columns to keep; default every column except ``path``,
            ``subject`` and ``id``.
        numeric_bands: column -> ascending band edges; that column's numbers become band labels
            (see :func:`band_labels`), e.g. ``{"age": [18, 30, 45, 60]}``.

    Returns:
        Samples in file order; paths absolute; ``label_sources[c]`` is
        ``"column <c> of <csv file>"`` (plus the band edges when banded).

    Raises:
        DatasetError: a missing required column (listing the columns found), an empty path or
        subject (row number), an attribute or banded column not in the header (with a
        did-you-mean hint), a non-numeric value in a banded column (row number), a row with
        the wrong number of fields, or a duplicate id.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"CSV dataset file not found: {csv_path}")
    base = csv_path.absolute().parent
    numeric_bands = dict(numeric_bands or {})

    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"{csv_path} is empty (expected a header row with path, subject, ...)") from None
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
        seen: dict[str, int] = {}
        row_no = 0
        for row in reader:
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
    sources = {}
    for c in attr_cols:
        src = f"column {c} of {csv_path.absolute()}"
        if c in bands:
            edges = ", ".join(_fmt(e) for e in bands[c][0])
            src += f", banded at edges [{edges}] (lower edge inclusive): {', '.join(bands[c][1])}"
        sources[c] = src + "; empty/NA cells are 'unlabelled'"
    return Samples(
        name=name or csv_path.stem,
        ids=np.asarray(ids, dtype=object),
        paths=np.asarray(paths, dtype=object),
        subjects=np.asarray(subjects, dtype=object),
        attributes={c: np.asarray(v, dtype=object) for c, v in values.items()},
        label_sources=sources,
    )


class CSVDataset(Dataset):
    """``kind: csv`` (conf/dataset/csv.yaml, schema evalkit.config.CSVDatasetConfig): your own
    CSV with columns path, subject and any attribute columns."""

    name = "csv"

    def load(self, cfg) -> Samples:
        return load_csv_dataset(cfg.path, name=cfg.name, attributes=list(cfg.attributes) or None,
                                numeric_bands={k: list(v) for k, v in cfg.numeric_bands.items()})

    def files(self, cfg) -> list[Path]:
        return [Path(cfg.path)]
