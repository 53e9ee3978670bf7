"""The two plain values every dataset adapter and protocol produce.

``Samples``: one row per image (id, path, subject, one label per demographic attribute).
``Pairs``: one row per comparison (indices into a ``Samples``, mated or not, fold).

Labels are strings from the dataset's own annotations; missing or unusable labels are the
explicit states of :mod:`evalkit.labels` (``unlabelled``, ``conflict``, ``multiple``), never empty
strings and never dropped rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..labels import CONFLICT, MULTIPLE, SPECIAL_LABELS, UNLABELLED  # noqa: F401  (re-exported)


class DatasetError(ValueError):
    """A dataset that cannot be read as it stands: the message says what and where."""


def _str_array(values, what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=object)
    for i, v in enumerate(arr):
        if not isinstance(v, str) or v == "":
            raise DatasetError(f"{what}[{i}] must be a non-empty string, got {v!r}")
    return arr.astype(str)


@dataclass(frozen=True, eq=False)
class Samples:
    """A validated table of images.

    Attributes:
        name: dataset name, e.g. ``"lfw"``.
        ids: unique sample ids (stable across machines, e.g. ``"Aaron_Peirsol/0001"``).
        paths: absolute image paths (the file may be missing: that becomes a recorded failure).
        subjects: subject (identity) id per sample.
        attributes: attribute name -> per-sample label (strings; special states above).
        label_sources: attribute name -> where the labels came from (file, citation, rule).
    """

    name: str
    ids: np.ndarray
    paths: np.ndarray
    subjects: np.ndarray
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)
    label_sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = _str_array(self.ids, "ids")
        paths = _str_array(self.paths, "paths")
        subjects = _str_array(self.subjects, "subjects")
        n = len(ids)
        if n == 0:
            raise DatasetError(f"dataset {self.name!r} has no samples")
        if len(paths) != n or len(subjects) != n:
            raise DatasetError("ids, paths and subjects must have the same length")
        uniq, counts = np.unique(ids, return_counts=True)
        if len(uniq) != n:
            dup = uniq[counts > 1][:5].tolist()
            raise DatasetError(f"duplicate sample ids in {self.name!r}: {dup}")
        attrs = {}
        for key, values in dict(self.attributes).items():
            arr = _str_array(values, f"attributes[{key!r}]")
            if len(arr) != n:
                raise DatasetError(f"attribute {key!r} has {len(arr)} values for {n} samples")
            attrs[key] = arr
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "subjects", subjects)
        object.__setattr__(self, "attributes", attrs)
        object.__setattr__(self, "label_sources", dict(self.label_sources))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def attribute_names(self) -> list[str]:
        return list(self.attributes)

    def index_of(self, ids) -> np.ndarray:
        """Row indices of the given sample ids; unknown ids raise ``DatasetError``."""
        lookup = {s: i for i, s in enumerate(self.ids)}
        out = []
        for s in ids:
            if s not in lookup:
                raise DatasetError(f"sample id {s!r} is not in dataset {self.name!r}")
            out.append(lookup[s])
        return np.asarray(out, dtype=np.int64)

    def subset(self, index) -> "Samples":
        index = np.asarray(index)
        return Samples(
            name=self.name,
            ids=self.ids[index],
            paths=self.paths[index],
            subjects=self.subjects[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
            label_sources=self.label_sources,
        )

    def label_coverage(self) -> dict[str, dict[str, dict[str, int]]]:
        """attribute -> label -> {"subjects": n, "samples": n}; special states included."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for key, labels in self.attributes.items():
            per: dict[str, dict[str, int]] = {}
            for lab in np.unique(labels):
                mask = labels == lab
                per[str(lab)] = {
                    "subjects": int(len(np.unique(self.subjects[mask]))),
                    "samples": int(mask.sum()),
                }
            out[key] = per
        return out


@dataclass(frozen=True, eq=False)
class Pairs:
    """Comparisons over a ``Samples`` table.

    Attributes:
        a, b: row indices into the samples table.
        mated: True when both images show the same subject (a genuine comparison).
        fold: fold number per pair (LFW View 2 has 10), -1 when the protocol has none.
        name: protocol name, e.g. ``"lfw_view2"``.
    """

    a: np.ndarray
    b: np.ndarray
    mated: np.ndarray
    fold: np.ndarray
    name: str

    def __post_init__(self) -> None:
        a = np.asarray(self.a, dtype=np.int64)
        b = np.asarray(self.b, dtype=np.int64)
        mated = np.asarray(self.mated, dtype=bool)
        fold = np.asarray(self.fold, dtype=np.int64)
        if not (len(a) == len(b) == len(mated) == len(fold)):
            raise DatasetError("pair arrays a, b, mated, fold must have the same length")
        if len(a) == 0:
            raise DatasetError(f"protocol {self.name!r} produced no pairs")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "mated", mated)
        object.__setattr__(self, "fold", fold)

    def __len__(self) -> int:
        return len(self.a)

    def check_against(self, samples: Samples) -> None:
        """Raise unless indices are in range and ``mated`` agrees with the subjects."""
        n = len(samples)
        if self.a.min() < 0 or self.b.min() < 0 or self.a.max() >= n or self.b.max() >= n:
            raise DatasetError(f"protocol {self.name!r} indexes outside the samples table")
        same = samples.subjects[self.a] == samples.subjects[self.b]
        bad = np.flatnonzero(same != self.mated)
        if len(bad):
            i = bad[0]
            raise DatasetError(
                f"protocol {self.name!r}: pair {i} ({samples.ids[self.a[i]]}, {samples.ids[self.b[i]]}) "
                f"is marked mated={bool(self.mated[i])} but the subjects say otherwise"
            )

    def used_samples(self) -> np.ndarray:
        """Sorted unique sample indices the pairs touch (what needs embedding)."""
        return np.unique(np.concatenate([self.a, self.b]))

    def subset(self, index) -> "Pairs":
        index = np.asarray(index)
        return Pairs(self.a[index], self.b[index], self.mated[index], self.fold[index], self.name)
