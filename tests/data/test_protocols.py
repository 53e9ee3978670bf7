"""Generated protocols on a small hand-counted table."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from evalkit.data import protocols
from evalkit.data.protocols import generated_pairs
from evalkit.data.samples import DatasetError, Samples

# subject -> number of images: A 3, B 2, C 1, D 4 (10 images)
#   mated pairs:     C(3,2) + C(2,2) + 0 + C(4,2) = 3 + 1 + 0 + 6 = 10
#   non-mated pairs: (10^2 - (9 + 4 + 1 + 16)) / 2 = 35
# with at most 2 images per subject (2, 2, 1, 2 = 7 images):
#   mated 1 + 1 + 0 + 1 = 3, non-mated (49 - (4 + 4 + 1 + 4)) / 2 = 18
SUBJECTS = ["D", "A", "B", "A", "D", "C", "D", "B", "A", "D"]  # deliberately unsorted rows


@pytest.fixture
def samples() -> Samples:
    n = len(SUBJECTS)
    return Samples(
        name="tiny",
        ids=[f"img{i:02d}" for i in range(n)],
        paths=[f"/x/img{i:02d}.jpg" for i in range(n)],
        subjects=SUBJECTS,
    )


def _pairset(p, mated: bool) -> list[tuple[int, int]]:
    m = p.mated == mated
    return list(zip(p.a[m].tolist(), p.b[m].tolist()))


def test_all_pairs_hand_count(samples):
    p = generated_pairs(samples, None, None, seed=0)
    assert p.name == "generated"
    assert int(p.mated.sum()) == 10 and int((~p.mated).sum()) == 35
    assert (p.fold == -1).all()
    # exactly the brute-force sets, in (a, b) order, mated first
    subj = np.asarray(SUBJECTS)
    every = list(combinations(range(len(SUBJECTS)), 2))
    assert _pairset(p, True) == [(i, j) for i, j in every if subj[i] == subj[j]]
    assert _pairset(p, False) == [(i, j) for i, j in every if subj[i] != subj[j]]
    assert p.mated[:10].all() and not p.mated[10:].any()


def test_cap_respected(samples):
    p = generated_pairs(samples, 2, None, seed=3)
    assert int(p.mated.sum()) == 3 and int((~p.mated).sum()) == 18
    used = p.used_samples()
    per_subject = Counter(np.asarray(SUBJECTS)[used].tolist())
    assert per_subject == {"A": 2, "B": 2, "C": 1, "D": 2}


def test_seeded_determinism_and_seed_matters(samples):
    a = generated_pairs(samples, 2, 10, seed=7)
    b = generated_pairs(samples, 2, 10, seed=7)
    assert np.array_equal(a.a, b.a) and np.array_equal(a.b, b.b) and np.array_equal(a.mated, b.mated)
    outs = {tuple(zip(generated_pairs(samples, 2, 10, seed=s).a, generated_pairs(samples, 2, 10, seed=s).b)) for s in range(6)}
    assert len(outs) > 1  # different seeds give different protocols


def test_sampled_nonmated(samples):
    for m in (1, 5, 17, 18):  # 17 and 18 exercise the "most pairs wanted" branch
        p = generated_pairs(samples, 2, m, seed=1)
        non = _pairset(p, False)
        assert len(non) == m
        assert len(set(non)) == m  # no duplicates
        assert all(a < b for a, b in non)
        assert all(SUBJECTS[a] != SUBJECTS[b] for a, b in non)  # none mated
        assert non == sorted(non)
        assert int(p.mated.sum()) == 3


def test_sampling_is_uniform_enough(samples):
    # every one of the 35 non-mated pairs shows up when drawing 5 at a time over many seeds
    seen = Counter()
    for s in range(400):
        seen.update(_pairset(generated_pairs(samples, None, 5, seed=s), False))
    assert len(seen) == 35
    assert max(seen.values()) < 3 * min(seen.values())


def test_too_many_nonmated_uses_all_and_says_so(samples):
    """Issue 13: a default (200,000) that works on any dataset: fewer non-mated pairs than asked
    means all of them, with a note (logged, and in metrics.json's protocol block)."""
    p = generated_pairs(samples, 2, 19, seed=0)
    assert (~p.mated).sum() == 18
    assert _pairset(p, False) == _pairset(generated_pairs(samples, 2, None, seed=0), False)
    assert p.notes == ("asked for 19 non-mated pairs but 'tiny' has only 18 (after capping at 2 images per "
                       "subject): all 18 are used",)
    assert generated_pairs(samples, 2, 18, seed=0).notes == ()


def test_enumeration_limit(samples, monkeypatch):
    monkeypatch.setattr(protocols, "MAX_ENUMERATED_NONMATED", 30)
    with pytest.raises(DatasetError, match="set a non-mated sample size"):
        generated_pairs(samples, None, None, seed=0)
    assert len(generated_pairs(samples, None, 30, seed=0)) == 40  # sampling is still allowed


def test_bad_arguments(samples):
    with pytest.raises(DatasetError, match="max_images_per_subject"):
        generated_pairs(samples, 0, None, seed=0)
    with pytest.raises(DatasetError, match="nonmated must be"):
        generated_pairs(samples, None, -1, seed=0)


def test_on_lfw_capped_sample(lfw_samples):
    p = generated_pairs(lfw_samples, 5, 20000, seed=0, name="lfw_gen")
    assert p.name == "lfw_gen"
    used = p.used_samples()
    assert Counter(lfw_samples.subjects[used].tolist()).most_common(1)[0][1] <= 5
    assert int((~p.mated).sum()) == 20000
