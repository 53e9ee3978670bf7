"""Assemble metrics.json from a score table: pure computation, no I/O.

metrics.json schema ("evalkit.metrics/1"). Rates are fractions in [0, 1]; ``null`` where a
denominator is zero. Every rate comes with the counts behind it and a ``confidence`` interval
(Clopper-Pearson, exact binomial). When no errors are observed, ``*_upper_bound`` holds the
rule-of-three 95% upper bound (3/n): zero observed errors is not a zero rate.

    schema            "evalkit.metrics/1"
    experiment        experiment name
    dataset           {name, n_samples, n_subjects, attributes, label_sources, label_coverage}
                      label_coverage: attribute -> label -> {subjects, samples} over the samples
                      the protocol uses ("unlabelled", "conflict", "multiple" kept explicit)
    protocol          {name, n_comparisons, n_genuine, n_impostor, n_folds}
    backend           {name, family, distance, fingerprint}
    failure_policy    "nonmatch" (failed comparisons count as non-matches, ISO/IEC 19795-1) or
                      "exclude" (left out; counted in failures.excluded_comparisons)
    failures          {images: {n, failed, rate, by_reason, fallbacks}, comparisons: {genuine, impostor},
                       excluded_comparisons, by_group: attribute -> group -> {n_images, failed, rate, ci, fallbacks}}
                      fallbacks: images embedded only through a documented fallback (e.g. dlib's
                      centre box when no face was detected), by note; not failures, but counted
    threshold         {policy, value, target_fmr, achieved_fmr, resolvable, n_impostor}
                      policy target_fmr: one threshold for everyone from all impostors (NIST FRTE);
                      resolvable is false when target_fmr < 1/n_impostor.
    overall           {fmr, fmr_ci, fmr_upper_bound, false_matches, n_impostor,
                       fnmr, fnmr_ci, fnmr_upper_bound, false_nonmatches, n_genuine, n_subjects}
    groups            attribute -> group -> same fields as overall. A genuine comparison belongs to
                      group g when both images are labelled g; an impostor comparison when both
                      subjects are in g.
    mixed             attribute -> same fields, for comparisons whose two sides differ in group
                      (mixed-group impostors; reported on their own)
    eer               equal error rate over the run's comparisons
    lfw_accuracy      (protocols with folds) {mean, std, sem, per_fold, thresholds, n_folds}:
                      the standard 10-fold LFW accuracy, threshold chosen on 9 folds, tested on the 10th
"""

from __future__ import annotations

import math

import numpy as np

from ..scoring import apply_failure_policy
from . import groups as groups_mod
from . import rates, uncertainty

SCHEMA = "evalkit.metrics/1"


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if not math.isfinite(x) else x
    return x


def flatten_summary(s: dict) -> dict:
    """groups.py summary {fmr: rate_summary, fnmr: rate_summary, counts} -> flat fields."""
    out = {}
    for rate, count_key, n_key in (("fmr", "false_matches", "n_impostor"), ("fnmr", "false_nonmatches", "n_genuine")):
        r = s[rate]
        out[rate] = r["rate"]
        out[f"{rate}_ci"] = r["ci"]
        out[f"{rate}_upper_bound"] = r["upper_bound_if_zero"]
        out[count_key] = r["errors"]
        out[n_key] = r["n"]
    out["n_subjects"] = s["n_subjects"]
    return out


def choose_threshold(impostor: np.ndarray, policy: str, target_fmr: float, value) -> dict:
    if policy == "fixed":
        return {"policy": "fixed", "value": float(value), "target_fmr": None,
                "achieved_fmr": rates.fmr(impostor, value),
                "resolvable": True, "n_impostor": int(len(impostor))}
    choice = rates.threshold_at_fmr(impostor, target_fmr)
    return {"policy": "target_fmr", "value": float(choice.threshold), "target_fmr": float(target_fmr),
            "achieved_fmr": float(choice.achieved_fmr), "resolvable": bool(choice.resolvable),
            "n_impostor": int(choice.n_impostor)}


def failures_by_group(image_failures, image_groups: dict, confidence: float, image_notes=None) -> dict:
    """Failure-to-enrol per group: attribute -> group -> {n_images, failed, rate, ci, fallbacks}.

    The rate is failed images over the group's images; ci is Clopper-Pearson."""
    failed = np.array([bool(f) for f in image_failures], dtype=bool)
    noted = np.array([bool(n) for n in (image_notes if image_notes is not None else [""] * len(failed))], dtype=bool)
    noted &= ~failed
    out = {}
    for attr, labels in image_groups.items():
        per = {}
        for g in np.unique(labels):
            m = labels == g
            rs = uncertainty.rate_summary(int(failed[m].sum()), int(m.sum()), confidence)
            per[str(g)] = {"n_images": int(m.sum()), "failed": rs["errors"], "rate": rs["rate"], "ci": rs["ci"],
                           "fallbacks": int(noted[m].sum())}
        out[attr] = per
    return out


def summarise(table, *, threshold_policy: str, target_fmr: float, threshold_value, failure_policy: str,
              confidence: float, image_failures, image_groups: dict, header: dict, image_notes=None) -> dict:
    """Build the metrics.json dict (see module docstring) from a ScoreTable and per-image failures.

    image_failures: reason or None per image the protocol uses; image_groups: attribute ->
    labels of those images. header: experiment/dataset/protocol/backend blocks, passed through.
    """
    scores, keep = apply_failure_policy(table.distance, table.failed, failure_policy)
    s, mated = scores[keep], table.mated[keep]
    sa, sb = table.subject_a[keep], table.subject_b[keep]
    genuine, impostor = s[mated], s[~mated]
    if len(impostor) == 0 or len(genuine) == 0:
        raise ValueError("the run needs both genuine and impostor comparisons")

    thr = choose_threshold(impostor, threshold_policy, target_fmr, threshold_value)
    t = thr["value"]

    reasons: dict[str, int] = {}
    fallbacks: dict[str, int] = {}
    for i, f in enumerate(image_failures):
        if f:
            reasons[f] = reasons.get(f, 0) + 1
        elif image_notes is not None and image_notes[i]:
            fallbacks[image_notes[i]] = fallbacks.get(image_notes[i], 0) + 1
    n_img = len(image_failures)
    n_failed = sum(reasons.values())
    out = dict(header)
    out["schema"] = SCHEMA
    out["failure_policy"] = failure_policy
    out["failures"] = {
        "images": {"n": n_img, "failed": n_failed, "rate": n_failed / n_img if n_img else None,
                   "by_reason": dict(sorted(reasons.items())), "fallbacks": dict(sorted(fallbacks.items()))},
        "comparisons": {"genuine": int((table.failed & table.mated).sum()),
                        "impostor": int((table.failed & ~table.mated).sum())},
        "excluded_comparisons": int((~keep).sum()),
        "by_group": failures_by_group(image_failures, image_groups, confidence, image_notes),
    }
    out["threshold"] = thr
    out["overall"] = flatten_summary(groups_mod.overall_rates(s, mated, sa, sb, t, confidence))
    out["groups"], out["mixed"] = {}, {}
    for attr, (ga, gb) in table.groups.items():
        g = groups_mod.group_rates(s, mated, sa, sb, ga[keep], gb[keep], t, confidence)
        out["groups"][attr] = {k: flatten_summary(v) for k, v in g["by_group"].items()}
        out["mixed"][attr] = flatten_summary(g["mixed"])
    out["eer"] = rates.eer(genuine, impostor)
    folds = table.fold[keep]
    if (folds >= 0).all() and len(np.unique(folds)) > 1:
        out["lfw_accuracy"] = rates.kfold_accuracy(s, mated, folds)
    return _clean(out)
