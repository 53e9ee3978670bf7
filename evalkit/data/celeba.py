"""CelebA (Liu, Luo, Wang & Tang, ICCV 2015): 202,599 images of 10,177 identities, 40 binary
attributes per image.

Layout (the official Google Drive folders; the flat layout torchvision uses is accepted too)::

    root/Img/img_align_celeba/000001.jpg      (or root/img_align_celeba/)
    root/Anno/identity_CelebA.txt             '000001.jpg 2880' per line
    root/Anno/list_attr_celeba.txt            line 1: image count; line 2: the 40 attribute names;
                                              then '000001.jpg -1  1  1 -1 ...' (1 yes, -1 no)
    root/Eval/list_eval_partition.txt         '000001.jpg 0' (0 train, 1 val, 2 test; optional)

Labels (annotators' judgements, per image in the file): the attributes named in
``dataset.celeba_attributes`` (default Male, Young, Pale_Skin). ``Male`` becomes ``sex``
(male / female); any other becomes its lower-cased name with values ``<name>`` / ``not_<name>``.
Attributes listed in ``dataset.per_subject`` (default Male) are resolved per subject: an identity
whose images disagree is ``conflict``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from evalkit.config import DatasetConfig
from evalkit.data.adapters import DatasetInfo, found_files, level_note, per_subject, read_lines, resolve_root, where
from evalkit.data.base import Dataset
from evalkit.data.samples import DatasetError, Samples

IMAGE_DIRS = ("Img/img_align_celeba", "img_align_celeba")
ANNO_DIRS = ("Anno", ".")
PARTITIONS = {"train": "0", "val": "1", "test": "2"}

INFO = DatasetInfo(
    name="celeba",
    title="CelebFaces Attributes (CelebA; Liu, Luo, Wang & Tang, ICCV 2015)",
    request="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive / Baidu links on that page; "
            "the identity file is shared on request in some mirrors)",
    terms="non-commercial research and educational purposes only (the CelebA agreement); no redistribution",
    layout="Img/img_align_celeba/000001.jpg   (or img_align_celeba/)\n"
           "Anno/identity_CelebA.txt          000001.jpg 2880\n"
           "Anno/list_attr_celeba.txt         count line, 40 names, then 000001.jpg -1  1 ...\n"
           "Eval/list_eval_partition.txt      optional: 000001.jpg 0|1|2",
    labels="the attributes in dataset.celeba_attributes from list_attr_celeba.txt (annotated per image): Male -> "
           "sex (per subject by default, dataset.per_subject), Young -> young, Pale_Skin -> pale_skin (per image)",
    protocols="protocol=generated (mated pairs within an identity, seeded non-mated sample), exhaustive, search; "
              "CelebA has no official verification pairs",
    documented_from="official: the CelebA README.txt shipped with the annotations (file formats above)",
    default_root="${data_dir}/celeba",
)


@dataclass
class CelebADatasetConfig(DatasetConfig):
    name: str = "celeba"
    kind: str = "celeba"
    root: str = "${data_dir}/celeba"
    celeba_attributes: list[str] = field(default_factory=lambda: ["Male", "Young", "Pale_Skin"])
    per_subject: list[str] = field(default_factory=lambda: ["Male"])   # CelebA attributes resolved per identity
    partition: Optional[str] = None          # train | val | test (list_eval_partition.txt); None: every image


CONFIG = CelebADatasetConfig


def _find(root: Path, names: tuple[str, ...], rel: str) -> Path:
    for d in names:
        if (root / d / rel).exists():
            return root / d / rel
    return root / names[0] / rel


def attribute_name(celeba: str) -> str:
    return "sex" if celeba == "Male" else celeba.lower()


def attribute_value(celeba: str, v: str) -> str:
    if celeba == "Male":
        return "male" if v == "1" else "female"
    return celeba.lower() if v == "1" else f"not_{celeba.lower()}"


def read_identities(path: Path) -> dict[str, tuple[str, int]]:
    """image -> (identity, line number) from ``identity_CelebA.txt``."""
    out = {}
    for lineno, text in read_lines(path, "CelebA identity file"):
        parts = text.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{where(path, lineno)}: expected '<image>.jpg <identity number>', got {text!r}")
        if parts[0] in out:
            raise DatasetError(f"{where(path, lineno)}: image {parts[0]!r} listed twice")
        out[parts[0]] = (parts[1], lineno)
    return out


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """(attribute names, image -> values '1'/'-1') from ``list_attr_celeba.txt``.

    Raises:
        DatasetError: a first line that is not the image count, a count that disagrees with the
        rows, a row with the wrong number of values, a value other than 1 / -1 (file and line).
    """
    lines = read_lines(path, "CelebA attribute file")
    if len(lines) < 2:
        raise DatasetError(f"{path}: expected a count line and a line of attribute names")
    (l1, count), (l2, names_line) = lines[0], lines[1]
    if not count.strip().isdigit():
        raise DatasetError(f"{where(path, l1)}: the first line must be the number of images, got {count!r}")
    names = names_line.split()
    out = {}
    for lineno, text in lines[2:]:
        parts = text.split()
        if len(parts) != len(names) + 1:
            raise DatasetError(f"{where(path, lineno)}: {len(parts) - 1} values for {len(names)} attributes")
        bad = [v for v in parts[1:] if v not in ("1", "-1")]
        if bad:
            raise DatasetError(f"{where(path, lineno)}: attribute values must be 1 or -1, got {bad[0]!r}")
        if parts[0] in out:
            raise DatasetError(f"{where(path, lineno)}: image {parts[0]!r} listed twice")
        out[parts[0]] = parts[1:]
    if int(count) != len(out):
        raise DatasetError(f"{where(path, l1)}: declares {int(count)} images, the file lists {len(out)}")
    return names, out


def load(cfg) -> Samples:
    return load_celeba(cfg.root, list(cfg.celeba_attributes), list(cfg.per_subject), cfg.partition)


def load_celeba(root, celeba_attributes=("Male", "Young", "Pale_Skin"), per_subject_attrs=("Male",),
                partition: str | None = None) -> Samples:
    """Every image ``identity_CelebA.txt`` lists (subject = its identity number), with the chosen
    attributes. An image in the identity file but absent from the attribute file is a DatasetError;
    a listed image missing on disk is kept (recorded missing-file failure)."""
    root = resolve_root(root)
    img_dir = _find(root, IMAGE_DIRS, "")
    id_file = _find(root, ANNO_DIRS, "identity_CelebA.txt")
    attr_file = _find(root, ANNO_DIRS, "list_attr_celeba.txt")
    idents = read_identities(id_file)
    names, values = read_attributes(attr_file)
    chosen = list(dict.fromkeys(celeba_attributes))
    for a in chosen + list(per_subject_attrs):
        if a not in names:
            hint = difflib.get_close_matches(a, names, n=1)
            raise DatasetError(f"CelebA attribute {a!r} is not in {attr_file} (line 2)"
                               + (f"; did you mean {hint[0]!r}?" if hint else ""))
    keep = sorted(idents)
    if partition is not None:
        if partition not in PARTITIONS:
            raise DatasetError(f"dataset.partition must be one of {list(PARTITIONS)} or null, got {partition!r}")
        pfile = root / "Eval" / "list_eval_partition.txt"
        if not pfile.is_file():
            pfile = root / "list_eval_partition.txt"
        part = {}
        for lineno, text in read_lines(pfile, "CelebA partition file"):
            p = text.split()
            if len(p) != 2 or p[1] not in PARTITIONS.values():
                raise DatasetError(f"{where(pfile, lineno)}: expected '<image>.jpg 0|1|2', got {text!r}")
            part[p[0]] = p[1]
        keep = [k for k in keep if part.get(k) == PARTITIONS[partition]]
        if not keep:
            raise DatasetError(f"no CelebA images in partition {partition!r} ({pfile})")
    for k in keep:
        if k not in values:
            raise DatasetError(f"{where(id_file, idents[k][1])}: image {k!r} has no row in {attr_file}")
    subjects = np.asarray([idents[k][0] for k in keep])
    attrs, sources = {}, {}
    for a in chosen:
        j = names.index(a)
        labels = np.asarray([attribute_value(a, values[k][j]) for k in keep])
        level, conflicts = "image", 0
        if a in per_subject_attrs:
            labels, conflicts = per_subject(subjects, labels)
            level = "subject"
        attrs[attribute_name(a)] = labels
        sources[attribute_name(a)] = (f"column {a} of {attr_file} (CelebA's annotators, per image: 1 -> "
                                      f"{attribute_value(a, '1')}, -1 -> {attribute_value(a, '-1')}); "
                                      + level_note(level, conflicts))
    return Samples(name="celeba", ids=np.asarray([k.rsplit(".", 1)[0] for k in keep]),
                   paths=np.asarray([str(img_dir / k) for k in keep]), subjects=subjects,
                   attributes=attrs, label_sources=sources)


def inspect(root: Path) -> list[str]:
    out = []
    for rel, cands in (("", IMAGE_DIRS), ("identity_CelebA.txt", ANNO_DIRS), ("list_attr_celeba.txt", ANNO_DIRS)):
        p = _find(root, cands, rel)
        out += found_files(root, [str(p.relative_to(root))])
    attr = _find(root, ANNO_DIRS, "list_attr_celeba.txt")
    if attr.is_file():
        try:
            names, values = read_attributes(attr)
            out.append(f"list_attr_celeba.txt: {len(values):,} images, attributes: {' '.join(names)}")
        except DatasetError as e:
            out.append(f"unreadable: {e}")
    return out


__all__ = ["INFO", "CelebADatasetConfig", "load", "load_celeba", "read_identities", "read_attributes", "inspect"]


def annotation_files(cfg) -> list[Path]:
    root = resolve_root(cfg.root)
    out = [_find(root, ANNO_DIRS, "identity_CelebA.txt"), _find(root, ANNO_DIRS, "list_attr_celeba.txt")]
    if cfg.partition is not None:
        out.append(root / "Eval" / "list_eval_partition.txt")
    return [p for p in out if p.is_file()]


class CelebADataset(Dataset):
    """The adapter as a registrable class (the dataset plug-in contract: ``name``,
    ``config_schema``, ``load(cfg)``, ``files(cfg)``); ``kind: celeba`` in conf/dataset/celeba.yaml."""

    name = "celeba"
    config_schema = CelebADatasetConfig
    identities = INFO.identities

    def load(self, cfg) -> Samples:
        return load(cfg)

    def files(self, cfg) -> list[Path]:
        return annotation_files(cfg)
