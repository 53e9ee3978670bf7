"""What every named dataset adapter shares: its description (where the data is requested, its
terms, the folder layout it expects), the small parsing helpers that make every malformed line a
clear error naming the file and the line, and the per-image / per-subject label rule.

Each adapter is one module under ``evalkit/data/`` (``rfw.py``, ``bfw.py``, ``vggface2.py``,
``celeba.py``, ``adience.py``, ``utkface.py``, ``fairface.py``, ``diveface.py``, ``morph.py``)
exposing:

- ``INFO``: a :class:`DatasetInfo`;
- a config dataclass (``<Name>DatasetConfig``, a :class:`evalkit.config.DatasetConfig`), whose
  ``kind`` is the adapter's name, stored in Hydra's ConfigStore as ``dataset/base_<name>``;
- ``load(cfg) -> Samples``: the samples table, labels only from the dataset's own annotation
  files, ``label_sources[attribute]`` saying which file, which column, which rule;
- ``inspect(root) -> list[str]``: what was found at the configured root (for ``evalkit data info``);
- optionally ``official_pairs(cfg, samples, protocol_cfg) -> Pairs``: the dataset's own protocol.

Labels are either *per subject* (a subject's sex or race: every image of the subject carries the
subject's label; images that disagree make the subject ``conflict``) or *per image* (age at
capture: each image keeps its own). Every ``label_sources`` entry says which.
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from evalkit.data.samples import CONFLICT, SPECIAL_LABELS, UNLABELLED, DatasetError

__all__ = ["DatasetInfo", "ADAPTERS", "adapter", "adapter_names", "info_text", "read_lines", "where",
           "map_code", "per_subject", "level_note", "found_files", "resolve_root", "has_identities",
           "validate_dataset_protocol"]

#: adapter name -> module (imported only when that dataset is used)
ADAPTERS = {
    "rfw": "evalkit.data.rfw",
    "bfw": "evalkit.data.bfw",
    "vggface2": "evalkit.data.vggface2",
    "celeba": "evalkit.data.celeba",
    "adience": "evalkit.data.adience",
    "utkface": "evalkit.data.utkface",
    "fairface": "evalkit.data.fairface",
    "diveface": "evalkit.data.diveface",
    "morph": "evalkit.data.morph",
}


@dataclass(frozen=True)
class DatasetInfo:
    """What ``evalkit data info NAME`` prints before looking at the local copy.

    Attributes:
        name: adapter name (``dataset=<name>``).
        title: the dataset's full name and its reference.
        request: where and how the data is obtained (evalkit never downloads it).
        terms: the licence / terms of use, as the dataset states them.
        layout: the folder tree evalkit expects under the root.
        labels: which annotation files give which attribute (and per image or per subject).
        protocols: which protocol evalkit runs on it.
        documented_from: ``"official"`` (written from the dataset's own documentation) or
            ``"secondary"`` (from papers and public code that read it), with the sources.
        identities: False when the dataset has no identities (only enrolment can be measured).
    """

    name: str
    title: str
    request: str
    terms: str
    layout: str
    labels: str
    protocols: str
    documented_from: str
    identities: bool = True
    default_root: str = ""


def adapter(name: str):
    """The adapter module of dataset ``name`` (a did-you-mean on an unknown name)."""
    if name not in ADAPTERS:
        hint = difflib.get_close_matches(name, list(ADAPTERS) + ["lfw", "csv"], n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        raise DatasetError(f"unknown dataset {name!r}.{extra} Known: lfw, csv, {', '.join(ADAPTERS)}")
    return importlib.import_module(ADAPTERS[name])


def adapter_names() -> list[str]:
    return list(ADAPTERS)


def has_identities(kind: str) -> bool:
    """False for datasets whose images carry no identity (UTKFace, FairFace): the registered
    adapter class says so with ``identities = False``."""
    from evalkit.registry import DATASETS

    try:
        return bool(getattr(DATASETS.get(kind), "identities", True))
    except Exception:   # an unknown kind is reported by the registry check
        return True




def resolve_root(root: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(root))).absolute()


def info_text(name: str, root: str | os.PathLike | None) -> str:
    """The text of ``evalkit data info NAME``: request, terms, layout, labels, protocols, and what
    was found at ``root`` (the adapter's ``inspect``)."""
    mod = adapter(name)
    i: DatasetInfo = mod.INFO
    lines = [f"{i.name}: {i.title}", "", f"Where to request it: {i.request}", f"Terms: {i.terms}",
             f"Documented from: {i.documented_from}", "", "Layout expected under the root:"]
    lines += ["  " + ln for ln in i.layout.strip("\n").splitlines()]
    lines += ["", f"Labels: {i.labels}", f"Protocols evalkit runs: {i.protocols}"]
    if not i.identities:
        lines.append("No identities: only failure to detect / enrol per group can be measured "
                     "(protocol=enrolment).")
    lines += ["", f"Configured root: {root}"]
    if root is None or not Path(root).is_dir():
        lines.append(f"  not found. Put the data there (see the layout above), or pass "
                     f"dataset.root=... (evalkit data info {name} --root DIR).")
    else:
        lines += ["  " + ln for ln in mod.inspect(resolve_root(root))]
    return "\n".join(lines)


def configured_dir(root: Path, configured: str | None, key: str = "dataset.images_dir") -> Path | None:
    """The folder a user named in ``key`` (relative to ``root`` unless absolute), or None when
    they named none; a name that is not a folder is a DatasetError saying so."""
    if not configured:
        return None
    p = Path(configured)
    p = p if p.is_absolute() else root / p
    if not p.is_dir():
        raise DatasetError(f"{key}={configured!r}: no such folder ({p})")
    return p


def found_files(root: Path, names: Iterable[str]) -> list[str]:
    """'present'/'MISSING' lines for the given relative paths."""
    out = []
    for n in names:
        p = root / n
        if p.is_file():
            out.append(f"{n}: present ({p.stat().st_size:,} bytes)")
        elif p.is_dir():
            out.append(f"{n}/: present ({sum(1 for _ in os.scandir(p)):,} entries)")
        else:
            out.append(f"{n}: MISSING")
    return out


# -- parsing helpers ---------------------------------------------------------------------------


def where(path: Path, lineno: int) -> str:
    return f"{path}, line {lineno}"


def csv_rows(path: Path, columns: Iterable[str], *, skipinitialspace: bool = False, field_hint: str = ""):
    """The data rows of a label CSV with a header, as ``(lineno, get)`` where ``get(column)`` is
    that row's stripped cell: the header must hold ``columns`` (else an error naming what it has),
    blank rows are skipped, a row with another number of fields and any csv parse error stop with
    the file and line (``field_hint`` is added to the field-count message)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, skipinitialspace=skipinitialspace)
        try:
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DatasetError(f"{where(path, 1)}: lacks column(s) {missing}; columns found: {header}")
            col = {c: i for i, c in enumerate(header)}
            for row in reader:
                lineno = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"{where(path, lineno)}: {len(row)} fields, the header has {len(header)}"
                                       + (f" {field_hint}" if field_hint else ""))
                yield lineno, (lambda c, row=row: row[col[c]].strip())
        except csv.Error as e:
            raise DatasetError(f"{where(path, reader.line_num)}: {e}") from None


def read_lines(path: str | os.PathLike, what: str = "annotation file") -> list[tuple[int, str]]:
    """(1-based line number, line without its end-of-line) of every non-blank line of a UTF-8
    text file (a BOM and CRLF line ends are accepted; leading/trailing spaces are kept).

    Raises:
        DatasetError: missing file (naming it and what it is) or not UTF-8 (naming the byte).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DatasetError(f"{where(path, line)}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return [(i, ln.rstrip("\r")) for i, ln in enumerate(text.split("\n"), start=1) if ln.strip()]


def map_code(path: Path, lineno: int, column: str, value: str, mapping: Mapping[str, str]) -> str:
    """The label of a group code (``F`` -> ``female``); an unknown code is a DatasetError naming
    the file, line, column and the known codes."""
    if value in mapping:
        return mapping[value]
    known = ", ".join(repr(k) for k in mapping)
    raise DatasetError(f"{where(path, lineno)}: unknown {column} code {value!r} (known: {known})")


def per_subject(subjects: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-subject labels from per-image annotations.

    Rule: a subject's label is the one value its images agree on, ignoring ``unlabelled`` images;
    images that give different values make the subject ``conflict`` (on every image: never
    resolved by guessing); a subject without any labelled image stays ``unlabelled``.

    Returns:
        (label per sample, number of subjects in conflict).
    """
    subjects = np.asarray(subjects, dtype=str)
    labels = np.asarray(labels, dtype=str)
    values: dict[str, set] = {}
    for s, lab in zip(subjects, labels):
        st = values.setdefault(s, set())
        if lab != UNLABELLED:
            st.add(lab)
    resolved = {}
    conflicts = 0
    for s, st in values.items():
        if not st:
            resolved[s] = UNLABELLED
        elif len(st) == 1:
            resolved[s] = next(iter(st))
        else:
            resolved[s] = CONFLICT
            conflicts += 1
    return np.asarray([resolved[s] for s in subjects], dtype=str), conflicts


def level_note(level: str, conflicts: int = 0) -> str:
    if level == "subject":
        return (f"per subject: every image carries its subject's label; {conflicts} subject(s) whose images "
                "disagree are 'conflict'")
    return "per image: each image keeps its own label"


def check_label(path: Path, lineno: int, column: str, value: str) -> str:
    """A label read from a file must not collide with evalkit's special states."""
    if value in SPECIAL_LABELS:
        raise DatasetError(f"{where(path, lineno)}: {column} value {value!r} collides with evalkit's special "
                           f"label states {SPECIAL_LABELS}")
    return value


@dataclass
class Rows:
    """Accumulates samples while an adapter reads its files; ``build`` makes the Samples table."""

    ids: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    subjects: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)

    def add(self, sid: str, path: str, subject: str, **labels: str) -> None:
        self.ids.append(sid)
        self.paths.append(path)
        self.subjects.append(subject)
        for k, v in labels.items():
            self.attributes.setdefault(k, []).append(v)



#: the one protocol a dataset without identities can run
IDENTITY_FREE_PROTOCOLS = ("enrolment",)


def validate_dataset_protocol(cfg) -> None:
    """Config-time checks between a dataset and a protocol, before any work: an official protocol
    needs its own dataset; a dataset without identities runs only ``protocol=enrolment``."""
    from evalkit.config import ConfigError

    kind, proto = cfg.dataset.kind, cfg.protocol.kind
    if proto not in IDENTITY_FREE_PROTOCOLS and not has_identities(kind):
        raise ConfigError(f"dataset={kind} has no identities, so no comparison is mated or known to be non-mated: "
                          f"protocol={proto} cannot be measured on it. Use protocol=enrolment (failure to detect / "
                          "enrol per group), which is what this data can show")
