"""Balanced Faces in the Wild (BFW; Robinson et al., CVPR Workshops 2020): 800 VGGFace2 identities,
100 in each of 8 subgroups (Asian, Black, Indian, White x female, male), with a datatable of
labelled pairs in 5 folds.

Layout (the BFW release)::

    root/bfw-v0.1.5-datatable.csv      (any *datatable*.csv; or dataset.datatable=...)
    root/<images>/asian_females/n000009/0010_01.jpg   <images>: dataset.images_dir, else the first of
                                                      bfw/, face-samples/, samples/, . that holds
                                                      the datatable's first image

Datatable columns (BFW data README): ``fold`` (1..5), ``p1``, ``p2`` (image paths relative to the
image folder), ``label`` (1 genuine, 0 impostor), ``id1``, ``id2`` (subject numbers), ``att1``,
``att2`` (subgroup folder names), ``a1``, ``a2`` (subgroup: AF AM BF BM IF IM WF WM), ``g1``,
``g2`` (gender: F M), ``e1``, ``e2`` (ethnicity: A B I W); vendor score columns (``vgg16``,
``resnet50``, ``senet50``, ``sphereface``) and a leading index column may be present and are
not needed. Labels are per subject: every row naming a subject must give it the same codes.

The vendor score columns are read as a system's scores by the score-file backend
(``backend=bfw-scores backend.score_column=senet50``: conf/backend/bfw-scores.yaml maps ``p1``,
``p2`` without their extension to this adapter's sample ids and the column to a similarity).
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from evalkit.config import DatasetConfig, ProtocolConfig
from evalkit.data.adapters import DatasetInfo, configured_dir, map_code, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.samples import DatasetError, Pairs, Samples

REQUIRED = ("fold", "p1", "p2", "label", "id1", "id2", "a1", "a2", "g1", "g2", "e1", "e2")
SUBGROUPS = ("AF", "AM", "BF", "BM", "IF", "IM", "WF", "WM")
GENDER = {"F": "female", "M": "male"}
ETHNICITY = {"A": "asian", "B": "black", "I": "indian", "W": "white"}
SCORE_COLUMNS = ("vgg16", "resnet50", "senet50", "sphereface")
IMAGE_DIR_CANDIDATES = ("bfw", "face-samples", "samples", ".")

INFO = DatasetInfo(
    name="bfw",
    title="Balanced Faces in the Wild (Robinson, Livitz, Henon, Qin, Fu & Timoner, CVPRW 2020)",
    request="https://github.com/visionjo/facerec-bias-bfw: the 'Download Data' form (research or education "
            "use); the authors send the BFW release (images + datatable CSV)",
    terms="research and education only, under the BFW data agreement; the faces come from VGGFace2 "
          "(its own non-commercial research terms apply too)",
    layout="bfw-v0.1.5-datatable.csv         one row per pair: fold,p1,p2,label,id1,id2,...,a1,a2,g1,g2,e1,e2\n"
           "bfw/<subgroup>/<id>/<image>.jpg  e.g. bfw/asian_females/n000009/0010_01.jpg (dataset.images_dir)",
    labels="sex from g1/g2 (F, M), race from e1/e2 (A asian, B black, I indian, W white), both per subject, "
           "as BFW's authors labelled its identities",
    protocols="protocol=bfw: the datatable's pairs in its 5 folds (protocol.folds=[...] for a subset); "
              "the datatable's vendor score columns as a system's scores: backend=bfw-scores "
              "backend.score_column=senet50 (or vgg16, resnet50)",
    documented_from="official: the BFW data README (github.com/visionjo/facerec-bias-bfw, data/README.md)",
    default_root="${data_dir}/bfw",
)


@dataclass
class BFWDatasetConfig(DatasetConfig):
    name: str = "bfw"
    kind: str = "bfw"
    root: str = "${data_dir}/bfw"
    datatable: Optional[str] = None          # the datatable CSV (relative to root); None: the *datatable*.csv there
    images_dir: Optional[str] = None         # image folder the datatable's paths are relative to


@dataclass
class BFWProtocolConfig(ProtocolConfig):
    """The BFW datatable's pairs and folds."""
    name: str = "bfw"
    kind: str = "bfw"
    folds: Optional[list[int]] = None        # None or []: every fold


CONFIG = BFWDatasetConfig
PROTOCOL_CONFIG = BFWProtocolConfig


def datatable_path(root: Path, datatable: str | None = None) -> Path:
    if datatable:
        p = Path(datatable)
        return p if p.is_absolute() else root / p
    found = sorted(root.glob("*datatable*.csv"))
    if not found:
        raise DatasetError(f"no BFW datatable (*datatable*.csv) in {root}; put bfw-v0.1.5-datatable.csv there or set "
                           "dataset.datatable=PATH (see `evalkit data info bfw`)")
    return found[-1]


@dataclass(frozen=True, slots=True)
class Row:
    lineno: int
    fold: int
    p1: str
    p2: str
    label: int
    subj1: str
    subj2: str
    sex1: str
    sex2: str
    race1: str
    race2: str


def read_datatable(path: Path) -> tuple[list[Row], list[str]]:
    """The datatable's rows and its header.

    Raises:
        DatasetError: missing columns (listing those found), a wrong field count, an unknown
        fold/label/subgroup/gender/ethnicity code, a subgroup that disagrees with its gender and
        ethnicity, or a label that disagrees with the two subjects (each naming file and line).
    """
    if not path.is_file():
        raise DatasetError(f"BFW datatable not found: {path}")
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        fh.close()
        raise DatasetError(f"{where(path, 1)}: BFW datatable lacks column(s) {missing}; columns found: {header}")
    col = {c: i for i, c in enumerate(header)}
    rows = []
    with fh:
        try:
            for row in reader:
                lineno = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"{where(path, lineno)}: {len(row)} fields, the header has {len(header)}")
                get = lambda c: row[col[c]].strip()  # noqa: E731
                fold, label = get("fold"), get("label")
                if not fold.isdigit():
                    raise DatasetError(f"{where(path, lineno)}: fold must be an integer (1..5), got {fold!r}")
                if label not in ("0", "1"):
                    raise DatasetError(f"{where(path, lineno)}: label must be 0 or 1, got {label!r}")
                subj, sexes, races = [], [], []
                for k in ("1", "2"):
                    p = get("p" + k)
                    parts = p.replace("\\", "/").split("/")
                    if len(parts) != 3 or not all(parts):
                        raise DatasetError(f"{where(path, lineno)}: p{k} must look like "
                                           f"'<subgroup>/<id>/<image>.jpg', got {p!r}")
                    a = map_code(path, lineno, "a" + k, get("a" + k), {s: s for s in SUBGROUPS})
                    g = map_code(path, lineno, "g" + k, get("g" + k), GENDER)
                    e = map_code(path, lineno, "e" + k, get("e" + k), ETHNICITY)
                    if a != get("e" + k) + get("g" + k):
                        raise DatasetError(f"{where(path, lineno)}: a{k}={a!r} disagrees with e{k}={get('e' + k)!r} "
                                           f"and g{k}={get('g' + k)!r}")
                    subj.append(sys.intern(parts[1]))   # a subject's id, once in memory
                    sexes.append(g)
                    races.append(e)
                if (label == "1") != (subj[0] == subj[1]):
                    raise DatasetError(f"{where(path, lineno)}: label={label} but the pair's subjects are "
                                       f"{subj[0]!r} and {subj[1]!r}")
                # about a million rows in the real datatable: slots and interned image names (each
                # image appears in many pairs) keep them to about 200 bytes each
                rows.append(Row(lineno, int(fold), sys.intern(get("p1")), sys.intern(get("p2")), int(label), subj[0], subj[1],
                                sexes[0], sexes[1], races[0], races[1]))
        except csv.Error as e:
            raise DatasetError(f"{where(path, reader.line_num)}: {e}") from None
    if not rows:
        raise DatasetError(f"{path}: the datatable has a header but no rows")
    return rows, header


def images_dir(root: Path, rows: list[Row], configured: str | None) -> Path:
    chosen = configured_dir(root, configured)
    if chosen is not None:
        return chosen
    for cand in IMAGE_DIR_CANDIDATES:
        if (root / cand / rows[0].p1).is_file():
            return (root / cand).resolve() if cand == "." else root / cand
    tried = ", ".join(str(root / c) for c in IMAGE_DIR_CANDIDATES)
    raise DatasetError(f"cannot find the BFW images: {rows[0].p1} (the datatable's first image) is in none of {tried}; "
                       "set dataset.images_dir to the folder the datatable's paths are relative to")


def load(cfg) -> Samples:
    return load_bfw(cfg.root, datatable=cfg.datatable, images=cfg.images_dir)


def load_bfw(root, datatable: str | None = None, images: str | None = None) -> Samples:
    """The BFW samples table: every image the datatable names (attributes ``sex``, ``race``, per
    subject). An image missing on disk is kept (a recorded missing-file failure downstream).

    Raises:
        DatasetError: a malformed datatable, or a subject given two different labels (file and
        both lines).
    """
    root = resolve_root(root)
    path = datatable_path(root, datatable)
    rows, _ = read_datatable(path)
    img = images_dir(root, rows, images)
    subj_labels: dict[str, tuple[str, str, int]] = {}
    image_subject: dict[str, str] = {}
    for r in rows:
        for p, s, sex, race in ((r.p1, r.subj1, r.sex1, r.race1), (r.p2, r.subj2, r.sex2, r.race2)):
            prev = subj_labels.setdefault(s, (sex, race, r.lineno))
            if prev[:2] != (sex, race):
                raise DatasetError(f"{where(path, r.lineno)}: subject {s!r} is {sex}/{race} here but "
                                   f"{prev[0]}/{prev[1]} on line {prev[2]}")
            image_subject[p] = s
    ids = sorted(image_subject)
    subjects = np.asarray([image_subject[i] for i in ids])
    src = f"{{col}} of {path} (BFW's own labels{{codes}}); per subject (every row of a subject agrees, checked)"
    return Samples(
        name="bfw", ids=np.asarray([os.path.splitext(i)[0] for i in ids]),
        paths=np.asarray([str(img / i) for i in ids]), subjects=subjects,
        attributes={"sex": np.asarray([subj_labels[s][0] for s in subjects]),
                    "race": np.asarray([subj_labels[s][1] for s in subjects])},
        label_sources={"sex": src.format(col="columns g1/g2", codes=": F female, M male"),
                       "race": src.format(col="columns e1/e2 ('ethnicity')",
                                          codes=": A asian, B black, I indian, W white")})


def official_pairs(dataset_cfg, samples: Samples, protocol_cfg=None) -> Pairs:
    """The datatable's pairs, in file order, with its folds (1..5); ``protocol_cfg.folds`` keeps
    only those folds."""
    root = resolve_root(dataset_cfg.root)
    path = datatable_path(root, dataset_cfg.datatable)
    rows, _ = read_datatable(path)
    keep = set(getattr(protocol_cfg, "folds", None) or [])
    known = sorted({r.fold for r in rows})
    if keep - set(known):
        raise DatasetError(f"protocol.folds={sorted(keep)}: the datatable's folds are {known}")
    lookup = {s: i for i, s in enumerate(samples.ids)}
    a, b, mated, fold = [], [], [], []
    for r in rows:
        if keep and r.fold not in keep:
            continue
        ia, ib = lookup.get(os.path.splitext(r.p1)[0]), lookup.get(os.path.splitext(r.p2)[0])
        if ia is None or ib is None:
            raise DatasetError(f"{where(path, r.lineno)}: image {(r.p1 if ia is None else r.p2)!r} is not in the samples table")
        a.append(ia)
        b.append(ib)
        mated.append(bool(r.label))
        fold.append(r.fold)
    pairs = Pairs(np.asarray(a), np.asarray(b), np.asarray(mated), np.asarray(fold), "bfw")
    pairs.check_against(samples)
    return pairs


def inspect(root: Path) -> list[str]:
    try:
        path = datatable_path(root, None)
    except DatasetError as e:
        return [str(e)]
    out = [f"datatable: {path.name} ({path.stat().st_size:,} bytes)"]
    try:
        rows, header = read_datatable(path)
    except DatasetError as e:
        return out + [f"unreadable: {e}"]
    scores = [c for c in SCORE_COLUMNS if c in header]
    out.append(f"{len(rows):,} pairs ({sum(r.label for r in rows):,} genuine) in folds {sorted({r.fold for r in rows})}; "
               f"vendor score columns: {', '.join(scores) or 'none'}")
    try:
        img = images_dir(root, rows, None)
        names = {p for r in rows for p in (r.p1, r.p2)}
        present = sum(1 for p in names if (img / p).is_file())
        out.append(f"images: {img}: {present:,} of {len(names):,} present")
    except DatasetError as e:
        out.append(str(e))
    return out


__all__ = ["INFO", "BFWDatasetConfig", "BFWProtocolConfig", "load", "load_bfw", "read_datatable", "official_pairs",
           "inspect", "datatable_path", "GENDER", "ETHNICITY", "SUBGROUPS"]


def annotation_files(cfg) -> list[Path]:
    return [datatable_path(resolve_root(cfg.root), cfg.datatable)]


class BFWDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: bfw`` in conf/dataset/bfw.yaml."""

    name = "bfw"
    config_schema = BFWDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
