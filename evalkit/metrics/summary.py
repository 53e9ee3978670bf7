"""Assemble metrics.json of a 1:1 verification run from a score table (or exhaustive counts): pure
computation, no I/O.

metrics.json schema "evalkit.metrics/3" (the layout every run shares -- the rate estimate, the
threshold record, the header -- is in ``evalkit.metrics.results``; the JSON Schema is
``evalkit/schema/metrics.schema.json``; results/README.md documents every block). Rates are
fractions in [0, 1], ``null`` where a denominator is zero. Every rate is one RateEstimate
``{rate, errors, n, subjects, ci, upper, ci_boot, ci_boot_reason, small, small_reason, estimable,
reason}``: the counts behind it, the exact Clopper-Pearson interval at ``confidence``, the exact
one-sided upper bound ``1 - (1 - confidence) ** (1 / n)`` when no errors are observed (about 3/n
at 95%, the rule of three: zero observed errors is not a zero rate), the subject-clustered
bootstrap interval or why there is none, and evalkit's one small-group flag.

The 1:1 blocks (kind "verification", rates ["fnmr", "fmr"]):

    overall           {fnmr, fmr}: RateEstimates over every comparison
    groups            attribute -> group -> {fnmr, fmr, accuracy, eer, fnmr_at_fmr}
                        accuracy     correct decisions / comparisons at the operating threshold
                        eer          on the group's own comparisons (its DET curve)
                        fnmr_at_fmr  "0.1" | "0.01" | "0.001" | "0.0001" -> {fnmr, threshold, achieved_fmr,
                                     resolvable, reason}: FNMR where the group's own impostors reach that FMR
                      A genuine comparison belongs to group g when both images are labelled g; an
                      impostor comparison when both subjects are in g. ``subjects``: distinct subjects in
                      the group's comparisons of both kinds.
    mixed             attribute -> {fnmr, fmr} for comparisons whose two sides differ in group
    intersections     "sex x race" -> "female x caucasian" -> as groups
    intersections_skipped   (when any) "sex x race" -> why it was not computed
    cross_fmr         attribute -> {labels, false_matches, n_impostor, fmr}: symmetric matrices, cell
                      [i][j] = impostor comparisons with one subject in labels[i], the other in labels[j]
    disparity         attribute -> summary name -> {value, ci, reason, definition, source, groups};
                      see evalkit.metrics.disparity and evalkit.metrics.stats
    tests             attribute -> "fnmr" | "fmr" -> [{a, b, rate_a, rate_b, difference, p_value, method}]
    eer               equal error rate over the run's comparisons
    lfw_accuracy      (protocols with folds) {mean, std, sem, per_fold, thresholds, n_folds}

Shared with every run (``results.header_block``): schema, kind, rates, experiment, dataset,
protocol, backend, failure_policy, failures ({images: {fte, by_reason, fallbacks}, comparisons,
excluded_comparisons, by_group: attribute -> group -> {fte, fallbacks}}), threshold (a
``results.ThresholdRecord``), min_count, bootstrap. One-to-many search runs: see
``evalkit.metrics.search_summary``.
"""

from __future__ import annotations

import math

import numpy as np

from ..scoring import apply_failure_policy
from . import groups as groups_mod
from . import rates, results
from . import stats as stats_mod
from .bootstrap import errors_from_decision
from .exhaustive import float32_threshold
from . import thresholds as thresholds_mod

SCHEMA = results.SCHEMA


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


def failures_by_group(image_failures, image_groups: dict, confidence: float, image_notes=None, image_subjects=None,
                      min_count=None) -> dict:
    """Failure to enrol per group: attribute -> group -> {fte: RateEstimate, fallbacks}.

    The rate is failed images over the group's images (``errors`` / ``n``), ``subjects`` the
    distinct subjects of those images (0 when ``image_subjects`` is not given); ci is
    Clopper-Pearson; ``fallbacks`` counts images embedded only through a documented fallback."""
    failed = np.array([bool(f) for f in image_failures], dtype=bool)
    noted = np.array([bool(n) for n in (image_notes if image_notes is not None else [""] * len(failed))], dtype=bool)
    noted &= ~failed
    subj = np.asarray(image_subjects).astype(str) if image_subjects is not None else None
    out = {}
    for attr, labels in image_groups.items():
        per = {}
        labels = np.asarray(labels)
        for g in np.unique(labels):
            m = labels == g
            n_subj = len(np.unique(subj[m])) if subj is not None else 0
            per[str(g)] = {"fte": results.estimate(int(failed[m].sum()), int(m.sum()), n_subj, confidence, "fte",
                                                   min_count, ci_boot_reason=FTE_BOOT),
                           "fallbacks": int(noted[m].sum())}
        out[attr] = per
    return out


FTE_BOOT = "not computed for failure to enrol (images are counted, not resampled)"


OVERALL_BOOT = "not computed for the overall rates (the bootstrap resamples each attribute's groups)"
MIXED_BOOT = "not computed for mixed-group comparisons"
FNMR_AT_FMR = (1e-1, 1e-2, 1e-3, 1e-4)


def failures_block(image_failures, image_notes, image_groups: dict, confidence: float, *, genuine: int,
                   impostor: int, excluded: int, image_subjects=None, min_count=None) -> dict:
    """metrics.json ``failures``: failure to enrol over all images (``images.fte``) with the images
    failed by reason and the fallbacks by note, comparisons touching a failure (genuine, impostor;
    for search runs mated and non-mated searches), comparisons excluded by the policy, failure to
    enrol per group."""
    reasons: dict[str, int] = {}
    fallbacks: dict[str, int] = {}
    for i, f in enumerate(image_failures):
        if f:
            reasons[f] = reasons.get(f, 0) + 1
        elif image_notes is not None and image_notes[i]:
            fallbacks[image_notes[i]] = fallbacks.get(image_notes[i], 0) + 1
    n_img, n_failed = len(image_failures), sum(reasons.values())
    n_subj = len(np.unique(np.asarray(image_subjects).astype(str))) if image_subjects is not None else 0
    return {
        "images": {"fte": results.estimate(n_failed, n_img, n_subj, confidence, "fte", min_count,
                                           ci_boot_reason=FTE_BOOT),
                   "by_reason": dict(sorted(reasons.items())), "fallbacks": dict(sorted(fallbacks.items()))},
        "comparisons": {"genuine": genuine, "impostor": impostor},
        "excluded_comparisons": excluded,
        "by_group": failures_by_group(image_failures, image_groups, confidence, image_notes, image_subjects,
                                      min_count),
    }


def _small(entry: dict, min_subjects: int, min_comparisons: int) -> dict:
    """Small-group flags of a flat entry (the input of the disparity summaries), by
    ``results.small_rule``: ``small_fmr``/``small_fnmr`` and their reasons."""
    out = {}
    for rate, n_key in (("fnmr", "n_genuine"), ("fmr", "n_impostor")):
        out[f"small_{rate}"], out[f"small_{rate}_reason"] = results.small_rule(
            entry["n_subjects"], entry[n_key], (min_subjects, min_comparisons), rate)
    return out


def _add_accuracy_and_flags(e: dict, min_count) -> dict:
    """Complete a flat group entry: ``accuracy`` (correct decisions / comparisons at the threshold)
    and the small-group flags."""
    n = e["n_genuine"] + e["n_impostor"]
    e["accuracy"] = (n - e["false_matches"] - e["false_nonmatches"]) / n if n else None
    e.update(_small(e, *min_count))
    return e


_FLAT = (("fnmr", "false_nonmatches", "n_genuine"), ("fmr", "false_matches", "n_impostor"))
_FLAT_ONLY = {"fmr", "fmr_ci", "fmr_upper_bound", "false_matches", "n_impostor", "fnmr", "fnmr_ci", "fnmr_upper_bound",
              "false_nonmatches", "n_genuine", "n_subjects", "fmr_ci_boot", "fnmr_ci_boot", "fmr_ci_boot_reason",
              "fnmr_ci_boot_reason", "small_fmr", "small_fnmr", "small_fmr_reason", "small_fnmr_reason"}


def nested(flat: dict, confidence: float, min_count, boot_reason: str | None = results.BOOT_OFF) -> dict:
    """A flat entry (the counts the group code and the disparity summaries work on) as a schema-3
    entry: ``{"fnmr": RateEstimate, "fmr": RateEstimate}`` plus the entry's other fields
    (accuracy, eer, fnmr_at_fmr). The per-group bootstrap intervals (``<rate>_ci_boot``) move
    into their estimates; ``boot_reason`` says why an estimate has none when the entry carries
    no reason of its own."""
    out = {}
    for rate, err, n in _FLAT:
        has = f"{rate}_ci_boot" in flat
        out[rate] = results.estimate(flat[err], flat[n], flat["n_subjects"], confidence, rate, min_count,
                                     ci_boot=flat.get(f"{rate}_ci_boot"),
                                     ci_boot_reason=flat.get(f"{rate}_ci_boot_reason") if has else boot_reason)
    out.update({k: v for k, v in flat.items() if k not in _FLAT_ONLY})
    return out


def nested_block(groups: dict, confidence: float, min_count, boot_reason=results.BOOT_OFF) -> dict:
    """``nested`` over a group -> flat entry mapping."""
    return {g: nested(e, confidence, min_count, boot_reason) for g, e in groups.items()}


def mixed_intervals(errors, mated, sa, sb, ga, gb, confidence: float, bootstrap: dict | None) -> dict:
    """``fmr_ci_boot`` / ``fnmr_ci_boot`` (and reasons) of the mixed-group comparisons (sides in
    different groups): the groups' subject-clustered bootstrap (same strata, replicates and seed,
    so the same draws; ``cluster_bootstrap(..., mixed=True)``) and the same interval rule
    (``BootstrapResult.interval``: Korn-Graubard at the effective size, null with the reason when
    degenerate). ``{}`` when the bootstrap is off (the entry keeps ``MIXED_BOOT``'s reason)."""
    if not bootstrap or not bootstrap.get("replicates"):
        return {}
    from .bootstrap import MIXED_GROUP, cluster_bootstrap

    boot = cluster_bootstrap(errors, mated, sa, sb, ga, gb, replicates=int(bootstrap["replicates"]),
                             seed=int(bootstrap.get("seed", 0)), confidence=confidence, mixed=True)
    return boot.group_intervals()[MIXED_GROUP]


def _operating_points(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """EER and FNMR at FMR = 1e-1 ... 1e-4 on one group's own comparisons (its DET curve)."""
    out = {"eer": None, "fnmr_at_fmr": {}}
    if len(genuine) and len(impostor) and (np.isfinite(genuine).any() or np.isfinite(impostor).any()):
        out["eer"] = rates.eer(genuine, impostor)
    for target in FNMR_AT_FMR:
        key = repr(target)
        if not len(impostor) or not len(genuine):
            out["fnmr_at_fmr"][key] = {"fnmr": None, "threshold": None, "achieved_fmr": None, "resolvable": False}
            continue
        r = rates.fnmr_at_fmr(genuine, impostor, target)
        if not r["resolvable"]:   # fewer than 1/target impostors: the data cannot measure it
            r = {"fnmr": None, "threshold": None, "achieved_fmr": None, "resolvable": False,
                 "reason": f"{len(impostor)} impostors < 1/{target:g}"}
        out["fnmr_at_fmr"][key] = r
    return out


def group_breakdown(raw, decision, mated, sa, sb, ga, gb, confidence, min_count) -> tuple[dict, dict]:
    """Per group of one attribute (or intersection): rates at the operating threshold with counts
    and intervals, the small-group flag, accuracy, EER and FNMR at fixed FMRs on the group's own
    comparisons; and the mixed-group remainder. ``decision`` is score minus the comparison's
    threshold (a match when <= 0); ``raw`` the distances with the failure policy applied."""
    g = groups_mod.group_rates(decision, mated, sa, sb, ga, gb, 0.0, confidence)
    out = {}
    same = ga == gb
    for label, summ in g["by_group"].items():
        e = _add_accuracy_and_flags(flatten_summary(summ), min_count)
        sel = same & (ga == label)
        e.update(_operating_points(raw[sel & mated], raw[sel & ~mated]))
        out[label] = e
    return out, flatten_summary(g["mixed"])


def cross_fmr(decision, mated, ga, gb) -> dict:
    """Impostor FMR by (group of one subject) x (group of the other): a symmetric matrix whose
    cell [i][j] counts impostor comparisons with one side in labels[i] and the other in labels[j]
    and the false matches among them at the operating threshold (NISTIR 8280 section 5 shows such
    cross-group false-match tables)."""
    imp = ~mated
    a, b = ga[imp], gb[imp]
    labels = np.unique(np.concatenate([a, b]))
    ia, ib = np.searchsorted(labels, a), np.searchsorted(labels, b)
    k = len(labels)
    n = np.zeros((k, k), dtype=np.int64)
    fm = np.zeros((k, k), dtype=np.int64)
    match = decision[imp] <= 0
    np.add.at(n, (ia, ib), 1)
    np.add.at(fm, (ia, ib), match.astype(np.int64))
    off = ~np.eye(k, dtype=bool)
    n = n + (n.T * off)          # symmetric: an (i, j) comparison is also a (j, i) one
    fm = fm + (fm.T * off)
    return _cross_block(labels.tolist(), fm, n)


def _cross_block(labels: list, fm: np.ndarray, n: np.ndarray) -> dict:
    """The metrics.json ``cross_fmr[attr]`` block from symmetric false-match and impostor counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, fm / np.maximum(n, 1), np.nan)
    return {"labels": labels, "false_matches": fm.tolist(), "n_impostor": n.tolist(), "fmr": rate.tolist()}


def summarise(table, *, threshold_policy: str, target_fmr: float, threshold_value, failure_policy: str,
              confidence: float, image_failures, image_groups: dict, header: dict, image_notes=None,
              threshold_attribute: str | None = None, calibration: dict | None = None,
              min_count: tuple[int, int] = (10, 30), intersections=(), bootstrap: dict | None = None,
              reference: dict | None = None, image_subjects=None, mixed_bootstrap: bool = False) -> dict:
    """Build the metrics.json dict (see module docstring) from a ScoreTable and per-image failures.

    image_failures: reason or None per image the protocol uses; image_groups: attribute ->
    labels of those images; image_subjects: subject of each of those images (failure to enrol
    counts the subjects behind it). header: experiment/dataset/protocol/backend blocks, passed through.
    threshold_attribute: the attribute whose groups get their own threshold (per_group_fmr);
    calibration: the calibration split for ``calibrated`` (see ``thresholds.choose``);
    min_count: (subjects, comparisons) below which a group is flagged small and left out of
    disparity summaries; intersections: lists of attributes to cross (e.g. [["sex", "race"]]);
    bootstrap: {replicates, seed} for subject-clustered intervals (None: none); reference:
    attribute -> reference group for ratio-to-reference (default: the group with most subjects);
    mixed_bootstrap: give the mixed-group comparisons of each attribute (e.g. RFW's cross-race
    impostors) their subject-clustered interval too (:func:`mixed_intervals`); otherwise their
    ``ci_boot`` is null with ``MIXED_BOOT``.
    """
    scores, keep = apply_failure_policy(table.distance, table.failed, failure_policy)
    s, mated = scores[keep], table.mated[keep]
    sa, sb = table.subject_a[keep], table.subject_b[keep]
    genuine, impostor = s[mated], s[~mated]
    if len(impostor) == 0 or len(genuine) == 0:
        raise ValueError("the run needs both genuine and impostor comparisons")
    groups = {attr: (np.asarray(ga)[keep].astype(str), np.asarray(gb)[keep].astype(str))
              for attr, (ga, gb) in table.groups.items()}

    attr = None
    if threshold_policy == "per_group_fmr":
        attr = threshold_attribute or next(iter(groups), None)
        if attr not in groups:
            raise ValueError(f"threshold.attribute={attr!r} is not an attribute of this run ({list(groups)})")
    t_comp, thr = thresholds_mod.choose(
        s, mated, policy=threshold_policy, target_fmr=target_fmr, value=threshold_value,
        group_a=groups[attr][0] if attr else None, group_b=groups[attr][1] if attr else None, attribute=attr,
        calibration=calibration)
    decision = s - t_comp   # a match when <= 0; +inf (failure) never matches

    n_img = len(image_failures)
    fails = failures_block(
        image_failures, image_notes, image_groups, confidence, genuine=int((table.failed & table.mated).sum()),
        impostor=int((table.failed & ~table.mated).sum()), excluded=int((~keep).sum()),
        image_subjects=image_subjects, min_count=min_count)
    # the flat working entries: what the disparity summaries and the bootstrap read and extend
    w: dict = {"groups": {}, "mixed": {}, "intersections": {}}
    cross = {}
    overall = flatten_summary(groups_mod.overall_rates(decision, mated, sa, sb, 0.0, confidence))
    for a, (ga, gb) in groups.items():
        w["groups"][a], w["mixed"][a] = group_breakdown(s, decision, mated, sa, sb, ga, gb, confidence, min_count)
        cross[a] = cross_fmr(decision, mated, ga, gb)
    skipped = {}
    errors = errors_from_decision(decision, mated) if intersections else None
    for combo in intersections:
        missing = [c for c in combo if c not in groups]
        if missing or len(combo) < 2:
            skipped[" x ".join(combo)] = (
                f"attribute(s) {missing} not in this run ({list(groups)})" if missing else "needs two attributes")
            continue
        name = " x ".join(combo)
        ia = np.array([" x ".join(t) for t in zip(*(groups[c][0] for c in combo))]) if len(s) else np.array([], str)
        ib = np.array([" x ".join(t) for t in zip(*(groups[c][1] for c in combo))]) if len(s) else np.array([], str)
        w["intersections"][name], _ = group_breakdown(s, decision, mated, sa, sb, ia, ib, confidence, min_count)
        stats_mod.add_bootstrap_intervals(w["intersections"][name], errors, mated, sa, sb, ia, ib, confidence,
                                          bootstrap)
        if all(c in image_groups for c in combo) and n_img:
            combined = np.array([" x ".join(t) for t in zip(*(np.asarray(image_groups[c]).astype(str) for c in combo))])
            fails["by_group"][name] = failures_by_group(image_failures, {name: combined}, confidence, image_notes,
                                                        image_subjects, min_count)[name]
    w["overall"] = overall   # the NIST table's overall rate (flat fields); not copied to out
    stats_mod.add_disparity(w, decision, mated, sa, sb, groups, confidence, bootstrap, reference)
    if mixed_bootstrap:
        errs = errors_from_decision(decision, mated)
        for a, (ga, gb) in groups.items():
            w["mixed"][a].update(mixed_intervals(errs, mated, sa, sb, ga, gb, confidence, bootstrap))

    out = results.header_block(header, kind=results.VERIFICATION, rates=results.VERIFICATION_RATES,
                               failure_policy=failure_policy, failures=fails,
                               threshold=results.ThresholdRecord.from_choice(thr), min_count=min_count,
                               bootstrap=w["bootstrap"])
    out["overall"] = nested(overall, confidence, min_count, OVERALL_BOOT)
    out["groups"] = {a: nested_block(e, confidence, min_count) for a, e in w["groups"].items()}
    out["mixed"] = {a: nested(e, confidence, min_count, MIXED_BOOT) for a, e in w["mixed"].items()}
    out["intersections"] = {a: nested_block(e, confidence, min_count) for a, e in w["intersections"].items()}
    if skipped:
        out["intersections_skipped"] = skipped
    out["cross_fmr"] = cross
    out["disparity"], out["tests"] = w["disparity"], w["tests"]
    out["nist"], out["score_shifts"] = w["nist"], w["score_shifts"]   # issue 12 (evalkit.metrics.stats)
    out["eer"] = rates.eer(genuine, impostor)
    folds = table.fold[keep]
    if (folds >= 0).all() and len(np.unique(folds)) > 1:
        out["lfw_accuracy"] = rates.kfold_accuracy(s, mated, folds)
    return _clean(out)


# ------------------------------------------------------------------ the exhaustive protocol


def _flat_counts(c, n_subjects: int, confidence: float) -> dict:
    """Flat rate fields (as ``flatten_summary``) from exhaustive ``Counts`` at their first threshold."""
    return flatten_summary(groups_mod._summary(int(c.false_matches[0]), int(c.n_impostor), int(c.false_nonmatches[0]),
                                               int(c.n_genuine), n_subjects, confidence))


def _same_label_codes(res, attr: str) -> tuple[np.ndarray, np.ndarray]:
    """Per genuine and per kept impostor comparison: the label code of ``attr`` when both sides
    share it, else -1."""
    codes = res._labels[attr][1].astype(np.int32)   # few labels; the kept impostor list can be long
    out = []
    for a, b in ((res.genuine_a, res.genuine_b), (res.impostor_a, res.impostor_b)):
        ca = codes[a]
        ca[ca != codes[b]] = -1
        out.append(ca)
    return out[0], out[1]


def _exhaustive_operating_points(res, genuine_codes, impostor_codes, label_index: int, n_impostor: int) -> dict:
    """FNMR at FMR 1e-1..1e-4 on one group's own comparisons, from every genuine score and the kept
    impostor top-k: exact whenever the group's k-th smallest impostor score is among those kept.
    ``*_codes`` come from :func:`_same_label_codes`."""
    genuine = res.genuine_scores[genuine_codes == label_index].astype(np.float64)
    if res.failure_policy == "exclude":
        genuine = genuine[np.isfinite(genuine)]
    imp = res.impostor_scores[impostor_codes == label_index]
    out = {}
    for target in FNMR_AT_FMR:
        k = int(np.floor(target * n_impostor))
        if k < 1 or not len(genuine):
            out[repr(target)] = {"fnmr": None, "threshold": None, "achieved_fmr": None, "resolvable": False,
                                 "reason": f"{n_impostor} impostors < 1/{target:g}"}
        elif k >= len(imp) and not res.impostor_complete:
            out[repr(target)] = {"fnmr": None, "threshold": None, "achieved_fmr": None, "resolvable": True,
                                 "reason": "beyond the kept impostor top-k: raise protocol.topk"}
        else:
            t = float(np.nextafter(np.float64(imp[k]), -np.inf)) if k < len(imp) else rates.MAX_THRESHOLD
            out[repr(target)] = {"fnmr": float(np.mean(genuine > t)), "threshold": t,
                                 "achieved_fmr": float(np.searchsorted(imp, float32_threshold([t])[0], side="right")
                                                       / n_impostor),
                                 "resolvable": True}
    return out


def summarise_exhaustive(res, samples, *, threshold_policy: str, target_fmr: float, threshold_value,
                         confidence: float, image_failures, header: dict, image_notes=None,
                         min_count: tuple[int, int] = (10, 30), reference: dict | None = None) -> dict:
    """metrics.json for the exhaustive protocol (evalkit.metrics.exhaustive): the same schema,
    built from counts instead of a score table. ``samples`` are the compared (kept) samples, in
    the order of the result's rows. Not available here (stated in the output): the
    subject-clustered bootstrap and the clustered tests (they need every comparison's outcome),
    per_group_fmr and calibrated thresholds, LFW folds."""
    if threshold_policy == "fixed":
        t = float(threshold_value)
        if len(res.thresholds) == 1 and float(res.thresholds[0]) == t:
            overall, groups = res.overall, res.groups   # counted during the pass: exact at any value
        else:
            overall, groups = res.counts_at([t])        # from the kept top-k: exact below its cut-off
        thr = results.ThresholdRecord(policy="fixed", value=t, rate="fmr", target=None,
                                      achieved=float(overall.fmr()[0]), n=int(overall.n_impostor), resolvable=True,
                                      label=f"fixed distance threshold {t:.6g}")
    elif threshold_policy == "global_fmr":
        c = res.threshold_at_fmr(target_fmr)
        t = float(c.threshold)
        thr = results.ThresholdRecord(
            policy="global_fmr", value=t, rate="fmr", target=float(target_fmr), achieved=float(c.achieved_fmr),
            n=int(c.n_impostor), resolvable=bool(c.resolvable),
            label=f"one threshold for everyone at FMR {target_fmr:g} over all {c.n_impostor} impostors")
        overall, groups = res.counts_at([t])   # below the kept top-k's cut-off by construction
    else:
        raise ValueError(f"threshold.policy={threshold_policy} is not available with protocol=exhaustive; "
                         "use global_fmr or fixed")
    excluded = overall.failed_genuine + overall.failed_impostor if res.failure_policy == "exclude" else 0
    fails = failures_block(image_failures, image_notes, samples.attributes, confidence,
                           genuine=int(overall.failed_genuine), impostor=int(overall.failed_impostor),
                           excluded=int(excluded), image_subjects=samples.subjects, min_count=min_count)
    out = results.header_block(header, kind=results.VERIFICATION, rates=results.VERIFICATION_RATES,
                               failure_policy=res.failure_policy, failures=fails, threshold=thr, min_count=min_count,
                               bootstrap=None)
    n_subjects = len(np.unique(samples.subjects))
    not_computed = {"bootstrap": "the subject-clustered bootstrap needs every comparison's outcome; the "
                                 "exhaustive protocol keeps counts (use protocol=generated for intervals that "
                                 "respect subjects)",
                    "tests": "as for the bootstrap", "eer": "needs every impostor score"}
    boot_reason = "not computed by the exhaustive protocol (it keeps counts, not every comparison's outcome)"
    out["overall"] = nested(_flat_counts(overall, n_subjects, confidence), confidence, min_count, boot_reason)
    out["groups"], out["mixed"], out["cross_fmr"], out["disparity"], out["tests"] = {}, {}, {}, {}, {}
    for attr, cc in groups.items():
        labels = np.asarray(samples.attributes[attr]).astype(str)
        g_codes, i_codes = _same_label_codes(res, attr)
        entries = {}
        for j, lab in enumerate(cc.labels):
            e = _add_accuracy_and_flags(
                _flat_counts(cc.group(lab), len(np.unique(samples.subjects[labels == str(lab)])), confidence), min_count)
            e["eer"] = None
            e["fnmr_at_fmr"] = _exhaustive_operating_points(res, g_codes, i_codes, j, e["n_impostor"])
            entries[str(lab)] = e
        out["groups"][attr] = nested_block(entries, confidence, min_count, boot_reason)
        out["mixed"][attr] = nested(_flat_counts(cc.mixed(), n_subjects, confidence), confidence, min_count,
                                    boot_reason)   # every subject meets the others
        n = cc.completed_impostor + (cc.failed_impostor if res.failure_policy == "nonmatch" else 0)
        out["cross_fmr"][attr] = _cross_block([str(x) for x in cc.labels], cc.false_matches[:, :, 0], n)
        out["disparity"][attr] = stats_mod.attribute_disparity(entries, None, (reference or {}).get(attr))
    out["intersections"] = {}
    out["not_computed"] = not_computed
    out["eer"] = None
    out["exhaustive"] = {"n_images": res.n_images, "n_failed_images": res.n_failed_images,
                         "n_comparisons": res.n_comparisons, "impostor_scores_kept": int(len(res.impostor_scores)),
                         "impostor_complete": bool(res.impostor_complete),
                         "impostor_cutoff": None if not np.isfinite(res.impostor_cutoff) else float(res.impostor_cutoff),
                         "block_rows": res.block_rows}
    return _clean(out)
