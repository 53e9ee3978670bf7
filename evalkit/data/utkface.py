"""UTKFace (Zhang, Song & Qi, CVPR 2017): about 20,000 face images labelled in their file names
with age, gender and race, without identities.

Layout::

    root/UTKFace/<age>_<gender>_<race>_<date&time>.jpg.chip.jpg   (aligned & cropped; or dataset.images_dir)
    root/<age>_<gender>_<race>_<date&time>.jpg                    (in-the-wild crops are accepted too)

File name fields (UTKFace page): ``age`` 0..116; ``gender`` 0 male, 1 female; ``race`` 0 White,
1 Black, 2 Asian, 3 Indian, 4 Others (Hispanic, Latino, Middle Eastern); ``date&time``
yyyymmddHHMMSSFFF. A few files in the release lack a field: ``dataset.bad_names=error`` (default)
refuses them naming the file; ``unlabelled`` keeps them with ``unlabelled`` for what is missing.

No identities: each image is its own subject id (``utk:<file>``) and only failure to detect /
enrol can be measured (``protocol=enrolment``); a pair protocol is refused.
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, configured_dir, resolve_root
from evalkit.data.csv_table import band_label, band_labels
from evalkit.data.base import Dataset
from evalkit.data.samples import UNLABELLED, DatasetError, Samples

GENDER = {"0": "male", "1": "female"}
RACE = {"0": "white", "1": "black", "2": "asian", "3": "indian", "4": "others"}
IMAGE_DIR_CANDIDATES = ("UTKFace", "utkface", "crop_part1", ".")
_SUFFIXES = (".jpg.chip.jpg", ".chip.jpg", ".jpg", ".png")

INFO = DatasetInfo(
    name="utkface",
    title="UTKFace (Zhang, Song & Qi, CVPR 2017)",
    request="https://susanqq.github.io/UTKFace/ (Google Drive links on that page)",
    terms="non-commercial research only; the copyright of the images remains with their owners",
    layout="UTKFace/<age>_<gender>_<race>_<date&time>.jpg.chip.jpg   (or dataset.images_dir=...)",
    labels="age, sex (gender 0 male, 1 female), race (0 white, 1 black, 2 asian, 3 indian, 4 others) from each "
           "file name, as UTKFace's authors annotated them (per image; age banded at dataset.age_bands)",
    protocols="protocol=enrolment only (no identities): failure to detect / enrol per group and intersection",
    documented_from="official: the UTKFace page (the file name format and codes)",
    identities=False,
    default_root="${data_dir}/utkface",
)


@dataclass
class UTKFaceDatasetConfig(DatasetConfig):
    name: str = "utkface"
    kind: str = "utkface"
    root: str = "${data_dir}/utkface"
    images_dir: Optional[str] = None         # None: UTKFace/, utkface/, crop_part1/ or the root (first with images)
    age_bands: list[float] = field(default_factory=lambda: [18, 30, 45, 60])
    bad_names: str = "error"                 # error | unlabelled


CONFIG = UTKFaceDatasetConfig


def parse_name(name: str) -> tuple[str, str, str, str] | None:
    """(age, gender, race, datetime) fields of a UTKFace file name, or None if it does not have
    four '_'-separated fields before its suffix."""
    stem = name
    for suf in _SUFFIXES:
        if name.lower().endswith(suf):
            stem = name[: -len(suf)]
            break
    parts = stem.split("_")
    return tuple(parts) if len(parts) == 4 else None  # type: ignore[return-value]


def labels_of(name: str, path: str, bad_names: str = "error", edges=(18, 30, 45, 60)) -> tuple[str, str, str]:
    """(age band, sex, race) of one UTKFace image file name.

    Raises:
        DatasetError: a name without the four fields, an age that is not 0..116, an unknown gender
        or race code (naming the file); with ``bad_names='unlabelled'`` those become unlabelled.
    """
    f = parse_name(name)
    problems = []
    if f is None:
        problems.append("it does not have the four fields <age>_<gender>_<race>_<date&time>")
        f = ("", "", "", "")
    age, g, r, _ = f
    if f[0] and not (age.isdigit() and 0 <= int(age) <= 116):
        problems.append(f"age {age!r} is not an integer 0..116")
    if f[0] and g not in GENDER:
        problems.append(f"gender code {g!r} is unknown (known: 0 male, 1 female)")
    if f[0] and r not in RACE:
        problems.append(f"race code {r!r} is unknown (known: {', '.join(f'{k} {v}' for k, v in RACE.items())})")
    if problems and bad_names == "error":
        raise DatasetError(f"{path}: UTKFace file name {name!r}: {'; '.join(problems)} "
                           "(dataset.bad_names=unlabelled keeps such files with unlabelled fields)")
    labels = band_labels(edges)
    a = band_label(int(age), edges, labels) if age.isdigit() and int(age) <= 116 else UNLABELLED
    return a, GENDER.get(g, UNLABELLED), RACE.get(r, UNLABELLED)


def images_dir(root: Path, configured: str | None) -> Path:
    chosen = configured_dir(root, configured)
    if chosen is not None:
        return chosen
    for cand in IMAGE_DIR_CANDIDATES:
        d = root / cand
        if d.is_dir() and any(e.name.lower().endswith((".jpg", ".png")) for e in os.scandir(d)):
            return d.resolve() if cand == "." else d
    raise DatasetError(f"no UTKFace images found in {', '.join(str(root / c) for c in IMAGE_DIR_CANDIDATES)}; "
                       "expected <age>_<gender>_<race>_<date&time>.jpg.chip.jpg files (see `evalkit data info utkface`)")


def load(cfg) -> Samples:
    return load_utkface(cfg.root, cfg.images_dir, list(cfg.age_bands), cfg.bad_names)


def load_utkface(root, images: str | None = None, age_bands=(18, 30, 45, 60), bad_names: str = "error") -> Samples:
    root = resolve_root(root)
    if bad_names not in ("error", "unlabelled"):
        raise DatasetError(f"dataset.bad_names must be error or unlabelled, got {bad_names!r}")
    from evalkit.data.csv_table import _check_edges

    edges = _check_edges("age", age_bands)
    d = images_dir(root, images)
    files = sorted(e.name for e in os.scandir(d) if e.is_file() and e.name.lower().endswith((".jpg", ".png")))
    ids, paths, ages, sexes, races = [], [], [], [], []
    for name in files:
        a, s, r = labels_of(name, str(d / name), bad_names, edges)
        ids.append(name)
        paths.append(str(d / name))
        ages.append(a)
        sexes.append(s)
        races.append(r)
    if not ids:
        raise DatasetError(f"no images in {d}")
    src = f"the {{f}} field of each file name in {d} (UTKFace's own annotation{{c}}); per image"
    return Samples(name="utkface", ids=np.asarray(ids), paths=np.asarray(paths),
                   subjects=np.asarray([f"utk:{i}" for i in ids]),
                   attributes={"sex": np.asarray(sexes), "race": np.asarray(races), "age": np.asarray(ages)},
                   label_sources={"sex": src.format(f="gender", c=": 0 male, 1 female"),
                                  "race": src.format(f="race", c=": 0 white, 1 black, 2 asian, 3 indian, 4 others"),
                                  "age": src.format(f="age", c="") + f", banded at {', '.join(band_labels(edges))}"})


def inspect(root: Path) -> list[str]:
    try:
        d = images_dir(root, None)
    except DatasetError as e:
        return [str(e)]
    files = [e.name for e in os.scandir(d) if e.is_file() and e.name.lower().endswith((".jpg", ".png"))]
    bad = [f for f in files if parse_name(f) is None]
    return [f"images: {d}: {len(files):,} files, {len(bad)} without the 4 name fields" + (f" (e.g. {bad[0]})" if bad else "")]


__all__ = ["INFO", "UTKFaceDatasetConfig", "parse_name", "labels_of", "load", "load_utkface", "inspect"]



def annotation_files(cfg) -> list[Path]:
    return []   # the labels are the image file names, covered by the run's images digest


class UTKFaceDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: utkface`` in conf/dataset/utkface.yaml."""

    name = "utkface"
    config_schema = UTKFaceDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
