"""Summaries of the two audits that real data often allows instead of a full 1:1 evaluation.

**Impostor only** (one image per subject, e.g. a database of volunteers photographed once): every
comparison is non-mated, so the false-match rate can be measured per group and between groups,
and the false non-match rate cannot: there is no genuine comparison. FNMR is reported as *not
measurable* with that reason, never as 0 or NaN.

**Enrolment only** (images with demographic labels and no identities, e.g. UTKFace, FairFace): no
comparison is known to be mated or non-mated, so neither FMR nor FNMR is measurable; what is
measurable is the failure to detect / enrol of each group, per detector and backend, with its
reasons.

Definitions (ISO/IEC 19795-1; NISTIR 8280 for the group rules):

- FMR of group g = false matches / impostor comparisons whose two subjects are both labelled g;
  a false match is a distance <= the threshold (a comparison touching a failed image is a
  non-match under ``failure_policy=nonmatch``, or left out under ``exclude``).
- cross-group FMR [g, h] = the same over impostor comparisons with one subject in g and the other
  in h (symmetric);
- failure to enrol (FTE) of group g = images of g the backend could not turn into a template
  (no face, unreadable, missing file ...) / images of g.

Intervals: exact Clopper-Pearson at the run's confidence, and the exact one-sided upper bound when
no error is observed (``evalkit.metrics.uncertainty``). They treat comparisons (images) as
independent trials; impostor comparisons sharing a subject are not, so for FMR they are optimistic
(the report says so). Beside them every FMR (overall, per group, mixed, per intersection) gets the
subject-clustered bootstrap interval of the 1:1 runs (:func:`fmr_bootstrap`: the same
``cluster_bootstrap``, strata, seed and interval rule), which respects that sharing.

Failure to enrol also gets the subject-clustered bootstrap interval of the 1:1 rates
(:func:`fte_bootstrap`: ``evalkit.metrics.bootstrap.cluster_bootstrap`` and its interval rule,
Korn & Graubard's Clopper-Pearson at the effective sample size, with the run's
``bootstrap.replicates`` and ``bootstrap.seed``). The cluster is the subject; where the data has
no identities every image is its own subject, so each image is its own cluster and the bootstrap
is an ordinary (stratified) bootstrap of images, whose interval is then close to the exact one.
"""

from __future__ import annotations

import numpy as np

from evalkit.data.samples import SPECIAL_LABELS
from evalkit.metrics import uncertainty

__all__ = ["estimate", "not_measurable", "impostor_only_summary", "enrolment_summary", "fte_bootstrap", "fmr_bootstrap",
           "FNMR_NOT_MEASURABLE", "IMPOSTOR_SCOPE", "ENROLMENT_SCOPE"]

FNMR_NOT_MEASURABLE = ("not measurable: the data has one image per subject, so there is no genuine (mated) "
                       "comparison to miss")
IMPOSTOR_SCOPE = {
    "can_show": ["how often impostor comparisons match falsely (FMR) within each group and between groups, at one "
                 "threshold", "failure to enrol per group"],
    "cannot_show": ["false non-match rates (FNMR): there are no two images of one person",
                    "accuracy, EER or DET curves, which need genuine comparisons",
                    "whether a threshold chosen here would keep the same people recognised"],
}
ENROLMENT_SCOPE = {
    "can_show": ["how often the detector / backend fails to enrol an image of each group and intersection, and why"],
    "cannot_show": ["false match and false non-match rates: without identities no comparison is known to be mated or "
                    "non-mated", "anything about recognition once an image is enrolled"],
}


def estimate(errors: int, n: int, subjects: int, confidence: float, unit: str, min_count=(10, 30)) -> dict:
    """One rate with the evidence behind it (the RateEstimate fields of metrics schema 3):
    ``{rate, errors, n, subjects, ci, upper, ci_boot, ci_boot_reason, small, small_reason,
    estimable, reason}``. ``rate`` is None when ``n == 0`` (not estimable, with the reason)."""
    rs = uncertainty.rate_summary(int(errors), int(n), confidence)
    why = []
    if min_count:
        if subjects < min_count[0]:
            why.append(f"{subjects} subjects < {min_count[0]}")
        if n < min_count[1]:
            why.append(f"{n} {unit} < {min_count[1]}")
    return {"rate": rs["rate"], "errors": int(errors), "n": int(n), "subjects": int(subjects),
            "ci": rs["ci"] if n else None, "upper": rs["upper_bound_if_zero"], "ci_boot": None,
            "ci_boot_reason": "not computed for this protocol (exact intervals only)",
            "small": bool(why), "small_reason": "; ".join(why) or None,
            "estimable": n > 0, "reason": None if n else f"no {unit}: the rate is not estimable"}


def not_measurable(reason: str) -> dict:
    """A rate the data cannot measure at all (not a small sample: no trial of its kind exists)."""
    return {"rate": None, "errors": 0, "n": 0, "subjects": 0, "ci": None, "upper": None, "ci_boot": None,
            "ci_boot_reason": reason, "small": False, "small_reason": None, "estimable": False, "reason": reason}


def _ratio(entries: dict) -> dict:
    """max/min FMR over the groups that are estimable, not small and not a special label state."""
    use = {g: e["fmr"]["rate"] for g, e in entries.items()
           if g not in SPECIAL_LABELS and e["fmr"]["estimable"] and not e["fmr"]["small"]}
    d = {"definition": "max over groups / min over groups of FMR at the one threshold (NISTIR 8280's differential)",
         "groups": sorted(use)}
    if len(use) < 2:
        return {**d, "value": None, "reason": f"{len(use)} group(s) with an FMR that is estimable and not small: "
                                              "a ratio needs two"}
    hi, lo = max(use.values()), min(use.values())
    if lo == 0:
        return {**d, "value": None, "reason": "the lowest group FMR is 0 (no false match observed): the ratio is "
                                              "unbounded; read the groups' upper bounds"}
    return {**d, "value": hi / lo, "reason": None}


def _intersections(groups: dict, intersections, out: dict):
    """(name, attributes) of each requested intersection the dataset has every attribute of; the
    others are recorded in ``out["intersections_skipped"]`` with the reason."""
    for combo in intersections:
        name = " x ".join(combo)
        missing = [a for a in combo if a not in groups]
        if missing:
            out.setdefault("intersections_skipped", {})[name] = f"attribute(s) {missing} not in this dataset"
            continue
        yield name, combo


def _joined(columns) -> np.ndarray:
    """Per row, the labels of several attributes joined as one intersection label ("female x asian")."""
    return np.array([" x ".join(t) for t in zip(*[np.asarray(c).astype(str) for c in columns])])


def impostor_only_summary(match, subjects_a, subjects_b, groups: dict, confidence: float, min_count=(10, 30),
                          intersections=(), bootstrap: dict | None = None) -> dict:
    """The rate blocks of an impostor-only run.

    Args:
        match: per impostor comparison, True when it is a false match at the threshold.
        subjects_a, subjects_b: the two subjects of each comparison.
        groups: attribute -> (labels of side a, labels of side b).
        intersections: lists of attributes to cross (those present in ``groups``).
        bootstrap: ``{replicates, seed}`` for the subject-clustered FMR intervals
            (:func:`fmr_bootstrap`); None: exact intervals only.

    Returns ``{overall, groups, mixed, cross_fmr, intersections, intersections_skipped, disparity,
    bootstrap}``; every group entry is ``{"fmr": estimate, "fnmr": not measurable}``.
    """
    match = np.asarray(match, dtype=bool)
    sa, sb = np.asarray(subjects_a).astype(str), np.asarray(subjects_b).astype(str)
    fnmr = not_measurable(FNMR_NOT_MEASURABLE)

    def fmr(sel) -> dict:
        n_subj = len(np.unique(np.concatenate([sa[sel], sb[sel]])))
        return {"fmr": estimate(int(match[sel].sum()), int(sel.sum()), n_subj, confidence, "impostor comparisons",
                                min_count), "fnmr": fnmr}

    info = []

    def boot(entries: dict, ga, gb, mixed=False) -> None:
        ivs, desc = fmr_bootstrap(match, sa, sb, ga, gb, confidence, bootstrap, mixed=mixed)
        if desc is not None and not info:
            info.append(desc)
        for g, iv in ivs.items():
            if g in entries:
                entries[g]["fmr"].update(iv)

    def breakdown(ga, gb) -> tuple[dict, dict]:
        same = ga == gb
        per = {str(g): fmr(same & (ga == g)) for g in np.unique(np.concatenate([ga, gb]))}
        mixed = fmr(~same)
        boot(per, ga, gb)
        boot({"mixed": mixed}, ga, gb, mixed=True)
        return per, mixed

    everyone = np.full(len(match), "all")
    overall = {"all": fmr(np.ones(len(match), bool))}
    boot(overall, everyone, everyone)
    out = {"overall": overall["all"], "groups": {}, "mixed": {}, "cross_fmr": {},
           "intersections": {}, "disparity": {}}
    for attr, (ga, gb) in groups.items():
        ga, gb = np.asarray(ga).astype(str), np.asarray(gb).astype(str)
        out["groups"][attr], out["mixed"][attr] = breakdown(ga, gb)
        out["cross_fmr"][attr] = cross_fmr(match, ga, gb)
        out["disparity"][attr] = {"fmr_max_min_ratio": _ratio(out["groups"][attr]),
                                  "fnmr_max_min_ratio": {"value": None, "reason": FNMR_NOT_MEASURABLE}}
    for name, combo in _intersections(groups, intersections, out):
        out["intersections"][name], _ = breakdown(_joined(groups[a][0] for a in combo),
                                                  _joined(groups[a][1] for a in combo))
    out["bootstrap"] = ({**info[0], "note": "FMR intervals are conservative (product weighting of resampled "
                                            "impostor pairs)"} if info else None)
    return out


FMR_BOOT_OFF = "not computed (bootstrap.replicates=0)"


def fmr_bootstrap(match, subjects_a, subjects_b, ga, gb, confidence: float, bootstrap: dict | None,
                  mixed: bool = False):
    """group -> ``{"ci_boot", "ci_boot_reason"}`` for the FMR of each group's impostor
    comparisons (``mixed``: the one entry ``"mixed"``, comparisons across groups), and the
    bootstrap's description (``BootstrapResult.info``) or None when it is off.

    Definition: the 1:1 rates' subject-clustered bootstrap (``cluster_bootstrap``) on comparisons
    that are all non-mated: subjects are resampled with replacement within the strata of their
    group label(s), a comparison weighs the product of its two subjects' multiplicities, a
    replicate's FMR is weighted false matches over weighted comparisons, and the interval is
    ``BootstrapResult.interval``'s (Korn & Graubard 1998; none, with the reason, when degenerate).
    The product weight is conservative for FMR (see ``cluster_bootstrap``). Seeded by
    ``bootstrap = {replicates, seed}``; None or 0 replicates: every entry null with
    ``FMR_BOOT_OFF``."""
    ga, gb = np.asarray(ga).astype(str), np.asarray(gb).astype(str)
    names = ["mixed"] if mixed else [str(g) for g in np.unique(ga[ga == gb])]
    if not bootstrap or not bootstrap.get("replicates") or not len(ga):
        return {g: {"ci_boot": None, "ci_boot_reason": FMR_BOOT_OFF} for g in names}, None
    from .bootstrap import MIXED_GROUP, cluster_bootstrap

    match = np.asarray(match, dtype=bool)
    if mixed and not (ga != gb).any():
        return {"mixed": {"ci_boot": None, "ci_boot_reason": "no comparisons across groups"}}, None
    boot = cluster_bootstrap(match, np.zeros(len(match), bool), np.asarray(subjects_a).astype(str),
                             np.asarray(subjects_b).astype(str), ga, gb, replicates=int(bootstrap["replicates"]),
                             seed=int(bootstrap.get("seed", 0)), confidence=confidence, mixed=mixed)
    out = {}
    for g in boot.groups:
        iv = boot.interval("fmr", g)
        out["mixed" if g == MIXED_GROUP else g] = {"ci_boot": iv.as_list(), "ci_boot_reason": iv.reason}
    return out, boot.info()


def cross_fmr(match, ga, gb) -> dict:
    """Symmetric cross-group FMR matrix: cell [i][j] counts impostor comparisons with one side in
    labels[i] and the other in labels[j], and the false matches among them."""
    labels = np.unique(np.concatenate([ga, gb]))
    ia, ib = np.searchsorted(labels, ga), np.searchsorted(labels, gb)
    k = len(labels)
    n = np.zeros((k, k), dtype=np.int64)
    fm = np.zeros((k, k), dtype=np.int64)
    np.add.at(n, (ia, ib), 1)
    np.add.at(fm, (ia, ib), np.asarray(match, dtype=np.int64))
    off = ~np.eye(k, dtype=bool)
    n, fm = n + n.T * off, fm + fm.T * off
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, fm / np.maximum(n, 1), np.nan)
    return {"labels": labels.tolist(), "false_matches": fm.tolist(), "n_impostor": n.tolist(),
            "fmr": [[None if np.isnan(x) else float(x) for x in row] for row in rate]}


FTE_BOOT_OFF = "not computed (bootstrap.replicates=0)"


def bootstrap_unit(subjects) -> str:
    """``"subject"``, or ``"image"`` when every image is its own subject (no identities)."""
    subj = np.asarray(subjects).astype(str)
    return "image" if len(np.unique(subj)) == len(subj) else "subject"


def _fte_words(reason: str | None) -> str | None:
    """The 1:1 bootstrap's reasons (which see an image as a genuine comparison of its cluster) in
    failure-to-enrol terms."""
    if reason is None:
        return None
    return reason.replace("FNMR", "FTE").replace("genuine comparisons", "images")


def fte_bootstrap(failed, subjects, labels, confidence: float, bootstrap: dict | None) -> dict:
    """group -> ``{"ci_boot": [lo, hi] | None, "ci_boot_reason": str | None}``: the
    subject-clustered bootstrap interval of each group's failure to enrol.

    Definition: the 1:1 rates' bootstrap (``cluster_bootstrap``) with every image a genuine
    "comparison" of its subject whose error is the failure: subjects are resampled with
    replacement within the strata of their group label(s), each keeping its number of subjects,
    an image weighs its subject's multiplicity, a replicate's FTE is weighted failures over
    weighted images, and the interval is ``BootstrapResult.interval``'s (Korn & Graubard 1998:
    Clopper-Pearson at the effective sample size; none, with the reason, when no image or every
    image failed, or when the replicates do not vary, e.g. a group of one subject). Seeded:
    ``bootstrap = {replicates, seed}`` as for 1:1 runs. ``None``/0 replicates: every entry null
    with ``FTE_BOOT_OFF``."""
    labels = np.asarray(labels).astype(str)
    if not len(labels):
        return {}
    if not bootstrap or not bootstrap.get("replicates"):
        return {str(g): {"ci_boot": None, "ci_boot_reason": FTE_BOOT_OFF} for g in np.unique(labels)}
    from .bootstrap import cluster_bootstrap

    subj = np.asarray(subjects).astype(str)
    failed = np.asarray(failed, dtype=bool)
    boot = cluster_bootstrap(failed, np.ones(len(failed), bool), subj, subj, labels,
                             replicates=int(bootstrap["replicates"]), seed=int(bootstrap.get("seed", 0)),
                             confidence=confidence)
    out = {}
    for g in boot.groups:
        iv = boot.interval("fnmr", g)
        out[g] = {"ci_boot": iv.as_list(), "ci_boot_reason": _fte_words(iv.reason)}
    return out


def enrolment_summary(failures, subjects, groups: dict, confidence: float, min_count=(10, 30),
                      intersections=(), bootstrap: dict | None = None) -> dict:
    """Failure to enrol per group and per intersection, with the reasons.

    Args:
        failures: per image, None when enrolled, else the failure reason.
        subjects: per image, its subject id (with no identities: one per image).
        groups: attribute -> per-image labels.
        bootstrap: ``{replicates, seed}`` for the subject-clustered intervals (:func:`fte_bootstrap`;
            None: none).

    Returns ``{overall, groups, intersections, intersections_skipped, reasons, disparity}``: every
    entry ``{"fte": estimate, "by_reason": {reason: count}}``.
    """
    failed = np.array([bool(f) for f in failures], dtype=bool)
    reasons = np.array([f or "" for f in failures], dtype=object)
    subj = np.asarray(subjects).astype(str)

    def with_boot(entries: dict, labels) -> dict:
        for g, iv in fte_bootstrap(failed, subj, labels, confidence, bootstrap).items():
            entries[g]["fte"].update(iv)
        return entries

    def fte(sel) -> dict:
        r, c = np.unique(reasons[sel & failed].astype(str), return_counts=True)
        return {"fte": estimate(int(failed[sel].sum()), int(sel.sum()), len(np.unique(subj[sel])), confidence,
                                "images", min_count),
                "by_reason": {str(k): int(v) for k, v in zip(r, c)}}

    def per(labels) -> dict:
        labels = np.asarray(labels).astype(str)
        return with_boot({str(g): fte(labels == g) for g in np.unique(labels)}, labels)

    overall = with_boot({"all": fte(np.ones(len(failed), bool))}, np.full(len(failed), "all"))["all"]
    out = {"overall": overall, "groups": {}, "intersections": {}, "disparity": {}}
    for attr, labels in groups.items():
        out["groups"][attr] = per(labels)
        use = {g: e["fte"]["rate"] for g, e in out["groups"][attr].items()
               if g not in SPECIAL_LABELS and not e["fte"]["small"] and e["fte"]["estimable"]}
        d = {"definition": "max over groups / min over groups of failure to enrol", "groups": sorted(use)}
        if len(use) < 2:
            d.update(value=None, reason=f"{len(use)} group(s) with an FTE that is estimable and not small")
        elif min(use.values()) == 0:
            d.update(value=None, reason="the lowest group FTE is 0: the ratio is unbounded; read the upper bounds")
        else:
            d.update(value=max(use.values()) / min(use.values()), reason=None)
        out["disparity"][attr] = {"fte_max_min_ratio": d}
    for name, combo in _intersections(groups, intersections, out):
        out["intersections"][name] = per(_joined(groups[a] for a in combo))
    return out
