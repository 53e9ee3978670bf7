"""Racial Faces in the Wild (RFW; Wang, Deng, Hu, Tao & Huang, ICCV 2019): four test subsets
(African, Asian, Caucasian, Indian) of MS-Celeb-1M identities, each with an LFW-style protocol of
10 disjoint folds x (300 genuine + 300 impostor) pairs.

Layout (what the ``test.tar.gz`` the authors send unpacks to; the root may be the folder holding
``test/`` or ``test/`` itself)::

    root/test/data/<Race>/<id>/<id>_000N.jpg        e.g. data/African/m.0c7mh2/m.0c7mh2_0001.jpg
    root/test/txts/<Race>/<Race>_pairs.txt          6,000 lines: fold 1's 300 genuine then 300 impostor, fold 2 ...
    root/test/txts/<Race>/<Race>_people.txt         id<TAB>count
    root/test/txts/<Race>/<Race>_images.txt         image<TAB>label (not needed)

``txts/<Race>_pairs.txt`` (flat, as some copies are repacked) is accepted too. Pair lines:
genuine ``id<TAB>n1<TAB>n2``, impostor ``id1<TAB>n1<TAB>id2<TAB>n2``; image ``n`` of ``id`` is
``<id>_%04d.jpg``. The file has no header; fold k is lines 600k+1 .. 600(k+1) (the file's line
count divided by the number of folds).

Labels: ``race`` is the subset an identity is filed under (the RFW authors' assignment), per
subject. RFW gives no sex labels.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from evalkit.config import DatasetConfig, ProtocolConfig
from evalkit.data.adapters import DatasetInfo, read_lines, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.lfw import identity_images
from evalkit.data.samples import DatasetError, Pairs, Samples

RACES = ("African", "Asian", "Caucasian", "Indian")
_IMAGE_RE = re.compile(r"^(?P<id>.+)_(?P<num>\d{4})\.jpg$")

INFO = DatasetInfo(
    name="rfw",
    title="Racial Faces in the Wild (Wang, Deng, Hu, Tao & Huang, ICCV 2019)",
    request="http://www.whdeng.cn/RFW/testing.html: e-mail the authors the signed research-use form; "
            "they send a download link for test.tar.gz (evalkit cannot download it)",
    terms="non-commercial research only; no redistribution; cite Wang et al. 2019 (the RFW agreement)",
    layout="test/data/<Race>/<id>/<id>_000N.jpg     Race in African, Asian, Caucasian, Indian\n"
           "test/txts/<Race>/<Race>_pairs.txt       10 folds x (300 genuine + 300 impostor), no header\n"
           "test/txts/<Race>/<Race>_people.txt      id<TAB>image count\n"
           "(the root may also be test/ itself; txts/<Race>_pairs.txt is accepted)",
    labels="race: the subset folder an identity is filed under (RFW's own assignment), per subject; no sex labels",
    protocols="protocol=rfw: the official per-race 10-fold pairs (6,000 per race); "
              "protocol.cross_race_impostors=N adds a seeded sample of N impostor pairs between races "
              "(fold -1, outside the official folds); protocol=generated / exhaustive / search also work",
    documented_from="official: the RFW testing page (file list and pair format) and the authors' txts; "
                    "the 600-line fold blocks as LFW's pairs.txt, which RFW follows",
    default_root="${data_dir}/rfw",
)


@dataclass
class RFWDatasetConfig(DatasetConfig):
    name: str = "rfw"
    kind: str = "rfw"
    root: str = "${data_dir}/rfw"
    races: list[str] = field(default_factory=lambda: list(RACES))   # subsets to load


@dataclass
class RFWProtocolConfig(ProtocolConfig):
    """The official RFW protocol: each race's 10 folds x (300 + 300) pairs."""
    name: str = "rfw"
    kind: str = "rfw"
    folds: int = 10                          # fold blocks per pairs file (RFW: 10)
    cross_race_impostors: int = 0            # extra seeded impostor pairs between races (fold -1)
    seed: int = "${seed}"  # type: ignore[assignment]


CONFIG = RFWDatasetConfig
PROTOCOL_CONFIG = RFWProtocolConfig


def _base(root: Path) -> Path:
    """The folder holding data/ and txts/: root/test if present, else root."""
    return root / "test" if (root / "test" / "data").is_dir() or (root / "test" / "txts").is_dir() else root


def pairs_file(root: Path, race: str) -> Path:
    base = _base(root)
    nested = base / "txts" / race / f"{race}_pairs.txt"
    flat = base / "txts" / f"{race}_pairs.txt"
    return nested if nested.is_file() or not flat.is_file() else flat


def sample_id(race: str, ident: str, num: int) -> str:
    return f"{race}/{ident}/{ident}_{int(num):04d}"


def _check_races(races) -> list[str]:
    races = list(races)
    bad = [r for r in races if r not in RACES]
    if bad or not races:
        raise DatasetError(f"dataset.races: unknown RFW subset(s) {bad} (known: {', '.join(RACES)}; case matters)")
    return races


def read_pairs(path: Path, folds: int = 10) -> list[tuple[int, int, str, int, str, int]]:
    """Lines of an RFW pairs file: (line number, fold, id1, n1, id2, n2); genuine lines have
    id2 == id1.

    Raises:
        DatasetError: wrong field count, a non-integer image number, a line count not divisible
        by ``folds`` (each naming the file and line).
    """
    lines = read_lines(path, "RFW pairs file")
    if not lines:
        raise DatasetError(f"{path}: empty pairs file")
    if len(lines) % folds:
        raise DatasetError(f"{path}: {len(lines)} pair lines do not split into {folds} equal folds "
                           f"(RFW: 10 folds x 600 lines)")
    per_fold = len(lines) // folds
    out = []
    for k, (lineno, text) in enumerate(lines):
        parts = text.split()
        if len(parts) == 3:
            ident, n1, n2 = parts
            id2 = ident
        elif len(parts) == 4:
            ident, n1, id2, n2 = parts
        else:
            raise DatasetError(f"{where(path, lineno)}: expected a genuine pair 'id<TAB>n1<TAB>n2' or an impostor "
                               f"pair 'id1<TAB>n1<TAB>id2<TAB>n2', got {len(parts)} field(s): {text!r}")
        for n in (n1, n2):
            if not re.fullmatch(r"\d{1,4}", n) or int(n) < 1:
                raise DatasetError(f"{where(path, lineno)}: image number {n!r} is not an integer 1..9999")
        if len(parts) == 4 and id2 == ident:
            raise DatasetError(f"{where(path, lineno)}: an impostor line names the same identity twice ({ident!r})")
        out.append((lineno, k // per_fold, ident, int(n1), id2, int(n2)))
    return out


def read_people(path: Path) -> dict[str, int]:
    """id -> image count from ``<Race>_people.txt`` (``id<TAB>count``)."""
    people = {}
    for lineno, text in read_lines(path, "RFW people file"):
        parts = text.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{where(path, lineno)}: expected 'id<TAB>count', got {text!r}")
        if parts[0] in people:
            raise DatasetError(f"{where(path, lineno)}: identity {parts[0]!r} listed twice")
        people[parts[0]] = int(parts[1])
    return people


def load(cfg) -> Samples:
    return load_rfw(cfg.root, races=list(cfg.races))


def load_rfw(root, races=RACES) -> Samples:
    """The RFW samples table (attribute ``race``): every ``<id>_NNNN.jpg`` under
    ``data/<Race>/<id>/``, plus every image a pairs file names that is missing on disk (kept: its
    missing file becomes a recorded failure, counted in its race)."""
    root = resolve_root(root)
    races = _check_races(races)
    base = _base(root)
    data = base / "data"
    entries: dict[str, tuple[str, str, str]] = {}    # id -> (path, subject, race)
    for race in races:
        rdir = data / race
        if rdir.is_dir():
            for ident, num, path in identity_images(rdir, _IMAGE_RE):
                entries[sample_id(race, ident, num)] = (path, ident, race)
        pf = pairs_file(root, race)
        if pf.is_file():
            for _, _, i1, n1, i2, n2 in read_pairs(pf, 1):
                for ident, n in ((i1, n1), (i2, n2)):
                    sid = sample_id(race, ident, n)
                    entries.setdefault(sid, (str(rdir / ident / f"{ident}_{n:04d}.jpg"), ident, race))
    if not entries:
        raise DatasetError(f"no RFW images or pairs found under {root} for {races}: expected "
                           f"{data}/<Race>/<id>/<id>_0001.jpg and {base}/txts/<Race>/<Race>_pairs.txt "
                           "(see `evalkit data info rfw`)")
    ids = sorted(entries)
    subjects = np.asarray([entries[s][1] for s in ids])
    race_of = {}
    for s in ids:
        subj, race = entries[s][1], entries[s][2]
        if race_of.setdefault(subj, race) != race:
            raise DatasetError(f"RFW identity {subj!r} is filed under two subsets ({race_of[subj]}, {race}) in {data}")
    return Samples(
        name="rfw", ids=np.asarray(ids), paths=np.asarray([os.path.abspath(entries[s][0]) for s in ids]),
        subjects=subjects, attributes={"race": np.asarray([entries[s][2].lower() for s in ids])},
        label_sources={"race": f"the RFW subset folder {data}/<Race>/ an identity is filed under (RFW's own "
                               "assignment: African, Asian, Caucasian, Indian, lower-cased); per subject"})


def official_pairs(dataset_cfg, samples: Samples, protocol_cfg=None) -> Pairs:
    """The official RFW protocol over ``samples``: every race's pairs file, its folds 0..9;
    with ``protocol_cfg.cross_race_impostors = N`` a seeded sample of N impostor pairs between
    images of different races is appended (fold -1)."""
    root = resolve_root(dataset_cfg.root)
    races = _check_races(dataset_cfg.races)
    folds = int(getattr(protocol_cfg, "folds", 10) or 10)
    lookup = {s: i for i, s in enumerate(samples.ids)}
    a, b, mated, fold = [], [], [], []
    for race in races:
        pf = pairs_file(root, race)
        if not pf.is_file():
            raise DatasetError(f"RFW pairs file not found: {pf} (protocol=rfw needs txts/{race}/{race}_pairs.txt)")
        for lineno, f, i1, n1, i2, n2 in read_pairs(pf, folds):
            ia = lookup.get(sample_id(race, i1, n1))
            ib = lookup.get(sample_id(race, i2, n2))
            if ia is None or ib is None:
                raise DatasetError(f"{where(pf, lineno)}: image {sample_id(race, *((i1, n1) if ia is None else (i2, n2)))!r} "
                                   "is not in the samples table")
            a.append(ia)
            b.append(ib)
            mated.append(i1 == i2)
            fold.append(f)
    n_cross = int(getattr(protocol_cfg, "cross_race_impostors", 0) or 0)
    if n_cross:
        ca, cb = cross_race_impostors(samples, n_cross, int(protocol_cfg.seed))
        a += ca.tolist()
        b += cb.tolist()
        mated += [False] * len(ca)
        fold += [-1] * len(ca)
    pairs = Pairs(np.asarray(a), np.asarray(b), np.asarray(mated), np.asarray(fold), "rfw")
    pairs.check_against(samples)
    return pairs


def cross_race_impostors(samples: Samples, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of ``n`` distinct impostor pairs (a < b) whose images are of different
    races (uniform over such pairs, drawn without replacement by rejection)."""
    race = samples.attributes["race"]
    if len(np.unique(race)) < 2:
        raise DatasetError("cross_race_impostors needs at least two RFW races loaded")
    rng = np.random.default_rng(seed)
    total = len(samples) * (len(samples) - 1) // 2
    same = sum(int(c) * (int(c) - 1) // 2 for c in np.unique(race, return_counts=True)[1])
    if n > total - same:
        raise DatasetError(f"cross_race_impostors={n}: only {total - same} cross-race image pairs exist")
    seen: set = set()
    out_a, out_b = [], []
    while len(out_a) < n:
        k = max(2 * (n - len(out_a)), 64)
        i, j = rng.integers(0, len(samples), k), rng.integers(0, len(samples), k)
        for x, y in zip(i.tolist(), j.tolist()):
            lo, hi = min(x, y), max(x, y)
            if race[lo] == race[hi] or (lo, hi) in seen:
                continue
            seen.add((lo, hi))
            out_a.append(lo)
            out_b.append(hi)
            if len(out_a) == n:
                break
    return np.asarray(out_a, dtype=np.int64), np.asarray(out_b, dtype=np.int64)


def inspect(root: Path) -> list[str]:
    base = _base(root)
    out = [f"data folder: {base / 'data'}" + ("" if (base / "data").is_dir() else " (MISSING)")]
    for race in RACES:
        rdir = base / "data" / race
        n_id = sum(1 for d in os.scandir(rdir) if d.is_dir()) if rdir.is_dir() else 0
        n_img = sum(1 for d in os.scandir(rdir) if d.is_dir() for f in os.scandir(d.path)
                    if _IMAGE_RE.match(f.name)) if rdir.is_dir() else 0
        pf = pairs_file(root, race)
        try:
            pairs = f"{len(read_pairs(pf))} pairs" if pf.is_file() else "pairs file MISSING"
        except DatasetError as e:
            pairs = f"pairs file unreadable: {e}"
        out.append(f"{race}: {n_id} identities, {n_img} images; {pf.relative_to(root) if pf.is_relative_to(root) else pf}: {pairs}")
    return out


__all__ = ["RACES", "INFO", "RFWDatasetConfig", "RFWProtocolConfig", "load", "load_rfw", "read_pairs",
           "read_people", "official_pairs", "cross_race_impostors", "inspect", "pairs_file", "sample_id"]


def annotation_files(cfg) -> list[Path]:
    """The files a run depends on besides images (hashed into the run record)."""
    root = resolve_root(cfg.root)
    out = []
    for race in _check_races(cfg.races):
        base = pairs_file(root, race).parent
        out += [base / f"{race}_{k}.txt" for k in ("pairs", "people")]
    return [p for p in out if p.is_file()]


class RFWDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: rfw`` in conf/dataset/rfw.yaml."""

    name = "rfw"
    config_schema = RFWDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
