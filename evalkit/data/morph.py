"""MORPH Album 2 (MORPH II; Ricanek & Tesafaye, FG 2006): about 55,000 mugshots of about 13,000
people, with date of birth, race, gender and age at capture.

Layout (the non-commercial release, as read by published code; written from secondary
descriptions: evalkit's authors had no copy of the official documentation)::

    root/morph_2008_nonCommercial.csv     id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo
    root/Album2/003265_00M18.JPG          (the photo column, relative to the root)

Codes: ``race`` B (Black), W (White), A (Asian), H (Hispanic), O (Other), I (Indian); ``gender``
M, F. Identity is ``id_num``. Sex and race are per subject (a subject whose rows disagree is
``conflict``, as happens in MORPH II, see Bingham et al. 2018); age at capture is per image,
banded at ``dataset.age_bands``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, csv_rows, found_files, level_note, map_code, per_subject, resolve_root, where
from evalkit.data.csv_table import _check_edges, band_label, band_labels
from evalkit.data.base import Dataset
from evalkit.data.samples import UNLABELLED, DatasetError, Samples

CSV_FILE = "morph_2008_nonCommercial.csv"
COLUMNS = ("id_num", "race", "gender", "age", "photo")
RACE = {"B": "black", "W": "white", "A": "asian", "H": "hispanic", "O": "other", "I": "indian"}
GENDER = {"M": "male", "F": "female"}

INFO = DatasetInfo(
    name="morph",
    title="MORPH Album 2 (Ricanek & Tesafaye, IEEE FG 2006)",
    request="https://uncw.edu/myuncw/research/innovation-commercialization/technology-portfolio/morph: the "
            "academic (non-commercial) release, on signing UNCW's licence",
    terms="non-commercial research under the UNCW MORPH licence; commercial use needs a separate licence",
    layout=f"{CSV_FILE}   id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo\n"
           "Album2/<id>_<nn><sex><age>.JPG   (the photo column, relative to the root)",
    labels="sex (gender M/F) and race (B W A H O I) per subject; age at capture per image, banded; all from the "
           "CSV, as MORPH's curators recorded them",
    protocols="protocol=generated, exhaustive or search (no official verification pairs)",
    documented_from="secondary: column names and codes from published code reading the CSV (e.g. Bingham et al. "
                    "2018, 'Preliminary studies on a large face database'); not checked against UNCW's documentation",
    default_root="${data_dir}/morph",
)


@dataclass
class MorphDatasetConfig(DatasetConfig):
    name: str = "morph"
    kind: str = "morph"
    root: str = "${data_dir}/morph"
    csv: str = CSV_FILE
    age_bands: list[float] = field(default_factory=lambda: [18, 30, 45, 60])


CONFIG = MorphDatasetConfig


def load(cfg) -> Samples:
    return load_morph(cfg.root, cfg.csv, list(cfg.age_bands))


def load_morph(root, csv_name: str = CSV_FILE, age_bands=(18, 30, 45, 60)) -> Samples:
    root = resolve_root(root)
    path = root / csv_name
    if not path.is_file():
        raise DatasetError(f"MORPH CSV not found: {path}")
    edges = _check_edges("age", age_bands)
    labels = band_labels(edges)
    ids, paths, subjects, races, sexes, ages = [], [], [], [], [], []
    seen: dict[str, int] = {}
    for lineno, get in csv_rows(path, COLUMNS):
        photo, ident, age = get("photo"), get("id_num"), get("age")
        if not photo or not ident:
            raise DatasetError(f"{where(path, lineno)}: empty id_num or photo")
        if photo in seen:
            raise DatasetError(f"{where(path, lineno)}: photo {photo!r} already listed on line {seen[photo]}")
        seen[photo] = lineno
        if age and not age.isdigit():
            raise DatasetError(f"{where(path, lineno)}: age must be an integer, got {age!r}")
        ids.append(photo.rsplit(".", 1)[0])
        paths.append(str(root / photo))
        subjects.append(ident)
        races.append(map_code(path, lineno, "race", get("race"), RACE))
        sexes.append(map_code(path, lineno, "gender", get("gender"), GENDER))
        ages.append(band_label(int(age), edges, labels) if age else UNLABELLED)
    if not ids:
        raise DatasetError(f"{path} has a header but no rows")
    subj = np.asarray(subjects)
    sex, c_sex = per_subject(subj, np.asarray(sexes))
    race, c_race = per_subject(subj, np.asarray(races))
    return Samples(name="morph", ids=np.asarray(ids), paths=np.asarray(paths), subjects=subj,
                   attributes={"sex": sex, "race": race, "age": np.asarray(ages)},
                   label_sources={"sex": f"column gender of {path} (M male, F female); " + level_note("subject", c_sex),
                                  "race": f"column race of {path} (B black, W white, A asian, H hispanic, O other, "
                                          "I indian); " + level_note("subject", c_race),
                                  "age": f"column age of {path} (age at capture), banded at {', '.join(labels)}; "
                                         + level_note("image")})


def inspect(root: Path) -> list[str]:
    out = found_files(root, [CSV_FILE])
    if (root / CSV_FILE).is_file():
        try:
            s = load_morph(root)
            present = sum(Path(p).is_file() for p in s.paths)
            out.append(f"{len(s):,} photos of {len(set(s.subjects)):,} people; {present:,} present on disk")
        except DatasetError as e:
            out.append(f"unreadable: {e}")
    return out


__all__ = ["INFO", "MorphDatasetConfig", "load", "load_morph", "inspect"]


def annotation_files(cfg) -> list[Path]:
    p = resolve_root(cfg.root) / cfg.csv
    return [p] if p.is_file() else []


class MorphDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: morph`` in conf/dataset/morph.yaml."""

    name = "morph"
    config_schema = MorphDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
