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

import math

import numpy as np
from scipy import special

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
    out["disparity"], out["tests"], out["nist"], out["score_shifts"] = {}, {}, {}, {}
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
        out.setdefault("nist", {})[attr] = nist_block(entries, boot, out.get("overall"))
        out.setdefault("score_shifts", {})[attr] = score_shifts(decision, mated, sa, sb, ga, gb, entries, confidence)


def _summary_groups(entries: dict, kind: str) -> list:
    return [g for g, e in entries.items() if g not in SPECIAL_LABELS and not e[f"small_{kind}"]]


def nist_block(entries: dict, boot, overall: dict | None) -> dict:
    """metrics.json ``nist[attr]``: NIST FRTE's demographic table (overall, min, max and the worst
    group, max/min, max - min, max/mean, max/geometric mean, Gini) for FMR and FNMR over the
    groups not flagged small, each with an interval by the one rule (``bootstrap.INTERVAL_RULE``)."""
    out = {}
    for kind in ("fmr", "fnmr"):
        ok = _summary_groups(entries, kind)
        rates = {g: entries[g][kind] for g in ok}
        ov = (overall or {}).get(kind)
        out[kind] = boot_mod.nist_table_with_ci(rates, boot if boot is not None and all(g in boot.groups for g in ok)
                                                else None, kind, ov, (overall or {}).get(f"{kind}_ci"))
    return out


SCORE_SHIFT_CI_METHOD = ("mean shift +/- t(G-1) * se: se from the subject-clustered (cluster-robust) variance of "
                         "the group mean minus the overall mean (one-way by subject for mated scores, dyadic for "
                         "non-mated), G the group's subjects; the standardised shift's interval is that interval "
                         "over the overall standard deviation")


def score_shifts(decision, mated, sa, sb, ga, gb, entries: dict, confidence: float) -> dict:
    """metrics.json ``score_shifts[attr]``: how far each group's mated and non-mated score
    distributions sit from the overall ones (``disparity.SCORE_SHIFT_DEFINITIONS``; ISO/IEC
    19795-10's "shifts in comparison score"). Scores are ``decision`` (distance minus the
    comparison's threshold); failed comparisons (infinite) are left out and counted.

    ``mean_shift`` gets a subject-clustered interval from the cluster-robust variance of the
    difference of the two ratio estimators (one-way by subject for mated, dyadic for non-mated:
    ``bootstrap._robust_variance``) and Student's t with G - 1 degrees of freedom, G the group's
    subjects (the usual few-clusters correction, Cameron & Miller 2015): with the normal quantile
    four groups' non-mated intervals covered 79-80% at 5 subjects per group, 89% at 10 and 91-93%
    at 20 in ``benchmarks/coverage_study.py``; with t every score-shift interval covered at least
    93% from 3 to 50 subjects per group (the README's statistics table). ``subjects`` is G. ``standardised_shift`` is that
    interval over ``sd_all``; the KS distance has no interval (its sampling distribution is not
    centred on the estimate), said in ``ks_ci_reason``. ``ci_method`` (per attribute) says this."""
    d = boot_mod._prepare(np.zeros(len(mated), bool), mated, sa, sb, ga, gb)
    x = np.asarray(decision, dtype=np.float64)
    out = {"definitions": dict(disp.SCORE_SHIFT_DEFINITIONS), "source": disp._ISO10, "ci_method": SCORE_SHIFT_CI_METHOD,
           "by_group": {}}
    for g in _summary_groups(entries, "fnmr") + [g for g in _summary_groups(entries, "fmr")
                                                 if g not in _summary_groups(entries, "fnmr")]:
        row = {}
        for kind, want in (("mated", d.mated), ("non_mated", ~d.mated)):
            fin = want & np.isfinite(x)
            sel = fin & (d.comp_group == (d.names.index(g) if g in d.names else -2))
            g_subj = int(np.unique(np.concatenate([d.sa[sel], d.sb[sel]])).size)
            e = {"n": int(sel.sum()), "subjects": g_subj, "n_all": int(fin.sum()),
                 "failed_left_out": int((want & ~np.isfinite(x)).sum())}
            if e["n"] < 2 or e["n_all"] < 2:
                e.update(mean_shift=None, standardised_shift=None, ks=None, ci=None, standardised_ci=None,
                         ci_reason=f"fewer than 2 {kind.replace('_', '-')} comparisons with a score")
                row[kind] = e
                continue
            m_all, m_g, sd = float(x[fin].mean()), float(x[sel].mean()), float(x[fin].std(ddof=1))
            psi = np.where(sel, (x - m_g) / e["n"], 0.0) - np.where(fin, (x - m_all) / e["n_all"], 0.0)
            use = fin
            v, n_subj = boot_mod._robust_variance(np.where(use, psi, 0.0)[use], d.sa[use], d.sb[use], d.n_subjects)
            shift = m_g - m_all
            e.update(mean_shift=shift, standardised_shift=shift / sd if sd > 0 else None,
                     ks=disp.ks_distance(x[sel], x[fin]), ks_ci=None,
                     ks_ci_reason="no interval: the KS distance's sampling distribution is not centred on it")
            if math.isfinite(v) and v > 0 and g_subj >= 2:
                h = float(special.stdtrit(g_subj - 1, 0.5 + confidence / 2)) * math.sqrt(v)   # Student t quantile (= scipy.stats.t.ppf)
                e["ci"] = [shift - h, shift + h]
                e["standardised_ci"] = [(shift - h) / sd, (shift + h) / sd] if sd > 0 else None
                e["ci_reason"] = None
            else:
                e["ci"], e["standardised_ci"] = None, None
                e["ci_reason"] = "the cluster-robust variance is not positive (too few subjects)"
            row[kind] = e
        out["by_group"][g] = row
    return out


def label_levels(subjects, attributes: dict) -> dict:
    """attribute -> "subject" when every subject carries one label of it over all its images (a
    per-subject attribute, e.g. self-reported sex), else "image" (labels vary within a subject,
    e.g. age band at capture). With per-image labels a genuine comparison can join two images of
    one person in different groups: the ``mixed`` row then holds genuine pairs too, and a group's
    impostor comparisons are those whose two IMAGES carry its label."""
    s = np.asarray(subjects).astype(str)
    out = {}
    for attr, labels in attributes.items():
        lab = np.asarray(labels).astype(str)
        pairs = np.unique(np.char.add(np.char.add(s, "\x00"), lab)) if s.size else np.array([], str)
        n_subj = np.unique(s).size
        out[attr] = "subject" if pairs.size == n_subj else "image"
    return out
