"""FairFace (Kärkkäinen & Joo, WACV 2021): 108,501 face images balanced over 7 race groups, with
age bin, gender and race labels, without identities.

Layout (the FairFace release)::

    root/fairface_label_train.csv    file,age,gender,race,service_test
    root/fairface_label_val.csv
    root/train/1.jpg, root/val/1.jpg (the ``file`` column, relative to the root; images from
                                      fairface-img-margin025-trainval.zip or margin125)

Values: ``age`` one of 0-2, 3-9, 10-19, 20-29, 30-39, 40-49, 50-59, 60-69, ``more than 70``;
``gender`` Male / Female; ``race`` White, Black, Latino_Hispanic, East Asian, Southeast Asian,
Indian, Middle Eastern. A label CSV that went through a spreadsheet may hold age bins turned
into dates: ``3-9`` shown as ``03-Sep``, ``3-Sep`` or ``9-Mar``/``Mar-09``, ``10-19`` as
``Oct-19`` or ``19-Oct``. Each of those can only come from one bin, so it is read back as that
bin and counted in the label source (``dataset.mangled_ages=repair``, default); with ``error`` it
is refused naming the file and line. Any other value is refused.

No identities: every image is its own subject id (``ff:<file>``); only failure to detect / enrol
can be measured (``protocol=enrolment``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, csv_rows, found_files, map_code, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.samples import DatasetError, Samples

COLUMNS = ("file", "age", "gender", "race")
AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
GENDER = {"Male": "male", "Female": "female"}
RACE = {"White": "white", "Black": "black", "Latino_Hispanic": "latino_hispanic", "East Asian": "east_asian",
        "Southeast Asian": "southeast_asian", "Indian": "indian", "Middle Eastern": "middle_eastern"}
SPLITS = {"train": "fairface_label_train.csv", "val": "fairface_label_val.csv"}
#: spreadsheet renderings of an age bin as a date -> the bin (only bins that parse as dates)
MANGLED_AGES = {"03-Sep": "3-9", "3-Sep": "3-9", "Sep-03": "3-9", "9-Mar": "3-9", "09-Mar": "3-9", "Mar-09": "3-9",
                "Oct-19": "10-19", "19-Oct": "10-19"}

INFO = DatasetInfo(
    name="fairface",
    title="FairFace (Kärkkäinen & Joo, WACV 2021)",
    request="https://github.com/joojs/fairface: the image zips (padding 0.25 or 1.25) and the label CSVs are "
            "linked from the README (Google Drive)",
    terms="CC BY 4.0 (the FairFace README); the images are from YFCC-100M, Flickr, Twitter and news sites",
    layout="fairface_label_train.csv, fairface_label_val.csv   file,age,gender,race,service_test\n"
           "train/<n>.jpg, val/<n>.jpg                          (the file column, relative to the root)",
    labels="age bin, sex (gender), race (7 groups) from the label CSVs, annotated by MTurk workers "
           "(FairFace's own labels; per image). Spreadsheet-mangled age bins (03-Sep, Oct-19) are read back "
           "as their bin and counted, or refused with dataset.mangled_ages=error",
    protocols="protocol=enrolment only (no identities): failure to detect / enrol per group and intersection",
    documented_from="official: the FairFace README and label CSV header",
    identities=False,
    default_root="${data_dir}/fairface",
)


@dataclass
class FairFaceDatasetConfig(DatasetConfig):
    name: str = "fairface"
    kind: str = "fairface"
    root: str = "${data_dir}/fairface"
    splits: list[str] = field(default_factory=lambda: ["val"])   # train | val
    mangled_ages: str = "repair"             # repair | error


CONFIG = FairFaceDatasetConfig


def age_bin(value: str, mangled: str, path: Path, lineno: int) -> tuple[str, bool]:
    """(bin, repaired) of a FairFace age value.

    Raises:
        DatasetError: a value that is no bin and no known spreadsheet rendering of one, or a
        rendering with ``mangled='error'`` (naming file and line).
    """
    v = value.strip()
    if v in AGE_BINS:
        return v, False
    if v in MANGLED_AGES:
        if mangled == "error":
            raise DatasetError(f"{where(path, lineno)}: age {v!r} is the age bin {MANGLED_AGES[v]!r} turned into a date "
                               "by a spreadsheet; fix the file or set dataset.mangled_ages=repair")
        return MANGLED_AGES[v], True
    raise DatasetError(f"{where(path, lineno)}: age {v!r} is not a FairFace age bin ({', '.join(AGE_BINS)})"
                       + (" nor a known spreadsheet rendering of one" if any(c.isalpha() for c in v) else ""))


def read_labels(path: Path, mangled: str = "repair") -> tuple[list[dict], int]:
    """(rows {file, age, sex, race, lineno}, number of repaired age values) of a label CSV."""
    if not path.is_file():
        raise DatasetError(f"FairFace label file not found: {path}")
    rows, repaired = [], 0
    for lineno, get in csv_rows(path, COLUMNS):
        if not get("file"):
            raise DatasetError(f"{where(path, lineno)}: empty 'file'")
        age, fixed = age_bin(get("age"), mangled, path, lineno)
        repaired += fixed
        rows.append({"file": get("file"), "age": age, "lineno": lineno,
                     "sex": map_code(path, lineno, "gender", get("gender"), GENDER),
                     "race": map_code(path, lineno, "race", get("race"), RACE)})
    return rows, repaired


def load(cfg) -> Samples:
    return load_fairface(cfg.root, list(cfg.splits), cfg.mangled_ages)


def load_fairface(root, splits=("val",), mangled_ages: str = "repair") -> Samples:
    root = resolve_root(root)
    if mangled_ages not in ("repair", "error"):
        raise DatasetError(f"dataset.mangled_ages must be repair or error, got {mangled_ages!r}")
    ids, paths, ages, sexes, races = [], [], [], [], []
    seen, repaired, files = {}, 0, []
    for split in splits:
        if split not in SPLITS:
            raise DatasetError(f"dataset.splits: unknown FairFace split {split!r} (known: {list(SPLITS)})")
        path = root / SPLITS[split]
        files.append(str(path))
        rows, fixed = read_labels(path, mangled_ages)
        repaired += fixed
        for r in rows:
            if r["file"] in seen:
                raise DatasetError(f"{where(path, r['lineno'])}: file {r['file']!r} already listed at {seen[r['file']]}")
            seen[r["file"]] = where(path, r["lineno"])
            ids.append(r["file"])
            paths.append(str(root / r["file"]))
            ages.append(r["age"])
            sexes.append(r["sex"])
            races.append(r["race"])
    if not ids:
        raise DatasetError(f"no rows in the FairFace label files {files}")
    src = f"column {{c}} of {', '.join(files)} (FairFace's own annotation); per image"
    return Samples(name="fairface", ids=np.asarray(ids), paths=np.asarray(paths),
                   subjects=np.asarray([f"ff:{i}" for i in ids]),
                   attributes={"sex": np.asarray(sexes), "race": np.asarray(races), "age": np.asarray(ages)},
                   label_sources={"sex": src.format(c="gender"), "race": src.format(c="race"),
                                  "age": src.format(c="age") + f"; {repaired} value(s) a spreadsheet had turned "
                                         "into dates (03-Sep, Oct-19 ...) read back as their bin"})


def inspect(root: Path) -> list[str]:
    out = found_files(root, [*SPLITS.values(), "train", "val"])
    for split, name in SPLITS.items():
        if (root / name).is_file():
            try:
                rows, fixed = read_labels(root / name)
                present = sum(1 for r in rows if (root / r["file"]).is_file())
                out.append(f"{split}: {len(rows):,} labelled images, {present:,} present on disk, "
                           f"{fixed} spreadsheet-mangled age value(s)")
            except DatasetError as e:
                out.append(f"{split}: unreadable: {e}")
    return out


__all__ = ["INFO", "FairFaceDatasetConfig", "AGE_BINS", "MANGLED_AGES", "age_bin", "read_labels", "load",
           "load_fairface", "inspect"]


def annotation_files(cfg) -> list[Path]:
    root = resolve_root(cfg.root)
    return [root / SPLITS[s] for s in cfg.splits if s in SPLITS and (root / SPLITS[s]).is_file()]


class FairFaceDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: fairface`` in conf/dataset/fairface.yaml."""

    name = "fairface"
    config_schema = FairFaceDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
