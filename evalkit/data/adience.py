"""Adience (Eidinger, Enbar & Hassner, IEEE TIFS 2014): 26,580 Flickr face images of 2,284
subjects, with age bands and gender, in 5 subject-disjoint folds.

Layout (the Adience download)::

    root/fold_0_data.txt .. fold_4_data.txt     tab-separated, header first:
        user_id  original_image  face_id  age  gender  x  y  dx  dy  tilt_ang  fiducial_yaw_angle  fiducial_score
    root/faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>   (dataset.images=faces)
    root/aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>    (dataset.images=aligned)

Identity is ``user_id`` + ``face_id`` (a Flickr album holds several people). ``age`` is a band
string such as ``(25, 32)``; the eight official bands are (0, 2) (4, 6) (8, 12) (15, 20)
(25, 32) (38, 43) (48, 53) (60, 100), written ``25-32``. Other strings that occur in the files
(``(38, 42)``, ``(27, 32)``, a bare ``35``, ``None``) are not official bands: by default they
are ``unlabelled`` (``dataset.nonstandard_age=keep`` keeps them as their own label, ``error``
refuses them); the label source says how many. ``gender``: ``m``, ``f``; ``u`` or empty is
``unlabelled``. Age is per image (age at capture); gender per subject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, found_files, level_note, map_code, per_subject, read_lines, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.samples import UNLABELLED, DatasetError, Samples

COLUMNS = ("user_id", "original_image", "face_id", "age", "gender")
OFFICIAL_BANDS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
GENDER = {"m": "male", "f": "female", "u": UNLABELLED, "": UNLABELLED}
IMAGES = {"faces": "coarse_tilt_aligned_face", "aligned": "landmark_aligned_face"}
_BAND_RE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")

INFO = DatasetInfo(
    name="adience",
    title="Adience benchmark of unfiltered faces for age and gender (Eidinger, Enbar & Hassner, TIFS 2014)",
    request="https://talhassner.github.io/home/projects/Adience/Adience-data.html: fill in the form, the "
            "authors send the credentials for the download",
    terms="research use; the images are Flickr photos under Creative Commons licences (attribution to each "
          "photo's owner); cite Eidinger et al. 2014",
    layout="fold_0_data.txt .. fold_4_data.txt   tab-separated: user_id original_image face_id age gender ...\n"
           "faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>\n"
           "aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>   (dataset.images=aligned)",
    labels="age: the fold files' age band per image ('(25, 32)' -> '25-32'; non-official strings unlabelled by "
           "default); sex: the gender column (m, f; u unlabelled), per subject (user_id + face_id)",
    protocols="protocol=generated, exhaustive or search over the chosen folds (dataset.folds); Adience's own "
              "protocol is 5-fold age/gender classification, not verification",
    documented_from="official: the Adience data page (fold file columns, image naming, the 8 age groups)",
    default_root="${data_dir}/adience",
)


@dataclass
class AdienceDatasetConfig(DatasetConfig):
    name: str = "adience"
    kind: str = "adience"
    root: str = "${data_dir}/adience"
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    images: str = "faces"                    # faces (coarse tilt aligned) | aligned (landmark aligned)
    nonstandard_age: str = "unlabelled"      # unlabelled | keep | error


CONFIG = AdienceDatasetConfig


def age_band(text: str, nonstandard: str = "unlabelled", path: Path | None = None, lineno: int = 0) -> tuple[str, bool]:
    """(label, official) of an Adience age string: ``'(25, 32)'`` -> ``('25-32', True)``;
    ``'None'`` -> unlabelled; a non-official band or a bare number per ``nonstandard``.

    Raises:
        DatasetError: a string that is neither a band, a number nor ``None``; or any
        non-official value with ``nonstandard='error'``.
    """
    t = text.strip()
    if t in ("None", ""):
        return UNLABELLED, True
    m = _BAND_RE.match(t)
    if m:
        lo, hi = int(m[1]), int(m[2])
        if (lo, hi) in OFFICIAL_BANDS:
            return f"{lo}-{hi}", True
        label = f"{lo}-{hi}"
    elif t.isdigit():
        label = t
    else:
        raise DatasetError(f"{where(path, lineno) if path else 'Adience'}: age {text!r} is neither a band "
                           "'(lo, hi)', a number nor None")
    if nonstandard == "error":
        raise DatasetError(f"{where(path, lineno) if path else 'Adience'}: age {text!r} is not one of Adience's eight "
                           "official bands (dataset.nonstandard_age=unlabelled or keep to accept it)")
    return (label if nonstandard == "keep" else UNLABELLED), False


def read_fold(path: Path, nonstandard: str = "unlabelled") -> list[dict]:
    """Rows of a ``fold_N_data.txt``: dicts with user_id, original_image, face_id, age (band
    label), official (bool), sex, lineno.

    Raises:
        DatasetError: missing columns, too few fields, an unknown gender code, a malformed age
        (file and line).
    """
    lines = read_lines(path, "Adience fold file")
    if not lines:
        raise DatasetError(f"{path}: empty fold file")
    header = [h.strip() for h in lines[0][1].split("\t")]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{where(path, lines[0][0])}: lacks column(s) {missing}; columns found: {header}")
    col = {c: i for i, c in enumerate(header)}
    out = []
    for lineno, text in lines[1:]:
        parts = text.split("\t")
        if len(parts) < len(COLUMNS) or len(parts) <= max(col[c] for c in COLUMNS):
            raise DatasetError(f"{where(path, lineno)}: {len(parts)} tab-separated fields, expected {len(header)}")
        get = lambda c: parts[col[c]].strip()  # noqa: E731
        if not get("user_id") or not get("original_image") or not get("face_id").isdigit():
            raise DatasetError(f"{where(path, lineno)}: user_id, original_image and a numeric face_id are required")
        age, official = age_band(get("age"), nonstandard, path, lineno)
        sex = map_code(path, lineno, "gender", get("gender"), GENDER)
        out.append({"user_id": get("user_id"), "original_image": get("original_image"), "face_id": get("face_id"),
                    "age": age, "official": official, "sex": sex, "lineno": lineno})
    return out


def load(cfg) -> Samples:
    return load_adience(cfg.root, list(cfg.folds), cfg.images, cfg.nonstandard_age)


def load_adience(root, folds=(0, 1, 2, 3, 4), images: str = "faces", nonstandard_age: str = "unlabelled") -> Samples:
    """Every face row of the chosen fold files: subject ``<user_id>/<face_id>``, ``age`` per
    image, ``sex`` per subject. A face listed twice is a DatasetError; a listed image missing on
    disk is kept (recorded missing-file failure)."""
    root = resolve_root(root)
    if images not in IMAGES:
        raise DatasetError(f"dataset.images must be one of {list(IMAGES)}, got {images!r}")
    if nonstandard_age not in ("unlabelled", "keep", "error"):
        raise DatasetError(f"dataset.nonstandard_age must be unlabelled, keep or error, got {nonstandard_age!r}")
    ids, paths, subjects, ages, sexes = [], [], [], [], []
    seen: dict[str, str] = {}
    nonstd = 0
    for k in folds:
        path = root / f"fold_{int(k)}_data.txt"
        for r in read_fold(path, nonstandard_age):
            sid = f"{r['user_id']}/{r['face_id']}.{r['original_image']}"
            here = where(path, r["lineno"])
            if sid in seen:
                raise DatasetError(f"{here}: face {sid!r} already listed at {seen[sid]}")
            seen[sid] = here
            ids.append(sid)
            paths.append(str(root / images / r["user_id"] / f"{IMAGES[images]}.{r['face_id']}.{r['original_image']}"))
            subjects.append(f"{r['user_id']}/{r['face_id']}")
            ages.append(r["age"])
            sexes.append(r["sex"])
            nonstd += not r["official"]
    if not ids:
        raise DatasetError(f"no faces in the Adience folds {list(folds)} under {root}")
    subj = np.asarray(subjects)
    sex, conflicts = per_subject(subj, np.asarray(sexes))
    files = ", ".join(f"fold_{int(k)}_data.txt" for k in folds)
    age_rule = {"unlabelled": "made 'unlabelled'", "keep": "kept as their own labels", "error": "refused"}[nonstandard_age]
    return Samples(name="adience", ids=np.asarray(ids), paths=np.asarray(paths), subjects=subj,
                   attributes={"sex": sex, "age": np.asarray(ages)},
                   label_sources={
                       "sex": f"column gender of {root}/{{{files}}} (m male, f female, u/empty unlabelled); "
                              + level_note("subject", conflicts),
                       "age": f"column age of {root}/{{{files}}}: Adience's eight official bands written lo-hi; "
                              f"{nonstd} image(s) with a non-official age string {age_rule}; None is 'unlabelled'; "
                              + level_note("image")})


def inspect(root: Path) -> list[str]:
    out = found_files(root, [f"fold_{k}_data.txt" for k in range(5)] + list(IMAGES))
    n = 0
    for k in range(5):
        p = root / f"fold_{k}_data.txt"
        if p.is_file():
            try:
                n += len(read_fold(p))
            except DatasetError as e:
                out.append(f"unreadable: {e}")
    out.append(f"{n:,} faces listed in the fold files")
    return out


__all__ = ["INFO", "AdienceDatasetConfig", "OFFICIAL_BANDS", "age_band", "read_fold", "load", "load_adience", "inspect"]


def annotation_files(cfg) -> list[Path]:
    root = resolve_root(cfg.root)
    return [root / f"fold_{int(k)}_data.txt" for k in cfg.folds if (root / f"fold_{int(k)}_data.txt").is_file()]


class AdienceDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: adience`` in conf/dataset/adience.yaml."""

    name = "adience"
    config_schema = AdienceDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
