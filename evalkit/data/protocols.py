"""Comparison protocols generated from a samples table (for datasets without official pairs).

:func:`generated_pairs` builds every mated pair among a (seeded) capped set of images per
subject, plus all or a seeded uniform sample of the non-mated pairs. Capping matters: on LFW
George_W_Bush alone has 530 images, so an uncapped exhaustive protocol lets one subject
dominate the genuine comparisons.

:func:`search_split` builds a one-to-many protocol instead: a seeded, subject-disjoint split into
a gallery of enrolled subjects (nested galleries of several sizes), mated probes and non-mated
probes (evalkit.metrics.search scores it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.data.samples import DatasetError, Pairs, Samples

__all__ = ["MAX_ENUMERATED_NONMATED", "generated_pairs", "cap_images_per_subject", "count_nonmated", "SearchSplit",
           "search_split"]

#: Enumerating more non-mated pairs than this is refused: set a sample size instead.
MAX_ENUMERATED_NONMATED = 20_000_000


def cap_images_per_subject(samples: Samples, max_images_per_subject: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices kept after capping each subject at ``max_images_per_subject`` images.

    Subjects are visited in sorted order; a subject with more images than the cap keeps a
    uniform random subset drawn with ``rng`` (then sorted). ``None`` keeps everything.
    """
    if max_images_per_subject is None:
        return np.arange(len(samples), dtype=np.int64)
    if int(max_images_per_subject) < 1:
        raise DatasetError(f"max_images_per_subject must be >= 1 or None, got {max_images_per_subject!r}")
    cap = int(max_images_per_subject)
    order = np.argsort(samples.subjects, kind="stable")
    subj_sorted = samples.subjects[order]
    starts = np.flatnonzero(np.r_[True, subj_sorted[1:] != subj_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    kept = []
    for s, e in zip(starts, ends):
        idx = np.sort(order[s:e])
        if len(idx) > cap:
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
        kept.append(idx)
    return np.sort(np.concatenate(kept)).astype(np.int64)


def count_nonmated(subject_codes: np.ndarray) -> int:
    """Number of unordered pairs of images with different subjects."""
    n = len(subject_codes)
    counts = np.bincount(subject_codes).astype(np.int64)
    return int((n * n - int((counts * counts).sum())) // 2)


def _mated(kept: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a_parts, b_parts = [], []
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    starts = np.flatnonzero(np.r_[True, codes_sorted[1:] != codes_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts, ends):
        if e - s < 2:
            continue
        idx = np.sort(kept[order[s:e]])
        i, j = np.triu_indices(len(idx), k=1)
        a_parts.append(idx[i])
        b_parts.append(idx[j])
    if not a_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(a_parts), np.concatenate(b_parts)


def _all_nonmated(kept: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every non-mated pair (a < b, as row indices), one row of the upper triangle at a time."""
    a_parts, b_parts = [], []
    for i in range(len(kept) - 1):
        rest = np.flatnonzero(codes[i + 1 :] != codes[i]) + i + 1
        if len(rest):
            a_parts.append(np.full(len(rest), kept[i], dtype=np.int64))
            b_parts.append(kept[rest])
    if not a_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(a_parts), np.concatenate(b_parts)


def _sample_nonmated(
    kept: np.ndarray, codes: np.ndarray, m: int, n_rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``m`` distinct unordered non-mated pairs, uniformly without replacement.

    Draws ordered index pairs uniformly, rejects same-subject draws and repeats, and keeps the
    first ``m`` distinct pairs in draw order (the first m distinct values of an i.i.d. uniform
    stream form a uniform m-subset). Never materialises the full set of non-mated pairs.
    """
    k = len(kept)
    accepted = np.empty(0, dtype=np.int64)  # keys a * n_rows + b, distinct, in draw order
    p_diff = 1.0 - float((np.bincount(codes).astype(np.float64) ** 2).sum()) / (k * k)
    while len(accepted) < m:
        need = m - len(accepted)
        batch = int(min(max(2 * need / max(p_diff, 1e-9), 1024), 10_000_000))
        i = rng.integers(0, k, size=batch)
        j = rng.integers(0, k, size=batch)
        ok = codes[i] != codes[j]
        i, j = i[ok], j[ok]
        a = np.minimum(kept[i], kept[j])
        b = np.maximum(kept[i], kept[j])
        keys = np.concatenate([accepted, a * n_rows + b])
        _, first = np.unique(keys, return_index=True)
        accepted = keys[np.sort(first)]
    accepted = accepted[:m]
    return accepted // n_rows, accepted % n_rows


def generated_pairs(
    samples: Samples,
    max_images_per_subject: int | None,
    nonmated: int | None,
    seed: int,
    name: str = "generated",
) -> Pairs:
    """Mated and non-mated pairs over ``samples``, reproducible from ``seed``.

    Steps, all driven by one ``np.random.default_rng(seed)``:

    1. cap: a subject with more than ``max_images_per_subject`` images keeps a uniform random
       subset of that size (subjects visited in sorted order; ``None`` = no cap);
    2. mated: every pair ``i < j`` of kept images of the same subject;
    3. non-mated: every pair of kept images of different subjects when ``nonmated`` is None
       (refused above :data:`MAX_ENUMERATED_NONMATED`), else ``nonmated`` distinct unordered
       pairs drawn uniformly without replacement by rejection sampling (when more than half
       of all non-mated pairs are wanted, by enumerating them and choosing: the list is then
       at most twice the output).

    Output order: mated pairs sorted by (a, b), then non-mated sorted by (a, b); ``a < b``
    always; fold ``-1``.

    When ``nonmated`` exceeds the non-mated pairs available, all of them are used and
    ``Pairs.notes`` says so (also logged as a warning).

    Raises:
        DatasetError: the full enumeration too large, a bad argument, or no pairs at all.
    """
    rng = np.random.default_rng(seed)
    kept = cap_images_per_subject(samples, max_images_per_subject, rng)
    _, codes = np.unique(samples.subjects[kept], return_inverse=True)
    codes = codes.astype(np.int64)
    available = count_nonmated(codes)

    ma, mb = _mated(kept, codes)
    o = np.lexsort((mb, ma))
    ma, mb = ma[o], mb[o]

    notes: tuple[str, ...] = ()
    if nonmated is not None and int(nonmated) > available:
        # a default that works on any dataset: fewer non-mated pairs than asked means all of them
        notes = (f"asked for {int(nonmated):,} non-mated pairs but {samples.name!r} has only {available:,} "
                 f"(after capping at {max_images_per_subject} images per subject): all {available:,} are used",)
        import logging

        logging.getLogger("evalkit").warning("%s", notes[0])
        nonmated = None
    if nonmated is None:
        if available > MAX_ENUMERATED_NONMATED:
            raise DatasetError(
                f"enumerating all non-mated pairs of {samples.name!r} would give {available:,} pairs "
                f"(limit {MAX_ENUMERATED_NONMATED:,}): set a non-mated sample size (nonmated=...) "
                "or lower max_images_per_subject"
            )
        na, nb = _all_nonmated(kept, codes)
    else:
        m = int(nonmated)
        if m < 0:
            raise DatasetError(f"nonmated must be >= 0 or None, got {nonmated!r}")
        if m == 0:
            na = nb = np.empty(0, np.int64)
        elif 2 * m > available:
            # Most pairs are wanted: rejection sampling would crawl (coupon collector), and the
            # full list is at most twice the output, so enumerate and choose without replacement.
            na, nb = _all_nonmated(kept, codes)
            pick = rng.choice(len(na), size=m, replace=False)
            na, nb = na[pick], nb[pick]
        else:
            na, nb = _sample_nonmated(kept, codes, m, len(samples), rng)
    o = np.lexsort((nb, na))
    na, nb = na[o], nb[o]

    a = np.concatenate([ma, na]).astype(np.int64)
    b = np.concatenate([mb, nb]).astype(np.int64)
    mated = np.r_[np.ones(len(ma), bool), np.zeros(len(na), bool)]
    pairs = Pairs(a=a, b=b, mated=mated, fold=np.full(len(a), -1, np.int64), name=name, notes=notes)
    pairs.check_against(samples)
    return pairs


# ------------------------------------------------------------------ one-to-many search


@dataclass(frozen=True, eq=False)
class SearchSplit:
    """A seeded, subject-disjoint 1:N split: a gallery of enrolled subjects and two kinds of probe.

    Attributes:
        gallery: sample rows of the gallery images, grouped by column in enrolment order.
        gallery_column: for each gallery image, its column: the index of its subject in
            ``enrolled`` (enrolment order).
        enrolled: subject id of each column. The gallery of size ``n`` is the first ``n`` columns,
            so the galleries of every size are nested.
        probes: sample rows of the probe images: mated probes (subject enrolled; never one of the
            gallery images) first, then non-mated probes (subject in no gallery).
        probe_mate: column of each probe's subject, ``-1`` for a non-mated probe.
        sizes: gallery sizes in enrolled subjects, ascending; the last is ``len(enrolled)``.
    """

    gallery: np.ndarray
    gallery_column: np.ndarray
    enrolled: np.ndarray
    probes: np.ndarray
    probe_mate: np.ndarray
    sizes: np.ndarray
    seed: int

    @property
    def n_mated_probes(self) -> int:
        return int((self.probe_mate >= 0).sum())

    @property
    def n_nonmated_probes(self) -> int:
        return int((self.probe_mate < 0).sum())

    def used_samples(self) -> np.ndarray:
        return np.unique(np.concatenate([self.gallery, self.probes]))

    def describe(self, samples: Samples) -> dict:
        """Counts for metrics.json: images, subjects and probes of each kind."""
        mated = self.probe_mate >= 0
        return {
            "gallery_sizes": self.sizes.tolist(), "n_enrolled_subjects": int(len(self.enrolled)),
            "n_gallery_images": int(len(self.gallery)),
            "n_mated_probes": int(mated.sum()), "n_nonmated_probes": int((~mated).sum()),
            "n_mated_subjects": int(len(np.unique(samples.subjects[self.probes[mated]]))),
            "n_nonmated_subjects": int(len(np.unique(samples.subjects[self.probes[~mated]]))),
            "seed": int(self.seed),
        }


def _choose(rng: np.random.Generator, idx: np.ndarray, k: int | None) -> np.ndarray:
    """A sorted uniform subset of ``k`` of ``idx`` (all of it when k is None or >= its size)."""
    if k is None or len(idx) <= k:
        return idx
    return np.sort(rng.choice(idx, size=k, replace=False))


def search_split(samples: Samples, *, gallery_images_per_subject: int = 1, max_probes_per_subject: int | None = 5,
                 nonmated_fraction: float = 0.5, gallery_sizes=(None,), seed: int = 0,
                 max_subjects: int | None = None) -> SearchSplit:
    """Gallery and probes for a one-to-many search, reproducible from ``seed``.

    Steps, all driven by one ``np.random.default_rng(seed)``:

    1. the subjects (sorted) are put in a random order; with ``max_subjects`` only the first
       that many take part (a seeded subsample for quick runs);
    2. subject-disjoint split: of the subjects with more than ``gallery_images_per_subject``
       images (those that can give a mated probe), the first ``round(nonmated_fraction * n)`` in
       that order are held out of every gallery; so are the same fraction of the other subjects.
       Held-out subjects give the non-mated probes: up to ``max_probes_per_subject`` of their
       images (a uniform subset);
    3. every other subject is enrolled, in that random order (column 0, 1, ...): up to
       ``gallery_images_per_subject`` of its images (uniform) go to the gallery; up to
       ``max_probes_per_subject`` of the rest (uniform) are its mated probes. Enrolled subjects
       without another image are in the gallery only (they make the gallery realistic: most
       people in a mugshot database are not searched for);
    4. ``gallery_sizes`` (``None`` = every enrolled subject) name nested galleries: the first
       ``n`` enrolled subjects. Mated probes count at a size only when their subject is enrolled
       in it; non-mated probes count at every size.

    Raises:
        DatasetError: a bad argument, a gallery size above the number of enrolled subjects, or a
        split without mated or without non-mated probes.
    """
    g = int(gallery_images_per_subject)
    if g < 1:
        raise DatasetError(f"gallery_images_per_subject must be >= 1, got {gallery_images_per_subject!r}")
    if max_probes_per_subject is not None and int(max_probes_per_subject) < 1:
        raise DatasetError(f"max_probes_per_subject must be >= 1 or None, got {max_probes_per_subject!r}")
    cap = None if max_probes_per_subject is None else int(max_probes_per_subject)
    if not 0 < float(nonmated_fraction) < 1:
        raise DatasetError(f"nonmated_fraction must be in (0, 1), got {nonmated_fraction!r}")
    rng = np.random.default_rng(int(seed))
    subjects, codes = np.unique(samples.subjects, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(subjects)))]
    images = [order[starts[s]:starts[s + 1]] for s in range(len(subjects))]   # sorted rows per subject
    perm = rng.permutation(len(subjects))
    if max_subjects is not None:
        if int(max_subjects) < 2:
            raise DatasetError(f"max_subjects must be >= 2 or None, got {max_subjects!r}")
        perm = perm[: int(max_subjects)]
    mateable = np.array([len(images[s]) > g for s in perm])
    held = np.zeros(len(perm), dtype=bool)
    for stratum in (mateable, ~mateable):
        pos = np.flatnonzero(stratum)
        held[pos[: int(round(float(nonmated_fraction) * len(pos)))]] = True
    enrolled = perm[~held]
    gal, gal_col, mated_probes, mated_cols, nonmated = [], [], [], [], []
    column = {int(s): c for c, s in enumerate(enrolled)}
    taking_part = set(perm.tolist())
    for s in range(len(subjects)):   # sorted subject order: draws do not depend on the permutation's layout
        if s not in taking_part:
            continue
        idx = images[s]
        if s in column:
            chosen = _choose(rng, idx, g)
            rest = np.setdiff1d(idx, chosen)
            probes = _choose(rng, rest, cap)
            gal.append(chosen)
            gal_col.append(np.full(len(chosen), column[s], np.int64))
            mated_probes.append(probes)
            mated_cols.append(np.full(len(probes), column[s], np.int64))
        else:
            nonmated.append(_choose(rng, idx, cap))
    gallery, gallery_column = np.concatenate(gal), np.concatenate(gal_col)
    o = np.lexsort((gallery, gallery_column))
    gallery, gallery_column = gallery[o].astype(np.int64), gallery_column[o]
    mp = np.concatenate(mated_probes) if mated_probes else np.empty(0, np.int64)
    mc = np.concatenate(mated_cols) if mated_cols else np.empty(0, np.int64)
    nm = np.concatenate(nonmated) if nonmated else np.empty(0, np.int64)
    if len(mp) == 0:
        raise DatasetError(f"{samples.name!r}: the search split has no mated probes (no enrolled subject has more than "
                           f"{g} image(s)); lower gallery_images_per_subject or nonmated_fraction")
    if len(nm) == 0:
        raise DatasetError(f"{samples.name!r}: the search split has no non-mated probes; raise nonmated_fraction")
    n_enrolled = len(enrolled)
    sizes = []
    for v in (gallery_sizes or [None]):
        n = n_enrolled if v is None else int(v)
        if not 1 <= n <= n_enrolled:
            raise DatasetError(f"gallery size {v} is not between 1 and the {n_enrolled} subjects this split enrols "
                               f"({samples.name!r}, nonmated_fraction={nonmated_fraction}); use null for all of them")
        sizes.append(n)
    sizes = np.unique(np.asarray(sizes + [n_enrolled], dtype=np.int64))
    return SearchSplit(gallery=gallery, gallery_column=gallery_column, enrolled=subjects[enrolled],
                       probes=np.concatenate([mp, nm]).astype(np.int64),
                       probe_mate=np.concatenate([mc, np.full(len(nm), -1, np.int64)]), sizes=sizes, seed=int(seed))
