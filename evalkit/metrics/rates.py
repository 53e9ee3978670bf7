"""Verification error rates as pure functions on score arrays.

Conventions (every function in this module follows them):

- Scores are DISTANCES: lower means more similar.
- A comparison is declared a match when ``score <= threshold``. Thresholds must be finite.
- A genuine comparison is a mated comparison (both images of the same subject); an impostor
  comparison is a non-mated one (different subjects).
- A comparison whose image failed to enrol is carried as ``+inf`` when the failure policy counts
  failures as non-matches. Because thresholds are finite, ``+inf`` is never a match: it is a false
  non-match when genuine and a correct rejection when impostor. ISO/IEC 19795-1 defines FMR and
  FNMR over *completed* comparisons; if the caller includes ``+inf`` rows, the rates computed here
  count failures to enrol as non-matches, as NIST FRVT/FRTE 1:1 reports do. Callers that exclude
  failures simply leave those rows out.
- ``NaN`` scores are a caller bug and raise ``ValueError``; so do ``-inf`` scores (a distance of
  minus infinity has no meaning and would be an unconditional match).

Sources:

- FMR / FNMR: ISO/IEC 19795-1:2021 (biometric performance testing and reporting) and the
  vocabulary ISO/IEC 2382-37 (harmonized biometric vocabulary).
- Threshold at a target FMR, set on all impostor comparisons and applied to everyone: NIST FRVT /
  FRTE 1:1 reports, e.g. NISTIR 8280 (Grother, Ngan, Hanaoka 2019, demographic effects).
- EER convention: bob.measure ``eer`` (mean of FAR and FRR at the threshold where they are closest);
  see also Poh & Bengio (2006), Pattern Recognition 39(2), on EER/HTER reporting.
- 10-fold accuracy and its standard error: Huang, Ramesh, Berg, Learned-Miller (2007), "Labeled
  Faces in the Wild", UMass Amherst TR 07-49, and the LFW README (View 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real

import numpy as np

__all__ = [
    "ThresholdChoice",
    "error_counts",
    "fmr",
    "fnmr",
    "threshold_at_fmr",
    "det_curve",
    "eer",
    "fnmr_at_fmr",
    "best_accuracy_threshold",
    "kfold_accuracy",
]

#: Largest representable threshold: accepts every finite distance, still rejects ``+inf`` failures.
MAX_THRESHOLD = float(np.finfo(np.float64).max)


# --------------------------------------------------------------------------- validation helpers


def check_scores(scores, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a 1-D float64 array; raise ValueError on NaN, ``-inf`` or bad shape."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN: a NaN score is a caller bug "
                         "(failures are carried as +inf)")
    if np.isneginf(arr).any():
        raise ValueError(f"{name} contains -inf, which is not a valid distance")
    return arr


def check_threshold(threshold) -> float:
    """Return ``threshold`` as a float; raise ValueError unless it is a finite real number."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (Real, np.floating,
                                                                             np.integer)):
        raise ValueError(f"threshold must be a real number, got {threshold!r}")
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"threshold must be finite, got {t} (+inf would match failures)")
    return t


def check_mated(mated, n: int, name: str = "mated") -> np.ndarray:
    """Return ``mated`` as a bool array of length ``n``; values must be 0/1 or booleans."""
    arr = np.asarray(mated)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D of length {n}, got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans or 0/1")
        arr = arr.astype(bool)
    return arr


def check_labels(values, n: int, name: str) -> np.ndarray:
    """Group labels as a 1-D string array of length ``n``; ``None`` is rejected (use an explicit label)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D of length {n}, got shape {arr.shape}")
    if arr.dtype == object and (arr == None).any():  # noqa: E711 (elementwise)
        raise ValueError(f"{name} contains None: use an explicit label such as 'unlabelled'")
    return arr.astype(str)


def _check_target(target_fmr) -> float:
    if isinstance(target_fmr, (bool, np.bool_)) or not isinstance(target_fmr, (Real, np.floating,
                                                                               np.integer)):
        raise ValueError(f"target_fmr must be a real number, got {target_fmr!r}")
    t = float(target_fmr)
    if not (0.0 < t <= 1.0):
        raise ValueError(f"target_fmr must be in (0, 1], got {t}")
    return t


def _rate(k: int, n: int) -> float:
    return k / n if n else float("nan")


# --------------------------------------------------------------------------- rates at a threshold


def error_counts(genuine, impostor, threshold) -> dict:
    """Count errors at one threshold.

    Definition (ISO/IEC 19795-1:2021, ISO/IEC 2382-37): a false non-match is a genuine (mated)
    comparison declared a non-match, ``genuine > threshold``; a false match is an impostor
    (non-mated) comparison declared a match, ``impostor <= threshold``. ``+inf`` (failure to
    enrol) is never a match.

    Returns:
        ``{"n_genuine", "n_impostor", "false_nonmatches", "false_matches"}`` as Python ints.
    """
    g = check_scores(genuine, "genuine")
    i = check_scores(impostor, "impostor")
    t = check_threshold(threshold)
    return {
        "n_genuine": int(g.size),
        "n_impostor": int(i.size),
        "false_nonmatches": int(np.count_nonzero(~(g <= t))),
        "false_matches": int(np.count_nonzero(i <= t)),
    }


def fmr(impostor, threshold) -> float:
    """False match rate: the proportion of impostor comparisons with ``score <= threshold``.

    Source: ISO/IEC 19795-1:2021 and ISO/IEC 2382-37 (FMR). Returns NaN when there are no
    impostor comparisons (the rate is undefined, not zero).
    """
    i = check_scores(impostor, "impostor")
    t = check_threshold(threshold)
    return _rate(int(np.count_nonzero(i <= t)), int(i.size))


def fnmr(genuine, threshold) -> float:
    """False non-match rate: the proportion of genuine comparisons with ``score > threshold``.

    Source: ISO/IEC 19795-1:2021 and ISO/IEC 2382-37 (FNMR). ``+inf`` failures count as
    non-matches. Returns NaN when there are no genuine comparisons (undefined, not zero).
    """
    g = check_scores(genuine, "genuine")
    t = check_threshold(threshold)
    return _rate(int(np.count_nonzero(~(g <= t))), int(g.size))


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold chosen on impostor scores for a target FMR.

    Attributes:
        threshold: the chosen (finite) distance threshold.
        target_fmr: the FMR asked for.
        achieved_fmr: the FMR on the impostor scores it was chosen on (``<= target_fmr``).
        n_impostor: number of impostor comparisons used.
        resolvable: ``target_fmr >= 1 / n_impostor``. When False the target is below what the data
            can measure (fewer than one expected false match): the threshold rejects every
            impostor and the achieved FMR of 0 says nothing about the true FMR at the target.
    """

    threshold: float
    target_fmr: float
    achieved_fmr: float
    n_impostor: int
    resolvable: bool


def threshold_at_fmr(impostor, target_fmr) -> ThresholdChoice:
    """The largest threshold whose FMR on ``impostor`` does not exceed ``target_fmr``.

    Definition (NIST FRVT/FRTE 1:1, e.g. NISTIR 8280: the threshold is set on all impostor
    comparisons to give a target FMR, then applied to every group): with ``s`` the sorted impostor
    scores, ``n = len(s)`` and ``k = floor(target_fmr * n)`` (the largest number of false matches
    allowed), the threshold is ``nextafter(s[k], -inf)``, the largest float below ``s[k]``, so
    every impostor tied at ``s[k]`` is rejected and the FMR is at most ``k / n``. Moving the
    threshold up to ``s[k]`` would give more than ``k`` false matches.

    ``k`` is computed exactly from the shortest decimal form of ``target_fmr`` (so 0.29 * 100 is
    29, not 28.999...), which guards against float error without an epsilon.

    When ``k == n`` (target 1) or ``s[k]`` is ``+inf`` (more than ``n - k`` impostor failures),
    no finite threshold can exceed the target; the largest finite float (``MAX_THRESHOLD``) is
    returned: every finite distance matches, failures still do not.

    Raises:
        ValueError: empty ``impostor``, NaN / ``-inf`` scores, or ``target_fmr`` outside (0, 1].
    """
    target = _check_target(target_fmr)
    s = np.sort(check_scores(impostor, "impostor"))
    n = int(s.size)
    if n == 0:
        raise ValueError("threshold_at_fmr needs at least one impostor score")
    k = math.floor(Fraction(repr(target)) * n)
    if k < n and np.isfinite(s[k]):
        threshold = float(np.nextafter(s[k], -np.inf))
    else:
        threshold = MAX_THRESHOLD
    achieved = int(np.count_nonzero(s <= threshold)) / n
    return ThresholdChoice(
        threshold=threshold,
        target_fmr=target,
        achieved_fmr=achieved,
        n_impostor=n,
        resolvable=bool(k >= 1),
    )


def det_curve(genuine, impostor):
    """FMR and FNMR at every distinct finite score value.

    Definition: for each threshold ``t`` in the sorted distinct finite values of
    ``genuine`` and ``impostor`` together, ``fmr[j] = #(impostor <= t) / n_impostor`` and
    ``fnmr[j] = #(genuine > t) / n_genuine`` (ISO/IEC 19795-1:2021 DET curve: the trade-off
    between FNMR and FMR as the threshold varies). ``+inf`` scores are not thresholds
    (they would make failures matches). Thresholds increase, so FMR is non-decreasing and FNMR
    non-increasing.

    Returns:
        ``(thresholds, fmr, fnmr)`` as float64 arrays of equal length (empty if no finite score).

    Raises:
        ValueError: empty genuine or impostor set, NaN / ``-inf`` scores.
    """
    g = check_scores(genuine, "genuine")
    i = check_scores(impostor, "impostor")
    if g.size == 0 or i.size == 0:
        raise ValueError("det_curve needs at least one genuine and one impostor score")
    both = np.concatenate([g, i])
    thresholds = np.unique(both[np.isfinite(both)])
    g_sorted = np.sort(g)
    i_sorted = np.sort(i)
    fm = np.searchsorted(i_sorted, thresholds, side="right")
    fnm = g.size - np.searchsorted(g_sorted, thresholds, side="right")
    return thresholds, fm / i.size, fnm / g.size


def eer(genuine, impostor) -> float:
    """Equal error rate.

    Definition (the bob.measure ``eer`` convention; Poh & Bengio 2006): among the thresholds of
    ``det_curve``, take the one where ``|FMR - FNMR|`` is smallest (the smallest such threshold on
    ties) and return ``(FMR + FNMR) / 2`` there. No interpolation between operating points.

    Raises:
        ValueError: empty genuine or impostor set, no finite score, NaN / ``-inf`` scores.
    """
    _, fm, fnm = det_curve(genuine, impostor)
    if fm.size == 0:
        raise ValueError("eer needs at least one finite score")
    j = int(np.argmin(np.abs(fm - fnm)))
    return float((fm[j] + fnm[j]) / 2.0)


def fnmr_at_fmr(genuine, impostor, target_fmr) -> dict:
    """FNMR at the threshold chosen by ``threshold_at_fmr(impostor, target_fmr)``.

    Definition: NIST FRVT/FRTE 1:1 "FNMR at FMR = target" (e.g. NISTIR 8280), with FNMR as in
    ISO/IEC 19795-1:2021. FNMR is NaN when ``genuine`` is empty.

    Returns:
        ``{"fnmr", "threshold", "achieved_fmr", "resolvable"}``.
    """
    choice = threshold_at_fmr(impostor, target_fmr)
    return {
        "fnmr": fnmr(genuine, choice.threshold),
        "threshold": choice.threshold,
        "achieved_fmr": choice.achieved_fmr,
        "resolvable": choice.resolvable,
    }


# --------------------------------------------------------------------------- LFW-style accuracy


def _scores_and_labels(scores, mated):
    s = check_scores(scores, "scores")
    m = check_mated(mated, s.size)
    return s, m


def best_accuracy_threshold(scores, mated) -> float:
    """The threshold maximising verification accuracy ``(TP + TN) / N``.

    Definition: TP = mated with ``score <= t``, TN = non-mated with ``score > t`` (so ``+inf``
    failures are non-matches: correct when non-mated, wrong when mated). Candidates are one value
    below the smallest finite score (no finite score matches), the midpoint between each pair of
    consecutive distinct finite scores, and the largest finite score (every finite score matches).
    The first (smallest) candidate of maximal accuracy wins. This is the usual way of fixing a
    threshold on training folds under the LFW protocol (Huang et al. 2007); the LFW report leaves
    the training method to the user.

    Raises:
        ValueError: no finite score, NaN / ``-inf`` scores, bad ``mated``.
    """
    s, m = _scores_and_labels(scores, mated)
    finite = np.isfinite(s)
    u = np.unique(s[finite])
    if u.size == 0:
        raise ValueError("best_accuracy_threshold needs at least one finite score")
    lo, hi = u[:-1], u[1:]
    mid = lo + (hi - lo) / 2.0
    mid = np.where(mid >= hi, lo, mid)  # adjacent floats: the lower one separates them
    candidates = np.concatenate([[np.nextafter(u[0], -np.inf)], mid, [u[-1]]])
    # Candidate j (j >= 1) accepts exactly the scores <= u[j - 1]; candidate 0 accepts none.
    gen_sorted = np.sort(s[m])
    imp_sorted = np.sort(s[~m])
    accepted = np.concatenate([[-np.inf], u])  # the largest accepted value per candidate
    tp = np.searchsorted(gen_sorted, accepted, side="right")
    fm = np.searchsorted(imp_sorted, accepted, side="right")
    tn = imp_sorted.size - fm
    correct = tp + tn
    return float(candidates[int(np.argmax(correct))])


def kfold_accuracy(scores, mated, fold) -> dict:
    """Mean accuracy over folds, the threshold for each fold chosen on the other folds.

    Definition (LFW protocol, Huang et al. 2007 and the LFW README, View 2): for each fold ``f``,
    ``t_f = best_accuracy_threshold`` on the comparisons not in ``f``; the fold's accuracy is the
    fraction of its comparisons classified correctly at ``t_f`` (match when ``score <= t_f``).
    ``mean`` is the mean of the per-fold accuracies, ``std`` their sample standard deviation
    (``ddof=1``), and ``sem = std / sqrt(k)``, what the LFW README calls the standard error of the
    mean.

    Returns:
        ``{"mean", "std", "sem", "per_fold", "thresholds", "n_folds"}``: ``per_fold`` holds the
        per-fold accuracies and ``thresholds`` the per-fold thresholds, both as lists of floats in
        sorted fold-label order.

    Raises:
        ValueError: fewer than two folds, a fold with no comparisons left for training, bad input.
    """
    s, m = _scores_and_labels(scores, mated)
    f = np.asarray(fold)
    if f.ndim != 1 or f.shape[0] != s.size:
        raise ValueError(f"fold must be 1-D of length {s.size}, got shape {f.shape}")
    labels = np.unique(f)
    if labels.size < 2:
        raise ValueError("kfold_accuracy needs at least two folds")
    accs, thrs = [], []
    for label in labels:
        test = f == label
        t = best_accuracy_threshold(s[~test], m[~test])
        accs.append(float(np.mean((s[test] <= t) == m[test])))
        thrs.append(t)
    acc = np.asarray(accs)
    std = float(np.std(acc, ddof=1))
    return {
        "mean": float(acc.mean()),
        "std": std,
        "sem": std / math.sqrt(acc.size),
        "per_fold": accs,
        "thresholds": thrs,
        "n_folds": int(labels.size),
    }
