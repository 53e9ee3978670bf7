"""search_split (1:N gallery/probe split): invariants counted by loops over subjects, on a synthetic
table and on the real LFW samples."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from evalkit.data.protocols import SearchSplit, search_split
from evalkit.data.samples import DatasetError, Samples
from evalkit.metrics.search import search


def synthetic(n_subjects: int = 80, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    counts = rng.choice([1, 1, 1, 2, 3, 4, 8], size=n_subjects)
    subjects = [f"person_{s:03d}" for s in range(n_subjects) for _ in range(counts[s])]
    perm = rng.permutation(len(subjects))                # rows deliberately not grouped by subject
    subjects = np.array(subjects)[perm]
    n = len(subjects)
    sex = {f"person_{s:03d}": x for s, x in enumerate(rng.choice(["female", "male"], size=n_subjects))}
    return Samples(name="synthetic", ids=[f"img{i:04d}" for i in range(n)], paths=[f"/x/{i}.jpg" for i in range(n)],
                   subjects=subjects, attributes={"sex": [sex[s] for s in subjects]})


def check_invariants(samples: Samples, sp: SearchSplit, g: int, cap: int | None, frac: float) -> None:
    subj = samples.subjects
    n_img = Counter(subj.tolist())
    mated = sp.probe_mate >= 0
    # probes: mated first, then non-mated
    assert mated[:sp.n_mated_probes].all() and not mated[sp.n_mated_probes:].any()
    assert sp.n_mated_probes > 0 and sp.n_nonmated_probes > 0
    # gallery grouped by column in enrolment order, every column present, each column its subject
    assert (np.diff(sp.gallery_column) >= 0).all()
    assert sorted(set(sp.gallery_column.tolist())) == list(range(len(sp.enrolled)))
    assert len(set(sp.enrolled.tolist())) == len(sp.enrolled)
    for row, c in zip(sp.gallery, sp.gallery_column):
        assert subj[row] == sp.enrolled[c]
    # no image used twice; mated probes never gallery images
    used = np.concatenate([sp.gallery, sp.probes])
    assert len(set(used.tolist())) == len(used)
    assert not set(sp.probes.tolist()) & set(sp.gallery.tolist())
    for row, c in zip(sp.probes[mated], sp.probe_mate[mated]):
        assert subj[row] == sp.enrolled[c]
    # subject-disjoint: no non-mated probe subject is enrolled
    enrolled = set(sp.enrolled.tolist())
    nonmated_subjects = set(subj[sp.probes[~mated]].tolist())
    assert not nonmated_subjects & enrolled
    assert nonmated_subjects | enrolled == set(n_img)          # every subject is used one way or the other
    # caps
    gal = Counter(subj[sp.gallery].tolist())
    mp = Counter(subj[sp.probes[mated]].tolist())
    nmp = Counter(subj[sp.probes[~mated]].tolist())
    for s, n in n_img.items():
        if s in enrolled:
            assert gal[s] == min(g, n), s
            rest = n - gal[s]
            assert mp[s] == (rest if cap is None else min(cap, rest)), s
            assert nmp[s] == 0
        else:
            assert gal[s] == 0 and mp[s] == 0
            assert nmp[s] == (n if cap is None else min(cap, n)), s
    # stratification: the held-out fraction in each stratum (subjects that can / cannot give a mated probe)
    for stratum in (lambda n: n > g, lambda n: n <= g):
        members = [s for s, n in n_img.items() if stratum(n)]
        held = [s for s in members if s not in enrolled]
        assert len(held) == int(round(frac * len(members)))
    # nested galleries
    assert (np.diff(sp.sizes) > 0).all() and sp.sizes[-1] == len(sp.enrolled) and sp.sizes[0] >= 1


@pytest.mark.parametrize("g,cap,frac", [(1, 5, 0.5), (2, 1, 0.3), (1, None, 0.7), (3, 2, 0.5)])
def test_synthetic_invariants(g, cap, frac):
    samples = synthetic()
    sp = search_split(samples, gallery_images_per_subject=g, max_probes_per_subject=cap, nonmated_fraction=frac,
                      gallery_sizes=[5, None, 10], seed=4)
    check_invariants(samples, sp, g, cap, frac)
    assert sp.sizes.tolist() == [5, 10, len(sp.enrolled)]
    d = sp.describe(samples)
    assert d["n_enrolled_subjects"] == len(sp.enrolled) and d["n_gallery_images"] == len(sp.gallery)
    assert d["n_mated_probes"] + d["n_nonmated_probes"] == len(sp.probes)
    assert d["n_mated_subjects"] == len(set(sp.probe_mate[sp.probe_mate >= 0].tolist()))
    assert np.array_equal(sp.used_samples(), np.unique(np.concatenate([sp.gallery, sp.probes])))


def test_seeded():
    samples = synthetic()
    a = search_split(samples, seed=1, gallery_sizes=[10, None])
    b = search_split(samples, seed=1, gallery_sizes=[10, None])
    c = search_split(samples, seed=2, gallery_sizes=[10, None])
    for f in ("gallery", "gallery_column", "enrolled", "probes", "probe_mate", "sizes"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert not (np.array_equal(a.enrolled, c.enrolled) and np.array_equal(a.probes, c.probes))
    assert a.seed == 1 and c.seed == 2


def test_nested_sizes_count_mated_probes_only_when_enrolled():
    """Through the engine: a mated probe is counted (rank > 0) at a size iff its column < size."""
    samples = synthetic()
    sp = search_split(samples, gallery_images_per_subject=2, gallery_sizes=[3, 12, None], seed=5)
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(len(samples), 16))
    res = search(vec[sp.probes], vec[sp.gallery], sp.gallery_column, sp.probe_mate, sizes=sp.sizes, candidates=5)
    for j, n in enumerate(sp.sizes):
        want = [(m >= 0 and m < n) for m in sp.probe_mate]
        assert (res.rank[:, j] > 0).tolist() == want
    counted = [(res.rank[:, j] > 0).sum() for j in range(len(sp.sizes))]
    assert counted[0] < counted[1] < counted[2] == sp.n_mated_probes


def test_sizes_normalised():
    samples = synthetic()
    sp = search_split(samples, gallery_sizes=[20, 7, 20], seed=0)
    assert sp.sizes.tolist() == [7, 20, len(sp.enrolled)]
    assert search_split(samples, gallery_sizes=None, seed=0).sizes.tolist() == [len(sp.enrolled)]
    n = len(sp.enrolled)
    assert search_split(samples, gallery_sizes=[n], seed=0).sizes.tolist() == [n]


def test_errors():
    samples = synthetic()
    n = len(search_split(samples, seed=0).enrolled)
    with pytest.raises(DatasetError, match=f"gallery size {n + 1} is not between 1 and the {n} subjects this split enrols"):
        search_split(samples, gallery_sizes=[n + 1], seed=0)
    with pytest.raises(DatasetError, match="gallery size 0 is not between 1"):
        search_split(samples, gallery_sizes=[0, None], seed=0)
    with pytest.raises(DatasetError, match="gallery_images_per_subject must be >= 1"):
        search_split(samples, gallery_images_per_subject=0)
    with pytest.raises(DatasetError, match="max_probes_per_subject must be >= 1 or None"):
        search_split(samples, max_probes_per_subject=0)
    for f in (0, 1, 1.5, -0.2):
        with pytest.raises(DatasetError, match=r"nonmated_fraction must be in \(0, 1\)"):
            search_split(samples, nonmated_fraction=f)
    # nobody has more images than the gallery takes: no mated probe
    with pytest.raises(DatasetError, match="no mated probes .*no enrolled subject has more than 8 image"):
        search_split(samples, gallery_images_per_subject=8)
    single = Samples(name="single", ids=["a", "b", "c"], paths=["/a", "/b", "/c"], subjects=["A", "B", "C"])
    with pytest.raises(DatasetError, match="'single': the search split has no mated probes"):
        search_split(single)
    # a fraction so small that nobody is held out: no non-mated probe
    with pytest.raises(DatasetError, match="no non-mated probes; raise nonmated_fraction"):
        search_split(samples, nonmated_fraction=0.001)
    # DatasetError is a ValueError (callers catching bad input)
    assert issubclass(DatasetError, ValueError)


# --------------------------------------------------------------------------- real LFW samples


def test_lfw_split(lfw_samples):
    s = lfw_samples
    sp = search_split(s, gallery_images_per_subject=1, max_probes_per_subject=5, nonmated_fraction=0.5,
                      gallery_sizes=[500, 1000, None], seed=0)
    check_invariants(s, sp, 1, 5, 0.5)
    assert sp.sizes.tolist()[:2] == [500, 1000]
    # LFW: 5,749 subjects, 1,680 with two or more images; half of each stratum held out
    assert len(set(s.subjects.tolist())) == 5749
    assert len(sp.enrolled) == (1680 - round(0.5 * 1680)) + (4069 - round(0.5 * 4069))
    # George_W_Bush (530 images) is capped, whichever side he lands on
    bush = (s.subjects[sp.probes] == "George_W_Bush").sum()
    assert bush == 5
    again = search_split(s, gallery_images_per_subject=1, max_probes_per_subject=5, nonmated_fraction=0.5,
                         gallery_sizes=[500, 1000, None], seed=0)
    assert np.array_equal(sp.probes, again.probes) and np.array_equal(sp.gallery, again.gallery)
    other = search_split(s, gallery_sizes=[500, 1000, None], seed=1)
    assert not np.array_equal(sp.enrolled, other.enrolled)
    with pytest.raises(DatasetError, match=f"gallery size 5000 is not between 1 and the {len(sp.enrolled)} subjects"):
        search_split(s, gallery_sizes=[5000], seed=0)


def test_lfw_split_two_gallery_images(lfw_samples):
    sp = search_split(lfw_samples, gallery_images_per_subject=2, max_probes_per_subject=3, nonmated_fraction=0.3,
                      seed=7)
    check_invariants(lfw_samples, sp, 2, 3, 0.3)
