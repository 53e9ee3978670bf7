"""Disparity summaries with subject-clustered intervals, and clustered group tests, for metrics.json.

Which groups enter a summary: a group's FMR enters FMR-only summaries (max/min FMR, FMR ratio to
reference) unless it is flagged small for FMR; likewise FNMR. Summaries of both rates (FDR, IR,
GARBE) and of accuracy (SER, standard deviation) use the groups flagged small for neither.
Small groups are still reported in ``groups``; they only stay out of the summaries. So do the
labels that are not demographic groups (``unlabelled``, ``conflict``, ``multiple``): a ratio to
"people whose race nobody annotated" measures nothing.

The bootstrap resamples subjects (see ``evalkit.metrics.bootstrap``). Its FMR intervals are
conservative on protocols where most subjects appear in few impostor comparisons (LFW View 2):
the product weighting of a resampled impostor pair overstates the dyadic variance (McCullagh
2000; Owen 2007). FNMR intervals are not affected. The clustered tests use the dyadic-robust
variance for FMR, which does not have that bias.
"""

from __future__ import annotations

from . import bootstrap as boot_mod
from . import disparity as disp

from ..labels import SPECIAL_LABELS

FMR_ONLY = ("fmr_max_min_ratio", "fmr_ratio_to_reference")
FNMR_ONLY = ("fnmr_max_min_ratio", "fnmr_ratio_to_reference")


def _reference(entries: dict, wanted: str | None) -> tuple[str | None, str]:
    """(reference group, the rule that chose it): the user's, else ``disparity.choose_reference``
    over every group entering an FMR or FNMR summary."""
    if wanted:
        return wanted, "given"
    if not entries:
        return None, "no groups"
    return disp.choose_reference(entries)


def _block(entries: dict, ok, boot, reference) -> dict:
    per = {g: {"fmr": entries[g]["fmr"], "fnmr": entries[g]["fnmr"], "accuracy": entries[g]["accuracy"],
               "n_subjects": entries[g]["n_subjects"]} for g in ok}
    return boot_mod.disparity_summaries_with_ci(per, boot, reference=reference)


def attribute_disparity(entries: dict, boot, reference: str | None) -> dict:
    """The ``disparity[attr]`` block from one attribute's ``groups`` entries (with small flags)."""
    groups = {g: e for g, e in entries.items() if g not in SPECIAL_LABELS}
    fmr_ok = [g for g, e in groups.items() if not e["small_fmr"]]
    fnmr_ok = [g for g, e in groups.items() if not e["small_fnmr"]]
    both_ok = [g for g in fmr_ok if g in fnmr_ok]
    ref, rule = _reference({g: entries[g] for g in set(fmr_ok) | set(fnmr_ok)}, reference)
    sets = tuple(both_ok), tuple(fmr_ok), tuple(fnmr_ok)
    blocks = {ok: _block(entries, ok, boot, ref) for ok in set(sets)}   # usually one set: computed once
    out, fmr_block, fnmr_block = (blocks[ok] for ok in sets)
    for name in FMR_ONLY:
        out[name] = fmr_block[name]
    for name in FNMR_ONLY:
        out[name] = fnmr_block[name]
    for name in ("fmr_ratio_to_reference", "fnmr_ratio_to_reference"):
        out[name] = {**out[name], "reference_rule": rule}   # how ref was chosen, not merely that it was passed on
    return out


def add_bootstrap_intervals(entries: dict, errors, mated, sa, sb, ga, gb, confidence: float, bootstrap):
    """Add ``fmr_ci_boot`` / ``fnmr_ci_boot`` (and their reasons) to each group entry from a
    subject-clustered bootstrap over these labels; returns the BootstrapResult (None when off)."""
    if not bootstrap or not bootstrap.get("replicates"):
        return None
    boot = boot_mod.cluster_bootstrap(errors, mated, sa, sb, ga, gb, replicates=int(bootstrap["replicates"]),
                                      seed=int(bootstrap.get("seed", 0)), confidence=confidence)
    for g, ci in boot.group_intervals().items():
        if g in entries:
            entries[g].update(ci)
    return boot


def add_disparity(out: dict, decision, mated, sa, sb, groups: dict, confidence: float, bootstrap, reference) -> None:
    """Fill ``disparity``, ``tests``, ``bootstrap`` and the per-group ``*_ci_boot`` fields of
    metrics.json ``out`` (whose ``groups`` block is already there). ``decision`` is score minus
    the comparison's threshold (a match when <= 0)."""
    reference = dict(reference or {})
    errors = boot_mod.errors_from_decision(decision, mated)
    out["disparity"], out["tests"] = {}, {}
    out["bootstrap"] = None
    for attr, (ga, gb) in groups.items():
        entries = out["groups"][attr]
        boot = add_bootstrap_intervals(entries, errors, mated, sa, sb, ga, gb, confidence, bootstrap)
        if boot is not None:
            out["bootstrap"] = {**boot.info(), "note": "FMR intervals are conservative (product weighting of "
                                "resampled impostor pairs); FNMR intervals are not affected"}
        out["disparity"][attr] = attribute_disparity(entries, boot, reference.get(attr))
        tests = {}
        for kind, flag in (("fnmr", "small_fnmr"), ("fmr", "small_fmr")):
            ok = sorted(g for g, e in entries.items() if not e[flag] and g not in SPECIAL_LABELS)
            tests[kind] = boot_mod.pairwise_rate_tests(errors, mated, sa, sb, ga, gb, kind=kind, groups=ok) \
                if len(ok) >= 2 else []
        out["tests"][attr] = tests
