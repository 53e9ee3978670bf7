"""The score table: one row per comparison, carrying subjects, groups and failure flags.

This is the value handed from scoring to metrics; metrics never see images or embeddings.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.samples import Pairs, Samples


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Columns (all length n_comparisons):
    sample_a/b, subject_a/b: ids; mated: bool; fold: int (-1 none);
    distance: float (NaN when failed); failed: bool (either image failed to enrol);
    groups: attribute -> (labels of side a, labels of side b).
    """

    sample_a: np.ndarray
    sample_b: np.ndarray
    subject_a: np.ndarray
    subject_b: np.ndarray
    mated: np.ndarray
    fold: np.ndarray
    distance: np.ndarray
    failed: np.ndarray
    groups: dict

    def __len__(self) -> int:
        return len(self.mated)

    @classmethod
    def build(cls, samples: Samples, pairs: Pairs, distance: np.ndarray, image_ok: np.ndarray) -> "ScoreTable":
        failed = ~(image_ok[pairs.a] & image_ok[pairs.b])
        return cls(
            sample_a=samples.ids[pairs.a], sample_b=samples.ids[pairs.b],
            subject_a=samples.subjects[pairs.a], subject_b=samples.subjects[pairs.b],
            mated=pairs.mated, fold=pairs.fold,
            distance=np.where(failed, np.nan, distance), failed=failed,
            groups={k: (v[pairs.a], v[pairs.b]) for k, v in samples.attributes.items()},
        )

    def subset(self, mask) -> "ScoreTable":
        """The rows selected by a boolean mask or index array."""
        return ScoreTable(
            sample_a=self.sample_a[mask], sample_b=self.sample_b[mask], subject_a=self.subject_a[mask],
            subject_b=self.subject_b[mask], mated=self.mated[mask], fold=self.fold[mask],
            distance=self.distance[mask], failed=self.failed[mask],
            groups={k: (a[mask], b[mask]) for k, (a, b) in self.groups.items()})

    def write_csv(self, path: str | Path) -> None:
        """One row per comparison; ``score`` is empty for failed comparisons."""
        attrs = list(self.groups)
        header = ["sample_a", "sample_b", "subject_a", "subject_b", "mated", "fold", "score", "failed"]
        for a in attrs:
            header += [f"{a}_a", f"{a}_b"]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for i in range(len(self)):
                row = [self.sample_a[i], self.sample_b[i], self.subject_a[i], self.subject_b[i],
                       int(self.mated[i]), int(self.fold[i]),
                       "" if self.failed[i] else repr(float(self.distance[i])), int(self.failed[i])]
                for a in attrs:
                    row += [self.groups[a][0][i], self.groups[a][1][i]]
                w.writerow(row)

    def to_frame(self):
        """A pandas DataFrame, one row per comparison: the columns of scores.csv (``score`` is
        NaN where the comparison failed)."""
        import pandas as pd

        cols = {"sample_a": self.sample_a, "sample_b": self.sample_b, "subject_a": self.subject_a,
                "subject_b": self.subject_b, "mated": np.asarray(self.mated, bool), "fold": np.asarray(self.fold),
                "score": np.asarray(self.distance, float), "failed": np.asarray(self.failed, bool)}
        for a, (ga, gb) in self.groups.items():
            cols[f"{a}_a"], cols[f"{a}_b"] = ga, gb
        return pd.DataFrame(cols)


SCORES_COLUMNS = ("sample_a", "sample_b", "subject_a", "subject_b", "mated", "fold", "score", "failed")


def read_scores_csv(path: str | Path) -> ScoreTable:
    """Read a run folder's scores.csv (written by :meth:`ScoreTable.write_csv`) back into a
    :class:`ScoreTable`: failed comparisons have ``failed`` True and a NaN distance; every
    ``<attribute>_a`` / ``<attribute>_b`` column pair becomes ``groups[attribute]``. Columns are
    collected one row at a time (no list of row dicts), so memory is the table's own.

    Raises:
        FileNotFoundError: no such file; ValueError: a header without the scores.csv columns.
    """
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or any(c not in header for c in SCORES_COLUMNS):
            raise ValueError(f"{path}: not a scores.csv (needs columns {', '.join(SCORES_COLUMNS)}; got {header})")
        attrs = [c[:-2] for c in header if c.endswith("_a") and c not in ("sample_a", "subject_a")
                 and f"{c[:-2]}_b" in header]
        idx = {c: header.index(c) for c in header}
        names = list(SCORES_COLUMNS) + [f"{a}_{s}" for a in attrs for s in "ab"]
        cols: dict[str, list] = {c: [] for c in names}
        for row in reader:
            for c in names:
                cols[c].append(row[idx[c]])
    failed = np.array([v == "1" for v in cols["failed"]], dtype=bool)
    score = np.array([np.nan if v == "" else float(v) for v in cols["score"]], dtype=float)
    return ScoreTable(
        sample_a=np.array(cols["sample_a"], dtype=str), sample_b=np.array(cols["sample_b"], dtype=str),
        subject_a=np.array(cols["subject_a"], dtype=str), subject_b=np.array(cols["subject_b"], dtype=str),
        mated=np.array([v == "1" for v in cols["mated"]], dtype=bool),
        fold=np.array([int(v) for v in cols["fold"]], dtype=np.int64),
        distance=np.where(failed, np.nan, score), failed=failed,
        groups={a: (np.array(cols[f"{a}_a"], dtype=str), np.array(cols[f"{a}_b"], dtype=str)) for a in attrs})
