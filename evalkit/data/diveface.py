"""DiveFace (Morales, Fierrez, Vera-Rodriguez & Tolosana, IEEE TPAMI 2021 / arXiv:1902.00334):
about 24,000 MegaFace identities in six classes of 4,000 (three ethnic groups x female, male),
distributed as lists of MegaFace image paths.

Layout (github.com/BiDAlab/DiveFace: ``files/`` and ``create_diveface.py``)::

    root/files/Group{1,2,3}_{Female,Male}.txt   one '<identity>/<image>' per line, e.g.
                                                100016927@N02_identity_1/9469948405_7.jpg
    root/Group1_Female/<identity>/<image>       what create_diveface.py copies out of MegaFace, or
    dataset.megaface=DIR                        the MegaFace folder the lists point into

Groups (the DiveFace README): Group 1 East Asian, Group 2 Sub-Saharan and South Indian, Group 3
Caucasian. ``*_balanced.txt`` lists (3 images per identity) are used with ``dataset.balanced=true``.
Labels are per subject (the list an identity is in); an identity in two lists is a DatasetError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, found_files, read_lines, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.samples import DatasetError, Samples

GROUPS = {"Group1": "east_asian", "Group2": "subsaharan_southindian", "Group3": "caucasian"}
SEXES = {"Female": "female", "Male": "male"}
CLASSES = tuple(f"{g}_{s}" for g in GROUPS for s in SEXES)
_LINE_RE = re.compile(r"^(?P<ident>[^/\s]+)/(?P<image>[^/\s]+\.(?:jpg|jpeg|png))$", re.IGNORECASE)

INFO = DatasetInfo(
    name="diveface",
    title="DiveFace (Morales, Fierrez, Vera-Rodriguez & Tolosana; SensitiveNets, arXiv:1902.00334)",
    request="the identity lists from github.com/BiDAlab/DiveFace (files/); the images from MegaFace (University "
            "of Washington, on request; MegaFace has since been retired)",
    terms="non-commercial research, under the same conditions as MegaFace (the DiveFace README)",
    layout="files/Group{1,2,3}_{Female,Male}.txt   <identity>/<image> per line (MegaFace paths)\n"
           "Group1_Female/<identity>/<image> ...  (create_diveface.py's copy) or dataset.megaface=MEGAFACE_DIR",
    labels="race (Group1 east_asian, Group2 subsaharan_southindian, Group3 caucasian) and sex from the list an "
           "identity is in; per subject. DiveFace's authors annotated them semi-automatically",
    protocols="protocol=generated, exhaustive or search (DiveFace has no official pair list)",
    documented_from="official: the DiveFace README and create_diveface.py (which reads '<identity>/<image>' lines)",
    default_root="${data_dir}/diveface",
)


@dataclass
class DiveFaceDatasetConfig(DatasetConfig):
    name: str = "diveface"
    kind: str = "diveface"
    root: str = "${data_dir}/diveface"
    megaface: Optional[str] = None           # MegaFace folder the lists point into (None: root/<class>/...)
    balanced: bool = False                   # use the *_balanced.txt lists (3 images per identity)


CONFIG = DiveFaceDatasetConfig


def list_file(root: Path, cls: str, balanced: bool = False) -> Path:
    name = f"{cls}_balanced.txt" if balanced else f"{cls}.txt"
    return root / "files" / name if (root / "files" / name).is_file() or not (root / name).is_file() else root / name


def read_list(path: Path) -> list[tuple[int, str, str]]:
    """(line number, identity, image) of a DiveFace list."""
    out = []
    for lineno, text in read_lines(path, "DiveFace list"):
        m = _LINE_RE.match(text.strip())
        if not m:
            raise DatasetError(f"{where(path, lineno)}: expected '<identity>/<image>.jpg', got {text!r}")
        out.append((lineno, m["ident"], m["image"]))
    return out


def load(cfg) -> Samples:
    return load_diveface(cfg.root, cfg.megaface, cfg.balanced)


def load_diveface(root, megaface: str | None = None, balanced: bool = False) -> Samples:
    root = resolve_root(root)
    ids, paths, subjects, races, sexes = [], [], [], [], []
    owner: dict[str, str] = {}
    missing = []
    for cls in CLASSES:
        path = list_file(root, cls, balanced)
        if not path.is_file():
            missing.append(str(path))
            continue
        group, sex = cls.split("_")
        base = Path(megaface).expanduser().absolute() if megaface else root / cls
        for lineno, ident, image in read_list(path):
            here = where(path, lineno)
            prev = owner.setdefault(ident, cls)
            if prev != cls:
                raise DatasetError(f"{here}: identity {ident!r} is also in {prev}.txt")
            ids.append(f"{ident}/{image}")
            paths.append(str(base / ident / image))
            subjects.append(ident)
            races.append(GROUPS[group])
            sexes.append(SEXES[sex])
    if not ids:
        raise DatasetError(f"no DiveFace lists found: {', '.join(missing)}")
    dup = len(ids) - len(set(ids))
    if dup:
        raise DatasetError(f"{dup} image(s) listed twice across the DiveFace lists under {root / 'files'}")
    src = "the DiveFace list (files/<Group>_<Sex>.txt) an identity is in; per subject"
    return Samples(name="diveface", ids=np.asarray(ids), paths=np.asarray(paths), subjects=np.asarray(subjects),
                   attributes={"sex": np.asarray(sexes), "race": np.asarray(races)},
                   label_sources={"sex": src + " (Female, Male)",
                                  "race": src + " (Group1 east_asian, Group2 subsaharan_southindian, Group3 caucasian)"
                                  + (f"; lists missing: {', '.join(missing)}" if missing else "")})


def inspect(root: Path) -> list[str]:
    out = []
    for cls in CLASSES:
        p = list_file(root, cls)
        if p.is_file():
            try:
                rows = read_list(p)
                out.append(f"{p.relative_to(root)}: {len({r[1] for r in rows}):,} identities, {len(rows):,} images; "
                           f"copied images folder {cls}/: {'present' if (root / cls).is_dir() else 'absent'}")
            except DatasetError as e:
                out.append(f"unreadable: {e}")
        else:
            out += found_files(root, [f"files/{cls}.txt"])
    return out


__all__ = ["INFO", "DiveFaceDatasetConfig", "CLASSES", "GROUPS", "read_list", "load", "load_diveface", "inspect"]


def annotation_files(cfg) -> list[Path]:
    root = resolve_root(cfg.root)
    return [p for p in (list_file(root, c, cfg.balanced) for c in CLASSES) if p.is_file()]


class DiveFaceDataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: diveface`` in conf/dataset/diveface.yaml."""

    name = "diveface"
    config_schema = DiveFaceDatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
