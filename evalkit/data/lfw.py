"""Labeled Faces in the Wild (LFW): samples, demographic labels and the official pair protocols.

Layout expected under ``root`` (what the official downloads unpack to; see ``datasets/lfw/README.md``
and :func:`evalkit.data.download.download_lfw`)::

    root/
      lfw-deepfunneled/NAME/NAME_NNNN.jpg   (or lfw/ or lfw_funneled/)
      people.txt                            identities and image counts, 10 folds
      pairs.txt                             View 2: 10 folds x (300 matched + 300 mismatched)
      pairsDevTrain.txt, pairsDevTest.txt   View 1: 1,100 + 1,100 and 500 + 500 pairs
      labels/male_names.txt                 per-image sex lists (Afifi & Abdelhamed, "AFIF4")
      labels/female_names.txt
      labels/lfw_race_dict.json             identity -> race label(s) (usc-sail mica-race-from-face)

Demographic labels come only from those annotation files, never from a model. Missing and
disagreeing annotations are kept as explicit states (``unlabelled``, ``conflict``, ``multiple``).

Sample ids are ``"NAME/NAME_NNNN"`` (directory / file stem), so they are stable across machines.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from evalkit.data.base import Dataset
from evalkit.data.samples import CONFLICT, MULTIPLE, UNLABELLED, DatasetError, Pairs, Samples

__all__ = [
    "IMAGE_DIR_CANDIDATES",
    "PROTOCOL_FILES",
    "MALE_NAMES_FILE",
    "FEMALE_NAMES_FILE",
    "RACE_FILE",
    "find_images_dir",
    "read_people",
    "read_sex_lists",
    "image_sex_labels",
    "subject_sex_by_majority",
    "read_race_dict",
    "race_label",
    "load_lfw",
    "lfw_pairs",
    "lfw_protocol",
    "sample_id",
    "subject_labels",
]

#: Image folders tried, in order, when ``images_dir`` is not given.
IMAGE_DIR_CANDIDATES = ("lfw-deepfunneled", "lfw", "lfw_funneled")

#: Protocol (split) name -> pairs file under the LFW root.
PROTOCOL_FILES = {
    "view2": "pairs.txt",
    "view1_train": "pairsDevTrain.txt",
    "view1_test": "pairsDevTest.txt",
}

MALE_NAMES_FILE = "labels/male_names.txt"
FEMALE_NAMES_FILE = "labels/female_names.txt"
RACE_FILE = "labels/lfw_race_dict.json"

MALE = "male"
FEMALE = "female"

# "George_W_Bush_0010.jpg": a name without whitespace or path separators, "_", 4 digits, ".jpg".
_IMAGE_FILE_RE = re.compile(r"^(?P<name>[^\s/\\]+)_(?P<num>\d{4})\.jpg$")

_SEX_SOURCE = (
    "{male} and {female} under the LFW root: per-image binary sex lists by M. Afifi & "
    "A. Abdelhamed (\"AFIF4\", 2019; the lfw-gender release, copied from "
    "github.com/Lukeli0425/Gender-Classification @ efdba063). An image is male, female, "
    "conflict (in both lists) or unlabelled (in neither); a subject takes the majority of its "
    "images' male/female labels, a male/female tie is conflict, and a subject without any "
    "male/female image is conflict if one of its images is in both lists, else unlabelled; "
    "every image carries its subject's label."
)
_RACE_SOURCE = (
    "{race} under the LFW root: identity -> race label(s) from "
    "github.com/usc-sail/mica-race-from-face (lfw_race_dict.json, MIT licence). A single "
    "label is used as given (caucasian, african, latino, eastasian, asianindian, ...); a "
    "comma-separated multi-label becomes 'multiple'; an identity absent from the file is "
    "'unlabelled'."
)


def sample_id(name: str, number: int) -> str:
    """The LFW sample id of image ``number`` (1-based) of identity ``name``: ``"NAME/NAME_NNNN"``."""
    return f"{name}/{name}_{int(number):04d}"


# --------------------------------------------------------------------------------------------
# images and people


def find_images_dir(root: str | os.PathLike, images_dir: str | None = None) -> Path:
    """The LFW image folder under ``root``.

    With ``images_dir`` given, that folder (relative to ``root``, or absolute) must exist.
    Otherwise the first existing of ``lfw-deepfunneled/``, ``lfw/``, ``lfw_funneled/``.

    Raises:
        DatasetError: no such folder; the message says what to put where.
    """
    root = Path(root)
    candidates = (images_dir,) if images_dir else IMAGE_DIR_CANDIDATES
    for cand in candidates:
        path = Path(cand) if Path(cand).is_absolute() else root / cand
        if path.is_dir():
            return path.absolute()
    tried = ", ".join(str(root / c) for c in candidates)
    raise DatasetError(
        f"no LFW image folder found (tried {tried}). Put the LFW images at "
        f"{root / 'lfw-deepfunneled'}/NAME/NAME_NNNN.jpg (unpack "
        "http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz into the LFW root), or run "
        "`evalkit data download lfw`."
    )


def identity_images(images_dir: Path, pattern: re.Pattern = _IMAGE_FILE_RE):
    """(identity, number, path) for every ``IDENTITY/IDENTITY_NNNN.jpg`` file below ``images_dir``
    (LFW's layout, which RFW follows): ``pattern``'s first group is the identity, which must be
    the folder's name, and its ``num`` group the image number. Anything else (``.DS_Store``, an
    image in the wrong folder, a folder named like an image) is not part of the dataset and is
    passed over."""
    with os.scandir(images_dir) as dirs:
        for d in dirs:
            if not d.is_dir():
                continue
            with os.scandir(d.path) as files:
                for f in files:
                    m = pattern.match(f.name)
                    if m and m.group(1) == d.name and f.is_file():
                        yield d.name, int(m["num"]), f.path


def _scan_images(images_dir: Path) -> dict[str, tuple[str, int]]:
    """sample id -> (identity, number) for every ``NAME/NAME_NNNN.jpg`` on disk
    (:func:`identity_images`)."""
    return {sample_id(name, num): (name, num) for name, num, _ in identity_images(images_dir)}


def read_people(path: str | os.PathLike) -> dict[str, int]:
    """Identity -> image count from an LFW people file.

    Two formats (LFW README, section 3): ``people.txt`` (first line the number of sets, then
    per set a count N and N lines ``NAME<TAB>COUNT``) and ``peopleDevTrain.txt`` /
    ``peopleDevTest.txt`` (first line N, then N lines ``NAME<TAB>COUNT``).

    Raises:
        DatasetError: malformed line or wrong counts, naming the file and line number.
    """
    path = Path(path)
    lines = _read_lines(path)
    it = iter(lines)

    def need(what: str) -> tuple[int, str]:
        try:
            return next(it)
        except StopIteration:
            raise DatasetError(f"{path}: file ended early, expected {what}") from None

    def as_count(lineno: int, text: str, what: str) -> int:
        if not re.fullmatch(r"\d+", text):
            raise DatasetError(f"{path}, line {lineno}: expected {what} (an integer), got {text!r}")
        return int(text)

    def person(lineno: int, text: str) -> tuple[str, int]:
        fields = text.split()
        if len(fields) != 2 or not re.fullmatch(r"\d+", fields[1]) or int(fields[1]) < 1:
            raise DatasetError(f"{path}, line {lineno}: expected 'NAME COUNT', got {text!r}")
        return fields[0], int(fields[1])

    people: dict[str, int] = {}

    def add(lineno: int, name: str, count: int) -> None:
        if name in people:
            raise DatasetError(f"{path}, line {lineno}: identity {name!r} listed twice")
        people[name] = count

    lineno, first = need("a header line")
    n_first = as_count(lineno, first, "the number of sets or people")
    rest = lines[1:]
    # people.txt: the second line is a bare count; the Dev files: it is already 'NAME COUNT'.
    folded = bool(rest) and re.fullmatch(r"\d+", rest[0][1]) is not None
    if folded:
        for _ in range(n_first):
            lineno, text = need("a per-set count")
            n = as_count(lineno, text, "the number of people in the set")
            for _ in range(n):
                lineno, text = need("a 'NAME COUNT' line")
                add(lineno, *person(lineno, text))
    else:
        for _ in range(n_first):
            lineno, text = need("a 'NAME COUNT' line")
            add(lineno, *person(lineno, text))
    extra = next(it, None)
    if extra is not None:
        raise DatasetError(f"{path}, line {extra[0]}: unexpected line after the declared counts")
    return people


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-blank line; CRLF and LF both fine."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e})") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


# --------------------------------------------------------------------------------------------
# sex labels


def read_sex_lists(male_file: str | os.PathLike, female_file: str | os.PathLike) -> tuple[set[str], set[str]]:
    """The sample ids named in the male and in the female list.

    Each non-blank line must be an LFW image file name ``NAME_NNNN.jpg``; blank lines are
    skipped, surrounding whitespace (including ``\\r``) ignored.

    Raises:
        DatasetError: a malformed line, naming the file and line number.
    """
    return _read_image_list(Path(male_file)), _read_image_list(Path(female_file))


def _read_image_list(path: Path) -> set[str]:
    ids: set[str] = set()
    for lineno, text in _read_lines(path):
        m = _IMAGE_FILE_RE.match(text)
        if not m:
            raise DatasetError(
                f"{path}, line {lineno}: expected an LFW image file name like "
                f"'George_W_Bush_0010.jpg', got {text!r}"
            )
        ids.add(sample_id(m["name"], int(m["num"])))
    return ids


def image_sex_labels(ids: Iterable[str], male: set[str], female: set[str]) -> np.ndarray:
    """Per-image label: ``male``, ``female``, ``conflict`` (in both lists) or ``unlabelled``."""
    out = []
    for s in ids:
        in_m, in_f = s in male, s in female
        out.append(CONFLICT if in_m and in_f else MALE if in_m else FEMALE if in_f else UNLABELLED)
    return np.asarray(out, dtype=str)


def subject_sex_by_majority(subjects: Iterable[str], image_labels: Iterable[str]) -> dict[str, str]:
    """Subject -> sex from its images' labels (as given by :func:`image_sex_labels`).

    Rule: the majority of the subject's ``male``/``female`` image labels; a tie between male
    and female votes is ``conflict``; with no male/female vote at all the subject is
    ``conflict`` if any of its images is ``conflict`` (in both lists), else ``unlabelled``.
    """
    votes: dict[str, Counter] = {}
    for subj, lab in zip(subjects, image_labels):
        votes.setdefault(str(subj), Counter())[str(lab)] += 1
    out: dict[str, str] = {}
    for subj, c in votes.items():
        m, f = c[MALE], c[FEMALE]
        if m > f:
            out[subj] = MALE
        elif f > m:
            out[subj] = FEMALE
        elif m > 0:
            out[subj] = CONFLICT
        else:
            out[subj] = CONFLICT if c[CONFLICT] else UNLABELLED
    return out


# --------------------------------------------------------------------------------------------
# race labels


def read_race_dict(path: str | os.PathLike) -> dict[str, str]:
    """The identity -> raw label string mapping of ``lfw_race_dict.json``.

    Raises:
        DatasetError: invalid JSON (file and line), not an object, or a non-string value.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}, line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object identity -> label, got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise DatasetError(f"{path}: label of {key!r} must be a string, got {value!r}")
    return data


def race_label(raw: str | None) -> str:
    """One identity's race label: the label itself, ``multiple`` for a comma-separated
    multi-label, ``unlabelled`` when absent or empty."""
    if raw is None:
        return UNLABELLED
    parts = [p.strip().lower() for p in raw.split(",") if p.strip()]
    if not parts:
        return UNLABELLED
    if len(set(parts)) > 1:
        return MULTIPLE
    return parts[0]


# --------------------------------------------------------------------------------------------
# the samples table


def load_lfw(root: str | os.PathLike, images_dir: str | None = None) -> Samples:
    """The LFW samples table (name ``"lfw"``), with attributes ``sex`` and ``race``.

    One sample per image: the union of the images on disk and the images ``people.txt``
    declares (NAME_0001 .. NAME_<count>), so an image the protocols expect but that is missing
    on disk is still a sample (its unreadable file becomes a recorded failure downstream).
    Sample id ``"NAME/NAME_NNNN"``, subject ``"NAME"``, absolute path; sorted by id.

    Attributes (labels from the dataset's annotation files in ``root/labels/``, never a model):

    - ``sex``: each subject's majority label, see :func:`subject_sex_by_majority`;
    - ``race``: :func:`race_label` of the subject's entry in ``lfw_race_dict.json``.

    A missing label file leaves its attribute present with every sample ``unlabelled``, and
    ``label_sources`` says the file was missing.

    Raises:
        DatasetError: no image folder, a malformed people file or label file.
    """
    root = Path(root).absolute()
    img_dir = find_images_dir(root, images_dir)
    entries = _scan_images(img_dir)
    people_file = root / "people.txt"
    if people_file.is_file():
        for name, count in read_people(people_file).items():
            for num in range(1, count + 1):
                entries.setdefault(sample_id(name, num), (name, num))
    if not entries:
        raise DatasetError(f"no LFW images under {img_dir} and no {people_file}")
    ids = sorted(entries)
    subjects = [entries[s][0] for s in ids]
    paths = [str(img_dir / f"{s}.jpg") for s in ids]

    attributes: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}

    male_p, female_p = root / MALE_NAMES_FILE, root / FEMALE_NAMES_FILE
    missing = [p for p in (male_p, female_p) if not p.is_file()]
    if missing:
        attributes["sex"] = np.full(len(ids), UNLABELLED)
        sources["sex"] = (
            f"label file(s) missing: {', '.join(str(p) for p in missing)}; every sample is "
            f"'unlabelled'. Put the Afifi & Abdelhamed (AFIF4) lists at {MALE_NAMES_FILE} and "
            f"{FEMALE_NAMES_FILE} under the LFW root, or run `evalkit data download lfw`."
        )
    else:
        male, female = read_sex_lists(male_p, female_p)
        per_image = image_sex_labels(ids, male, female)
        by_subject = subject_sex_by_majority(subjects, per_image)
        attributes["sex"] = np.asarray([by_subject[s] for s in subjects], dtype=str)
        sources["sex"] = _SEX_SOURCE.format(male=MALE_NAMES_FILE, female=FEMALE_NAMES_FILE)

    race_p = root / RACE_FILE
    if not race_p.is_file():
        attributes["race"] = np.full(len(ids), UNLABELLED)
        sources["race"] = (
            f"label file missing: {race_p}; every sample is 'unlabelled'. Put "
            f"lfw_race_dict.json (usc-sail mica-race-from-face) at {RACE_FILE} under the LFW "
            "root, or run `evalkit data download lfw`."
        )
    else:
        races = read_race_dict(race_p)
        attributes["race"] = np.asarray([race_label(races.get(s)) for s in subjects], dtype=str)
        sources["race"] = _RACE_SOURCE.format(race=RACE_FILE)

    return Samples(
        name="lfw",
        ids=np.asarray(ids),
        paths=np.asarray(paths),
        subjects=np.asarray(subjects),
        attributes=attributes,
        label_sources=sources,
    )


# --------------------------------------------------------------------------------------------
# pair protocols


def lfw_pairs(samples: Samples, pairs_file: str | os.PathLike, name: str | None = None) -> Pairs:
    """Read an LFW pairs file into :class:`Pairs` over ``samples``.

    Formats (LFW README, section 3):

    - ``pairs.txt``: header ``FOLDS<TAB>N`` (``10 300``); then per fold N matched lines
      ``NAME i j`` and N mismatched lines ``NAME1 i NAME2 j``. Folds are numbered 0..FOLDS-1.
    - ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: header ``N``; N matched then N mismatched
      lines; fold ``-1``.

    Image number ``i`` of ``NAME`` is sample id ``"NAME/NAME_%04d"``. Pairs keep the file's
    order. ``name`` defaults to ``"lfw_" + file stem``.

    Raises:
        DatasetError: bad header, malformed line, wrong line count or an image not in
        ``samples`` (file and line number); or ``Pairs.check_against`` failing.
    """
    path = Path(pairs_file)
    if not path.is_file():
        raise DatasetError(f"pairs file not found: {path}")
    lines = _read_lines(path)
    if not lines:
        raise DatasetError(f"{path}: empty pairs file")
    head_no, head = lines[0]
    fields = head.split()
    if not all(re.fullmatch(r"\d+", f) for f in fields) or len(fields) not in (1, 2):
        raise DatasetError(
            f"{path}, line {head_no}: expected a header 'FOLDS PAIRS' (pairs.txt) or 'PAIRS' "
            f"(pairsDev*.txt), got {head!r}"
        )
    if len(fields) == 2:
        n_folds, per_class = int(fields[0]), int(fields[1])
        fold_ids = list(range(n_folds))
    else:
        n_folds, per_class = 1, int(fields[0])
        fold_ids = [-1]
    body = lines[1:]
    expected = n_folds * 2 * per_class
    if len(body) != expected:
        raise DatasetError(
            f"{path}: header (line {head_no}) declares {n_folds} fold(s) x 2 x {per_class} = "
            f"{expected} pair lines, found {len(body)}"
        )

    lookup = {s: i for i, s in enumerate(samples.ids)}

    def index(lineno: int, who: str, num: str) -> int:
        sid = sample_id(who, int(num))
        if sid not in lookup:
            raise DatasetError(f"{path}, line {lineno}: image {sid!r} is not in dataset {samples.name!r}")
        return lookup[sid]

    a, b, mated, fold = [], [], [], []
    k = 0
    for f in fold_ids:
        for is_mated in (True, False):
            for _ in range(per_class):
                lineno, text = body[k]
                k += 1
                parts = text.split()
                if is_mated:
                    ok = len(parts) == 3 and all(_is_image_number(p) for p in parts[1:])
                    if not ok:
                        raise DatasetError(
                            f"{path}, line {lineno}: expected a matched pair 'NAME i j', got {text!r}"
                        )
                    ia, ib = index(lineno, parts[0], parts[1]), index(lineno, parts[0], parts[2])
                else:
                    ok = len(parts) == 4 and _is_image_number(parts[1]) and _is_image_number(parts[3])
                    if not ok:
                        raise DatasetError(
                            f"{path}, line {lineno}: expected a mismatched pair 'NAME1 i NAME2 j', "
                            f"got {text!r}"
                        )
                    ia, ib = index(lineno, parts[0], parts[1]), index(lineno, parts[2], parts[3])
                a.append(ia)
                b.append(ib)
                mated.append(is_mated)
                fold.append(f)
    pairs = Pairs(
        a=np.asarray(a, dtype=np.int64),
        b=np.asarray(b, dtype=np.int64),
        mated=np.asarray(mated, dtype=bool),
        fold=np.asarray(fold, dtype=np.int64),
        name=name or f"lfw_{path.stem}",
    )
    pairs.check_against(samples)
    return pairs


def _is_image_number(text: str) -> bool:
    return re.fullmatch(r"\d+", text) is not None and 1 <= int(text) <= 9999


def lfw_protocol(samples: Samples, root: str | os.PathLike, split: str) -> Pairs:
    """The official LFW protocol ``split`` (a key of :data:`PROTOCOL_FILES`), named ``"lfw_<split>"``.

    Raises:
        DatasetError: unknown split (with a did-you-mean hint) or a bad pairs file.
    """
    if split not in PROTOCOL_FILES:
        hint = difflib.get_close_matches(split, PROTOCOL_FILES, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise DatasetError(f"unknown LFW protocol {split!r} (known: {', '.join(PROTOCOL_FILES)}){extra}")
    return lfw_pairs(samples, Path(root) / PROTOCOL_FILES[split], name=f"lfw_{split}")


def subject_labels(samples: Samples, attribute: str) -> Mapping[str, str]:
    """Subject -> label of a per-subject attribute (the label of the subject's first sample)."""
    labels = samples.attributes[attribute]
    out: dict[str, str] = {}
    for subj, lab in zip(samples.subjects, labels):
        out.setdefault(str(subj), str(lab))
    return out


class LFWDataset(Dataset):
    """``kind: lfw`` (conf/dataset/lfw.yaml, schema evalkit.config.LFWDatasetConfig)."""

    name = "lfw"

    def load(self, cfg) -> Samples:
        return load_lfw(cfg.root, images_dir=cfg.images_dir)

    def files(self, cfg) -> list[Path]:
        from .download import LFW_FILES

        root = Path(cfg.root)
        return [root / f.dest for f in LFW_FILES if (root / f.dest).is_file()]
