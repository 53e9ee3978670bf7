"""FMR and FNMR per demographic group at one threshold.

One threshold for everyone (NIST FRVT/FRTE practice, e.g. NISTIR 8280): the threshold is chosen
once (typically ``rates.threshold_at_fmr`` on all impostor comparisons) and every group's FMR and
FNMR is reported at that same threshold. Score conventions are those of ``evalkit.metrics.rates``
(distances, match when ``score <= threshold``, ``+inf`` failures never match, NaN raises).

Group membership of a comparison (each side carries its image's / subject's label):

- a comparison belongs to group ``g`` when both sides are labelled ``g``
  (``group_a == group_b == g``): for a genuine comparison, both images; for an impostor comparison,
  both subjects;
- a comparison whose two sides differ goes to ``"mixed"``, reported on its own and never folded
  into any group.

Labels such as ``"unlabelled"``, ``"conflict"`` or ``"multiple"`` are ordinary groups here, kept
explicit. Labels are compared as strings; ``None`` is rejected (use an explicit label).
The result is shaped like fairlearn's ``MetricFrame`` (``by_group`` plus the cross-group remainder),
with a Clopper-Pearson interval on every rate (``uncertainty.rate_summary``).
"""

from __future__ import annotations

import numpy as np

from .rates import check_labels as _labels
from .rates import check_mated, check_scores, check_threshold
from .uncertainty import rate_summary

__all__ = ["group_rates", "overall_rates"]


def _subjects(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D of length {n}, got shape {arr.shape}")
    return arr


def _summary(fm: int, n_imp: int, fnm: int, n_gen: int, n_subjects: int,
             confidence: float) -> dict:
    return {
        "fmr": rate_summary(fm, n_imp, confidence),
        "fnmr": rate_summary(fnm, n_gen, confidence),
        "n_subjects": int(n_subjects),
        "n_genuine": int(n_gen),
        "n_impostor": int(n_imp),
    }


def _prepare(scores, mated, subject_a, subject_b, threshold):
    s = check_scores(scores, "scores")
    n = s.size
    m = check_mated(mated, n)
    sa = _subjects(subject_a, n, "subject_a")
    sb = _subjects(subject_b, n, "subject_b")
    t = check_threshold(threshold)
    match = s <= t
    return m, sa, sb, match


def _grouped(codes: np.ndarray, n_groups: int, m: np.ndarray, match: np.ndarray,
             subj_a: np.ndarray, subj_b: np.ndarray, confidence: float) -> list[dict]:
    """One summary per group code ``0..n_groups-1`` (``subj_*`` are integer subject codes)."""
    n_gen = np.bincount(codes[m], minlength=n_groups)
    n_imp = np.bincount(codes[~m], minlength=n_groups)
    fnm = np.bincount(codes[m & ~match], minlength=n_groups)
    fm = np.bincount(codes[~m & match], minlength=n_groups)
    n_subj_codes = int(max(subj_a.max(initial=-1), subj_b.max(initial=-1))) + 1
    pairs = np.unique(np.concatenate([codes, codes]) * n_subj_codes
                      + np.concatenate([subj_a, subj_b]))
    n_subjects = np.bincount(pairs // max(n_subj_codes, 1), minlength=n_groups)
    return [_summary(int(fm[j]), int(n_imp[j]), int(fnm[j]), int(n_gen[j]), int(n_subjects[j]),
                     confidence) for j in range(n_groups)]


def _subject_codes(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, inv = np.unique(np.concatenate([sa, sb]), return_inverse=True)
    inv = inv.reshape(-1)
    return inv[: sa.size], inv[sa.size:]


def group_rates(scores, mated, subject_a, subject_b, group_a, group_b, threshold,
                confidence: float = 0.95) -> dict:
    """FMR and FNMR per group at one shared threshold.

    Definition: for group ``g``, FMR = false matches (``score <= threshold``) among impostor
    comparisons whose two subjects are both in ``g``; FNMR = false non-matches (``score >
    threshold``, ``+inf`` included) among genuine comparisons whose two images are both labelled
    ``g`` (ISO/IEC 19795-1:2021 rates; per-group reporting at one threshold as in NIST FRVT/FRTE
    demographic reports, NISTIR 8280). Comparisons whose sides carry different labels are
    summarised under ``"mixed"``.

    Args:
        scores: distances, one per comparison.
        mated: True for genuine comparisons.
        subject_a, subject_b: subject id of each side.
        group_a, group_b: group label of each side.
        threshold: finite distance threshold.
        confidence: level of the Clopper-Pearson intervals.

    Returns:
        ``{"by_group": {label: summary}, "mixed": summary}`` with groups in sorted label order;
        each summary is ``{"fmr": rate_summary, "fnmr": rate_summary, "n_subjects", "n_genuine",
        "n_impostor"}``, where ``n_subjects`` counts distinct subjects appearing in that group's
        comparisons.
    """
    m, sa, sb, match = _prepare(scores, mated, subject_a, subject_b, threshold)
    n = m.size
    ga = _labels(group_a, n, "group_a")
    gb = _labels(group_b, n, "group_b")
    code_a, code_b = _subject_codes(sa, sb)

    same = ga == gb
    names, codes = np.unique(ga[same], return_inverse=True)
    codes = codes.reshape(-1)
    by_group = _grouped(codes, names.size, m[same], match[same], code_a[same], code_b[same],
                        confidence)
    mixed_sel = ~same
    mixed = _grouped(np.zeros(int(mixed_sel.sum()), dtype=np.intp), 1, m[mixed_sel],
                     match[mixed_sel], code_a[mixed_sel], code_b[mixed_sel], confidence)[0]
    return {
        "by_group": {str(name): summary for name, summary in zip(names.tolist(), by_group)},
        "mixed": mixed,
    }


def overall_rates(scores, mated, subject_a, subject_b, threshold,
                  confidence: float = 0.95) -> dict:
    """FMR and FNMR over all comparisons at ``threshold``, in the summary shape of ``group_rates``.

    Definition: FMR = false matches among all impostor comparisons, FNMR = false non-matches among
    all genuine comparisons (ISO/IEC 19795-1:2021); ``n_subjects`` counts distinct subjects on
    either side.
    """
    m, sa, sb, match = _prepare(scores, mated, subject_a, subject_b, threshold)
    code_a, code_b = _subject_codes(sa, sb)
    return _grouped(np.zeros(m.size, dtype=np.intp), 1, m, match, code_a, code_b, confidence)[0]
