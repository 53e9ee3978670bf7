"""rates.py against hand counts, sklearn.metrics.roc_curve and brute-force loops."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from evalkit.metrics.rates import (
    MAX_THRESHOLD,
    ThresholdChoice,
    best_accuracy_threshold,
    det_curve,
    eer,
    error_counts,
    fmr,
    fnmr,
    fnmr_at_fmr,
    kfold_accuracy,
    threshold_at_fmr,
)

INF = np.inf


def synthetic(seed: int, n_gen: int = 300, n_imp: int = 900, decimals: int | None = 2,
              n_fail: int = 0):
    """Seeded distances: genuine ~ N(0.8, 0.25), impostor ~ N(1.4, 0.2); rounding makes ties."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0.8, 0.25, n_gen)
    i = rng.normal(1.4, 0.2, n_imp)
    if decimals is not None:
        g, i = np.round(g, decimals), np.round(i, decimals)
    if n_fail:
        g[rng.choice(n_gen, n_fail, replace=False)] = INF
        i[rng.choice(n_imp, n_fail, replace=False)] = INF
    return g, i


def sklearn_det(g, i):
    """DET points from sklearn's ROC on similarities (-distance); +inf becomes a finite sentinel.

    Returns (distance thresholds, fmr, fnmr) at every distinct finite distance, increasing.
    """
    both = np.concatenate([g, i])
    sentinel = np.max(both[np.isfinite(both)]) + 1000.0
    scores = np.where(np.isfinite(both), both, sentinel)
    y = np.concatenate([np.ones(g.size, bool), np.zeros(i.size, bool)])
    fpr, tpr, thr = roc_curve(y, -scores, drop_intermediate=False)
    dist = -thr[1:]  # thr[0] is +inf similarity: nothing accepted
    keep = dist < sentinel
    return dist[keep], fpr[1:][keep], 1.0 - tpr[1:][keep]


# --------------------------------------------------------------------------- hand counts


def test_error_counts_by_hand_with_ties_and_failures():
    genuine = [0.1, 0.5, 0.5, INF, 0.7]
    impostor = [0.3, 0.5, 0.9, INF]
    c = error_counts(genuine, impostor, 0.5)
    # genuine > 0.5: 0.7 and inf (ties at 0.5 are matches); impostor <= 0.5: 0.3, 0.5
    assert c == {"n_genuine": 5, "n_impostor": 4, "false_nonmatches": 2, "false_matches": 2}
    assert fmr(impostor, 0.5) == pytest.approx(2 / 4)
    assert fnmr(genuine, 0.5) == pytest.approx(2 / 5)
    # just below the tie, the tied impostor no longer matches and the tied genuines do not match
    below = np.nextafter(0.5, -INF)
    assert fmr(impostor, below) == pytest.approx(1 / 4)
    assert fnmr(genuine, below) == pytest.approx(4 / 5)


def test_inf_never_matches_even_at_huge_threshold():
    assert fmr([INF, INF, 1.0], MAX_THRESHOLD) == pytest.approx(1 / 3)
    assert fnmr([INF, 1.0], MAX_THRESHOLD) == pytest.approx(1 / 2)


def test_rates_nan_on_empty_denominator():
    assert math.isnan(fmr([], 0.5))
    assert math.isnan(fnmr(np.array([]), 0.5))
    c = error_counts([], [], 0.5)
    assert c == {"n_genuine": 0, "n_impostor": 0, "false_nonmatches": 0, "false_matches": 0}


@pytest.mark.parametrize("bad", [[0.1, np.nan], [np.nan]])
def test_nan_scores_raise(bad):
    with pytest.raises(ValueError, match="NaN"):
        fmr(bad, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        fnmr(bad, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        error_counts(bad, [0.1], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        threshold_at_fmr(bad, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        det_curve([0.1], bad)
    with pytest.raises(ValueError, match="NaN"):
        best_accuracy_threshold(bad, [True] * len(bad))


@pytest.mark.parametrize("threshold", [np.nan, INF, -INF, "0.5", None, True])
def test_bad_threshold_raises(threshold):
    with pytest.raises(ValueError):
        fmr([0.1, 0.2], threshold)


def test_neg_inf_and_2d_scores_raise():
    with pytest.raises(ValueError):
        fnmr([-INF, 0.1], 0.5)
    with pytest.raises(ValueError):
        fnmr([[0.1, 0.2]], 0.5)


def test_rates_match_a_python_loop():
    g, i = synthetic(1, n_fail=5)
    for t in [0.0, 0.8, 1.0, 1.23, 1.4, 5.0]:
        fm = sum(1 for x in i if x <= t)
        fnm = sum(1 for x in g if not x <= t)
        assert fmr(i, t) == pytest.approx(fm / len(i))
        assert fnmr(g, t) == pytest.approx(fnm / len(g))


# --------------------------------------------------------------------------- DET / EER vs sklearn


@pytest.mark.parametrize("seed,decimals,n_fail", [(0, 2, 0), (1, None, 0), (2, 1, 7), (3, 2, 3)])
def test_det_curve_matches_sklearn_roc(seed, decimals, n_fail):
    g, i = synthetic(seed, decimals=decimals, n_fail=n_fail)
    thr, fm, fnm = det_curve(g, i)
    ref_thr, ref_fmr, ref_fnmr = sklearn_det(g, i)
    np.testing.assert_array_equal(thr, ref_thr)
    np.testing.assert_allclose(fm, ref_fmr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fnm, ref_fnmr, rtol=0, atol=1e-12)
    assert np.all(np.diff(thr) > 0)
    assert np.all(np.isfinite(thr))


def test_det_curve_by_hand():
    thr, fm, fnm = det_curve([0.1, 0.3, INF], [0.2, 0.3, 0.4])
    np.testing.assert_array_equal(thr, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(fm, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(fnm, [2 / 3, 2 / 3, 1 / 3, 1 / 3])


def test_det_curve_rejects_empty_side():
    with pytest.raises(ValueError):
        det_curve([], [0.1])
    with pytest.raises(ValueError):
        det_curve([0.1], [])


def test_eer_by_hand():
    # thresholds .1 .2 .3 .35 .4 ... : at .35 FMR = FNMR = 1/4
    assert eer([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7]) == pytest.approx(0.25)
    assert eer([0.1, 0.2], [0.8, 0.9]) == 0.0  # separable
    assert eer([0.8, 0.9], [0.1, 0.2]) == 1.0  # separable, the wrong way round


@pytest.mark.parametrize("seed,n_fail", [(0, 0), (4, 10), (5, 0)])
def test_eer_matches_sklearn(seed, n_fail):
    g, i = synthetic(seed, n_fail=n_fail)
    _, f, n = sklearn_det(g, i)
    j = int(np.argmin(np.abs(f - n)))
    assert eer(g, i) == pytest.approx((f[j] + n[j]) / 2, abs=1e-12)
    # sanity: the synthetic distributions overlap moderately
    assert 0.02 < eer(g, i) < 0.3


def test_eer_rejects_all_failures():
    with pytest.raises(ValueError):
        eer([INF], [INF])


# --------------------------------------------------------------------------- threshold at FMR


def test_threshold_at_fmr_excludes_ties_by_hand():
    imp = [1.0, 2.0, 2.0, 2.0, 3.0]
    c = threshold_at_fmr(imp, 0.4)  # k = 2, s[2] = 2.0 tied with s[1], s[3]
    assert isinstance(c, ThresholdChoice)
    assert c.threshold < 2.0 and np.nextafter(c.threshold, INF) == 2.0
    assert c.achieved_fmr == pytest.approx(0.2)
    assert (c.target_fmr, c.n_impostor, c.resolvable) == (0.4, 5, True)
    c = threshold_at_fmr(imp, 0.8)  # k = 4, s[4] = 3.0
    assert 2.0 <= c.threshold < 3.0
    assert c.achieved_fmr == pytest.approx(0.8)
    c = threshold_at_fmr(imp, 1.0)
    assert c.achieved_fmr == 1.0 and np.isfinite(c.threshold)


def test_threshold_at_fmr_float_guard():
    imp = np.arange(100, dtype=float)
    assert math.floor(0.29 * 100) == 28  # the float trap the rule must avoid
    c = threshold_at_fmr(imp, 0.29)
    assert c.achieved_fmr == pytest.approx(0.29)
    assert 28.0 <= c.threshold < 29.0


def test_threshold_at_fmr_unresolvable_target():
    imp = np.linspace(0.5, 1.5, 100)
    c = threshold_at_fmr(imp, 0.001)
    assert c.resolvable is False
    assert c.achieved_fmr == 0.0
    assert c.threshold < imp.min()
    assert threshold_at_fmr(imp, 0.01).resolvable is True
    assert threshold_at_fmr(imp, 0.0099).resolvable is False


def test_threshold_at_fmr_with_failures():
    c = threshold_at_fmr([INF, INF, INF], 0.1)
    assert c.threshold == MAX_THRESHOLD and c.achieved_fmr == 0.0
    assert fnmr([0.2, 7.0, INF], c.threshold) == pytest.approx(1 / 3)
    # 3 of 4 impostors failed; target 0.5 allows 2 false matches but only 1 finite score exists
    c = threshold_at_fmr([0.4, INF, INF, INF], 0.5)
    assert c.threshold == MAX_THRESHOLD and c.achieved_fmr == pytest.approx(0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_at_fmr_properties(seed):
    _, imp = synthetic(seed, n_imp=1000, decimals=2, n_fail=4)
    finite_sorted = np.unique(imp[np.isfinite(imp)])
    for target in [0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.333, 0.5, 0.9]:
        c = threshold_at_fmr(imp, target)
        count = sum(1 for x in imp if x <= c.threshold)
        assert c.achieved_fmr == pytest.approx(count / imp.size)
        assert c.achieved_fmr <= target
        # the next impostor score above the threshold would exceed the target
        nxt = finite_sorted[finite_sorted > c.threshold][0]
        assert sum(1 for x in imp if x <= nxt) / imp.size > target
        # largest such threshold: nothing representable between it and that score
        assert np.nextafter(c.threshold, INF) == nxt
        assert c.resolvable == (target >= 1 / imp.size)


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5, np.nan, INF, "0.1", None])
def test_threshold_at_fmr_bad_target(target):
    with pytest.raises(ValueError):
        threshold_at_fmr([0.1, 0.2], target)


def test_threshold_at_fmr_empty():
    with pytest.raises(ValueError):
        threshold_at_fmr([], 0.1)


@pytest.mark.parametrize("seed,n_fail", [(0, 0), (6, 8)])
def test_fnmr_at_fmr_matches_sklearn(seed, n_fail):
    g, i = synthetic(seed, n_fail=n_fail)
    _, f, n = sklearn_det(g, i)
    for target in [0.001, 0.01, 0.1, 0.3]:
        out = fnmr_at_fmr(g, i, target)
        assert set(out) == {"fnmr", "threshold", "achieved_fmr", "resolvable"}
        ok = f <= target
        # best operating point with FMR <= target; "accept nothing" (FNMR 1) if none
        ref = min(n[ok].min(), 1.0) if ok.any() else 1.0
        assert out["fnmr"] == pytest.approx(ref, abs=1e-12)
        assert out["achieved_fmr"] == pytest.approx(f[ok].max() if ok.any() else 0.0)


# --------------------------------------------------------------------------- LFW accuracy


def brute_best_threshold(scores, mated):
    """Plain-Python reference for best_accuracy_threshold."""
    finite = sorted({float(x) for x in scores if math.isfinite(x)})
    cands = [float(np.nextafter(finite[0], -INF))]
    for a, b in zip(finite, finite[1:]):
        m = a + (b - a) / 2
        cands.append(a if m >= b else m)
    cands.append(finite[-1])
    best, best_acc = None, -1
    for t in cands:
        acc = sum(1 for x, y in zip(scores, mated) if (x <= t) == bool(y))
        if acc > best_acc:
            best, best_acc = t, acc
    return best, best_acc


def test_best_accuracy_threshold_by_hand():
    assert best_accuracy_threshold([0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0]) == pytest.approx(0.25)
    # 0.15 and 0.3 both give 2/3: the smaller wins
    assert best_accuracy_threshold([0.1, 0.2, 0.3], [True, False, True]) == pytest.approx(0.15)
    # all non-mated: reject everything
    assert best_accuracy_threshold([0.1, 0.2], [False, False]) < 0.1
    # all mated: accept every finite score
    assert best_accuracy_threshold([0.1, 0.2, INF], [True, True, False]) == pytest.approx(0.2)
    # +inf failures never match: a mated failure is an unavoidable error
    assert best_accuracy_threshold([0.1, INF, 0.2], [True, True, False]) == pytest.approx(0.15)


@pytest.mark.parametrize("a", [1.0, float(np.nextafter(1.0, 2.0))])
def test_best_accuracy_threshold_adjacent_floats(a):
    # no float lies strictly between a and b; the midpoint rounds to a or (half-even) to b
    b = float(np.nextafter(a, 2.0))
    t = best_accuracy_threshold([a, b], [True, False])
    assert a <= t < b


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_best_accuracy_threshold_matches_brute_force(seed):
    g, i = synthetic(seed, n_gen=60, n_imp=60, decimals=1 if seed % 2 else 2, n_fail=2)
    scores = np.concatenate([g, i])
    mated = np.concatenate([np.ones(g.size, bool), np.zeros(i.size, bool)])
    perm = np.random.default_rng(seed).permutation(scores.size)
    scores, mated = scores[perm], mated[perm]
    t = best_accuracy_threshold(scores, mated)
    ref_t, ref_acc = brute_best_threshold(list(scores), list(mated))
    assert t == ref_t
    # and no threshold at all (any distinct score or below the minimum) does better
    every = [-1.0] + sorted({x for x in scores if math.isfinite(x)})
    best_possible = max(sum((x <= u) == y for x, y in zip(scores, mated)) for u in every)
    assert ref_acc == best_possible


def test_best_accuracy_threshold_errors():
    with pytest.raises(ValueError):
        best_accuracy_threshold([INF, INF], [True, False])
    with pytest.raises(ValueError):
        best_accuracy_threshold([0.1, 0.2], [True])
    with pytest.raises(ValueError):
        best_accuracy_threshold([0.1, 0.2], [2, 0])


def test_kfold_accuracy_by_hand():
    scores = [0.1, 0.9, 0.2, 0.8, 0.6, 0.7]
    mated = [1, 0, 1, 0, 1, 0]
    fold = [0, 0, 1, 1, 2, 2]
    out = kfold_accuracy(scores, mated, fold)
    # fold 0: train on {.2 m, .8 n, .6 m, .7 n} -> 0.65; test .1 ok, .9 ok -> 1
    # fold 1: train on {.1 m, .9 n, .6 m, .7 n} -> 0.65; test .2 ok, .8 ok -> 1
    # fold 2: train on {.1, .9, .2, .8} -> 0.5; test .6 m (no), .7 n (ok) -> 0.5
    assert out["thresholds"] == pytest.approx([0.65, 0.65, 0.5])
    assert out["per_fold"] == pytest.approx([1.0, 1.0, 0.5])
    assert out["mean"] == pytest.approx(2.5 / 3)
    sd = statistics.stdev([1.0, 1.0, 0.5])
    assert out["std"] == pytest.approx(sd)
    assert out["sem"] == pytest.approx(sd / math.sqrt(3))
    assert out["n_folds"] == 3
    assert set(out) == {"mean", "std", "sem", "per_fold", "thresholds", "n_folds"}


def test_kfold_accuracy_matches_brute_force():
    rng = np.random.default_rng(11)
    g, i = synthetic(11, n_gen=100, n_imp=100, decimals=2, n_fail=3)
    scores = np.concatenate([g, i])
    mated = np.concatenate([np.ones(100, bool), np.zeros(100, bool)])
    fold = rng.integers(0, 10, scores.size)
    out = kfold_accuracy(scores, mated, fold)
    accs, thrs = [], []
    for f in range(10):
        train = [(s, m) for s, m, k in zip(scores, mated, fold) if k != f]
        test = [(s, m) for s, m, k in zip(scores, mated, fold) if k == f]
        t, _ = brute_best_threshold([s for s, _ in train], [m for _, m in train])
        thrs.append(t)
        accs.append(sum((s <= t) == m for s, m in test) / len(test))
    assert out["thresholds"] == thrs
    assert out["per_fold"] == pytest.approx(accs)
    assert out["mean"] == pytest.approx(statistics.mean(accs))
    assert out["std"] == pytest.approx(statistics.stdev(accs))
    assert out["sem"] == pytest.approx(statistics.stdev(accs) / math.sqrt(10))
    assert all(isinstance(x, float) for x in out["per_fold"] + out["thresholds"])


def test_kfold_accuracy_needs_two_folds():
    with pytest.raises(ValueError):
        kfold_accuracy([0.1, 0.2], [1, 0], [0, 0])
    with pytest.raises(ValueError):
        kfold_accuracy([0.1, 0.2], [1, 0], [0])
