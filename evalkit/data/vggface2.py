"""VGGFace2 (Cao, Shen, Xie, Parkhi & Zisserman, FG 2018): 9,131 identities (8,631 train, 500
test), with each identity's gender in ``identity_meta.csv``.

Layout::

    root/identity_meta.csv             Class_ID, Name, Sample_Num, Flag, Gender
    root/test/n000001/0001_01.jpg      (dataset.split=test; train/ for split=train)

``identity_meta.csv``: a header ``Class_ID, Name, Sample_Num, Flag, Gender``, then rows such as
``n000001, "14th_Dalai_Lama", 424, 0, m``: values separated by a comma and a space, names in
double quotes (some contain commas), ``Flag`` 1 for the training set and 0 for the test set,
``Gender`` ``m`` or ``f``. Labels: ``sex`` per subject from ``Gender``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, csv_rows, found_files, map_code, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.samples import UNLABELLED, DatasetError, Samples

META_FILE = "identity_meta.csv"
META_COLUMNS = ("Class_ID", "Name", "Sample_Num", "Flag", "Gender")
GENDER = {"m": "male", "f": "female"}
SPLITS = {"train": "1", "test": "0"}
_CLASS_RE = re.compile(r"^n\d{6}$")

INFO = DatasetInfo(
    name="vggface2",
    title="VGGFace2 (Cao, Shen, Xie, Parkhi & Zisserman, FG 2018)",
    request="the VGGFace2 page (robots.ox.ac.uk/~vgg/data/vgg_face2/) is withdrawn; copies are shared by "
            "its authors or institutions under the original agreement. evalkit cannot download it",
    terms="non-commercial research only (the VGGFace2 licence); images remain their owners'",
    layout="identity_meta.csv                  Class_ID, Name, Sample_Num, Flag, Gender\n"
           "test/<Class_ID>/<NNNN_NN>.jpg      (or train/, dataset.split=train)",
    labels="sex per subject from identity_meta.csv's Gender column (m, f), as the VGGFace2 authors annotated it",
    protocols="protocol=generated (all mated pairs, seeded non-mated sample), exhaustive or search; VGGFace2 has "
              "no official verification pair list in this layout",
    documented_from="official: the VGGFace2 meta README (identity_meta.csv's columns and Flag meaning)",
    default_root="${data_dir}/vggface2",
)


@dataclass
class VGGFace2DatasetConfig(DatasetConfig):
    name: str = "vggface2"
    kind: str = "vggface2"
    root: str = "${data_dir}/vggface2"
    split: str = "test"                      # test | train


CONFIG = VGGFace2DatasetConfig


def read_meta(path: Path) -> dict[str, dict]:
    """Class_ID -> {name, sample_num, flag, sex} from ``identity_meta.csv``.

    Raises:
        DatasetError: missing columns, wrong field count, malformed Class_ID, non-integer
        Sample_Num, Flag not 0/1, unknown Gender code, a Class_ID listed twice (file and line).
    """
    if not path.is_file():
        raise DatasetError(f"VGGFace2 identity file not found: {path}")
    out: dict[str, dict] = {}
    for lineno, get in csv_rows(path, META_COLUMNS, skipinitialspace=True, field_hint='(a name with a comma must be in double quotes)'):
        cid = get("Class_ID")
        if not _CLASS_RE.match(cid):
            raise DatasetError(f"{where(path, lineno)}: Class_ID must look like 'n000001', got {cid!r}")
        if cid in out:
            raise DatasetError(f"{where(path, lineno)}: Class_ID {cid!r} listed twice")
        if not get("Sample_Num").isdigit():
            raise DatasetError(f"{where(path, lineno)}: Sample_Num must be an integer, got {get('Sample_Num')!r}")
        flag = map_code(path, lineno, "Flag", get("Flag"), {"0": "0", "1": "1"})
        sex = map_code(path, lineno, "Gender", get("Gender"), GENDER)
        out[cid] = {"name": get("Name"), "sample_num": int(get("Sample_Num")), "flag": flag, "sex": sex,
                    "lineno": lineno}
    return out


def load(cfg) -> Samples:
    return load_vggface2(cfg.root, split=cfg.split)


def load_vggface2(root, split: str = "test") -> Samples:
    """Every ``<split>/<Class_ID>/*.jpg`` image, ``sex`` from ``identity_meta.csv`` (per subject).
    A class folder absent from the meta file is ``unlabelled``; a class whose Flag says the other
    split is a DatasetError (the copy is mixed up)."""
    root = resolve_root(root)
    if split not in SPLITS:
        raise DatasetError(f"dataset.split must be one of {list(SPLITS)}, got {split!r}")
    meta = read_meta(root / META_FILE)
    img_dir = root / split
    if not img_dir.is_dir():
        raise DatasetError(f"VGGFace2 image folder not found: {img_dir} (expected {split}/<Class_ID>/<image>.jpg)")
    ids, paths, subjects, sexes = [], [], [], []
    for d in sorted(os.scandir(img_dir), key=lambda e: e.name):
        if not d.is_dir():
            continue
        m = meta.get(d.name)
        if m is not None and m["flag"] != SPLITS[split]:
            raise DatasetError(f"{where(root / META_FILE, m['lineno'])}: {d.name} has Flag {m['flag']} "
                               f"({'train' if m['flag'] == '1' else 'test'}) but is in {img_dir}")
        for f in sorted(os.scandir(d.path), key=lambda e: e.name):
            if f.name.lower().endswith((".jpg", ".jpeg", ".png")):
                ids.append(f"{d.name}/{os.path.splitext(f.name)[0]}")
                paths.append(f.path)
                subjects.append(d.name)
                sexes.append(m["sex"] if m else UNLABELLED)
    if not ids:
        raise DatasetError(f"no images under {img_dir}/<Class_ID>/")
    return Samples(name="vggface2", ids=np.asarray(ids), paths=np.asarray(paths), subjects=np.asarray(subjects),
                   attributes={"sex": np.asarray(sexes)},
                   label_sources={"sex": f"column Gender of {root / META_FILE} (VGGFace2's own annotation; m male, "
                                         "f female); per subject; a class absent from the file is 'unlabelled'"})


def inspect(root: Path) -> list[str]:
    out = found_files(root, [META_FILE, "test", "train"])
    if (root / META_FILE).is_file():
        try:
            meta = read_meta(root / META_FILE)
            out.append(f"{META_FILE}: {len(meta):,} identities ({sum(m['flag'] == '0' for m in meta.values()):,} test, "
                       f"{sum(m['flag'] == '1' for m in meta.values()):,} train; "
                       f"{sum(m['sex'] == 'female' for m in meta.values()):,} female)")
        except DatasetError as e:
            out.append(f"unreadable: {e}")
    return out


__all__ = ["INFO", "VGGFace2DatasetConfig", "load", "load_vggface2", "read_meta", "inspect"]


def annotation_files(cfg) -> list[Path]:
    return [resolve_root(cfg.root) / META_FILE]


class VGGFace2Dataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: vggface2`` in conf/dataset/vggface2.yaml."""

    name = "vggface2"
    config_schema = VGGFace2DatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
