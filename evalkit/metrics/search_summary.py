"""metrics.json for a one-to-many search run (``protocol=search``): pure computation, no I/O.

Schema "evalkit.metrics/3", kind "search", rates ["fnir", "fpir", "fnir_rank1"]: the same
top-level blocks as every run (``evalkit.metrics.results.header_block``) and the same rate blocks
as a 1:1 run -- ``overall``, ``groups``, ``intersections``, ``disparity`` -- holding FPIR, FNIR and
FNIR at rank 1, plus one ``search`` block for what only a search has. Definitions of FPIR, FNIR
and CMC: ``evalkit.metrics.search``. Groups are the PROBE's group (its subject's label);
"unlabelled"/"conflict"/"multiple" stay explicit groups and never enter disparity summaries.

Every rate is a RateEstimate (``evalkit.metrics.results``): errors / n probes (searches) from
``subjects`` probe subjects; ``ci`` Clopper-Pearson (treats searches as independent), ``upper``
the exact one-sided bound when errors == 0, ``ci_boot`` the probe-subject cluster bootstrap
percentile interval (the interval that respects subjects; null with a reason when not computed or
undefined); ``small`` by evalkit's one small-group rule (fewer than min_count.subjects probe
subjects or min_count.comparisons searches of that kind).

    threshold   a ThresholdRecord {policy: global_fpir | fixed, rate: "fpir", label, value, target,
                 achieved, resolvable, n (non-mated searches), gallery_size}: global_fpir sets ONE
                 threshold for everyone on the
                 best scores of all non-mated searches of the full gallery (FPIR <= target;
                 NIST FRTE 1:N reports FNIR at fixed FPIR); it is then applied to every group and
                 every gallery size
    protocol    {name, kind: "search", gallery_sizes, n_enrolled_subjects, n_gallery_images,
                 gallery_images_per_subject, n_mated_probes, n_nonmated_probes, n_mated_subjects,
                 n_nonmated_subjects, candidates, seed, nonmated_fraction, max_probes_per_subject}
    overall           {fnir, fpir, fnir_rank1}: RateEstimates over every probe
    groups            attribute -> probe group -> {fnir, fpir, fnir_rank1}
    intersections     "sex x race" -> group -> as groups
    disparity         attribute -> {fpir_max_min_ratio, fnir_max_min_ratio}: {value, ci, reason,
                      groups, definition, source}, over the labelled groups not flagged small;
                      {fpir,fnir}_ratio_to_reference: {reference, reference_rule, definition,
                      source, by_group: group -> {value, ci, reason}}
    search
      gallery_size      the full gallery (enrolled subjects): headline rates are at this size
      candidates        L, the candidate-list length
      cmc               {ranks: [1..K], overall: {n, subjects, hits, rate, ci_boot},
                        groups: attribute -> group -> same}; rate[k-1] = CMC(k)
      by_gallery_size   {sizes, overall: {fpir: [RateEstimate per size], fnir: [...]},
                        groups: attribute -> group -> {fpir: [...], fnir: [...]}} at the threshold
      false_candidates  attribute -> {probe_labels, candidate_labels, nonmated: {false_candidates,
                        probes_with, n_probes}, mated: {...}, gallery_subjects: {label: n},
                        gallery_share: {label: fraction}}: false candidates returned at the
                        threshold, by probe group x candidate group (full gallery)
      audit             [{threshold, source, gallery_size, candidates, overall: {fpir, fnir},
                        groups: attribute -> group -> {fpir, fnir, false_candidates,
                        share_of_falsely_matched, share_of_nonmated_probes},
                        false_candidates: attribute -> as above}]: the non-mated probes falsely
                        matched at a vendor's fixed threshold, who they are and who they matched
      failed_searches   {mated_probe_failed, mate_not_enrolled, nonmated_probe_failed, excluded}
      engine            {seconds, block_rows, distance}
"""

from __future__ import annotations

import math

import numpy as np

from ..labels import SPECIAL_LABELS
from . import disparity as disp
from . import rates, results
from .search import (SearchResult, bootstrap_interval, cluster_bootstrap_rates, cmc_hits, false_candidate_matrix,
                     mated_misses, nonmated_false_positives, probe_validity)
from .summary import _clean, failures_block, failures_by_group

__all__ = ["summarise_search", "rate_entry"]


class _Boot:
    """Bootstrap settings and the replicates kept for disparity intervals."""

    def __init__(self, bootstrap: dict | None, confidence: float, min_count=None):
        self.replicates = int((bootstrap or {}).get("replicates") or 0)
        self.seed = int((bootstrap or {}).get("seed") or 0)
        self.confidence = confidence
        self.min_count = min_count   # the small-group rule's minimums, for every estimate

    def reps(self, counted, errors, subjects, label: str):
        if not self.replicates:
            return None
        return cluster_bootstrap_rates(counted, errors, subjects, replicates=self.replicates, seed=self.seed, label=label)


def rate_entry(counted, errors, subjects, confidence: float, reps=None, column: int = 0, *, rate_name: str = "fpir",
               min_count=None) -> dict:
    """One rate estimate (``evalkit.metrics.results.RateEstimate``) for probes ``counted`` with
    events ``errors``: errors / n probes from ``subjects`` probe subjects; ``ci_boot`` from the
    replicates' ``column`` when given."""
    counted = np.asarray(counted, bool)
    k, n = int((np.asarray(errors, bool) & counted).sum()), int(counted.sum())
    n_subj = int(len(np.unique(np.asarray(subjects)[counted])))
    boot, why = None, results.BOOT_OFF
    if reps is not None:
        iv = bootstrap_interval(reps[:, column:column + 1], confidence)[0]
        boot, why = iv.as_list(), iv.reason
    return results.estimate(k, n, n_subj, confidence, rate_name, min_count, ci_boot=boot, ci_boot_reason=why)


def _outcomes(res, t, valid) -> dict:
    """Per probe, at threshold ``t`` and the full gallery: name -> (counted, error) for FPIR, FNIR
    and FNIR at rank 1; computed once per threshold, then masked per group."""
    cm, miss = mated_misses(res, t, valid=valid)
    return {"fpir": nonmated_false_positives(res, t, valid=valid), "fnir": (cm, miss),
            "fnir_rank1": (cm, mated_misses(res, None, 1, valid=valid)[1])}


def _rates(outcomes: dict, mask, subjects, boot: _Boot, label: str,
           names=("fnir", "fpir", "fnir_rank1")) -> tuple[dict, dict]:
    """Rate entries over the probes in ``mask`` (``names`` of :func:`_outcomes`), and their replicates."""
    out, reps = {}, {}
    for name in names:
        cnt, err = outcomes[name]
        r = boot.reps(cnt & mask, err, subjects, f"{name}|{label}")
        reps[name] = r
        out[name] = rate_entry(cnt & mask, err, subjects, boot.confidence, r, rate_name=name, min_count=boot.min_count)
    return out, reps


def _groups(outcomes, labels, subjects, boot, prefix) -> tuple[dict, dict]:
    entries, reps = {}, {}
    for g in np.unique(labels):
        entries[str(g)], reps[str(g)] = _rates(outcomes, labels == g, subjects, boot, f"{prefix}|{g}")
    return entries, reps


def _disparity(entries: dict, reps: dict, confidence: float) -> dict:
    """Max/min ratio of FPIR and of FNIR across the labelled groups not flagged small (NISTIR
    8280's max/min differential, applied to 1:N rates), and each group's ratio to a reference.
    Intervals (when replicates exist; groups are resampled independently, so per-group replicates
    combine): for max/min, the interval of the ratio of the two groups that are highest and lowest
    in the data (``ci_of``), replicate by replicate."""
    out = {}
    for rate, key, name in (("fpir", "fpir_max_min_ratio", "FPIR"), ("fnir", "fnir_max_min_ratio", "FNIR")):
        ok = [g for g, e in entries.items() if g not in SPECIAL_LABELS and not e[rate]["small"]]
        d = disp.max_min_ratio({g: entries[g][rate]["rate"] if entries[g][rate]["rate"] is not None else math.nan
                                for g in ok}, name, "fmr_max_min_ratio" if rate == "fpir" else "fnmr_max_min_ratio")
        block = d.to_dict()
        block["definition"] = (f"max over groups of {name} / min over groups of {name}, at the operating threshold "
                               "and the full gallery, over labelled groups not flagged small")
        block["source"] = "NISTIR 8280 (max/min differential), applied to the 1:N rates of NISTIR 8271"
        block["ci"] = None
        if len(ok) >= 2 and all(reps[g][rate] is not None for g in ok) and d.defined:
            # the interval of the NAMED highest group's rate over the named lowest group's: the max/min
            # of resampled rates is pushed above 1 when groups are close, so its interval could exclude
            # the estimate (e.g. equal rates 1.00 with an interval 1.01-2.58)
            hi = max(ok, key=lambda g: entries[g][rate]["rate"])
            lo = min(ok, key=lambda g: entries[g][rate]["rate"])
            with np.errstate(invalid="ignore", divide="ignore"):
                x = reps[hi][rate][:, 0] / reps[lo][rate][:, 0]
            x[~np.isfinite(x)] = np.nan
            iv = bootstrap_interval(x[:, None], confidence)[0]
            block["ci"], block["ci_reason"] = iv.as_list(), iv.reason
            block["ci_of"] = f"{hi} / {lo}"
        out[key] = block
        out[f"{rate}_ratio_to_reference"] = _ratio_to_reference(entries, reps, ok, rate, name, confidence)
    return out


def _ratio_to_reference(entries: dict, reps: dict, ok: list, rate: str, name: str, confidence: float) -> dict:
    """Each group's rate over a reference group's (NISTIR 8280 reports rates relative to a
    reference), with a bootstrap interval of that ratio. Unlike max/min, the ratio of two NAMED
    groups is not pushed above 1 by resampling, so its interval brackets the estimate. The
    reference is the group with most probe subjects (ties: the first label in sorted order)."""
    if not ok:
        return {"reference": None, "reference_rule": "no groups", "by_group": {}}
    ref = max(sorted(ok), key=lambda g: entries[g][rate]["subjects"])
    r0 = entries[ref][rate]["rate"]
    by = {}
    for g in ok:
        if g == ref:
            continue
        v = entries[g][rate]["rate"]
        e = {"value": v / r0 if v is not None and r0 else None, "ci": None,
             "reason": None if r0 else f"the reference's {name} is 0: a ratio to zero is not a number"}
        if e["value"] is not None and reps[g][rate] is not None and reps[ref][rate] is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                x = reps[g][rate][:, 0] / reps[ref][rate][:, 0]
            x[~np.isfinite(x)] = np.nan
            iv = bootstrap_interval(x[:, None], confidence)[0]
            e["ci"], e["ci_reason"] = iv.as_list(), iv.reason
        by[g] = e
    return {"reference": ref, "reference_rule": "the group with most probe subjects",
            "definition": f"{name} of each group / {name} of the reference group, at the operating threshold and the "
                          "full gallery", "source": "NISTIR 8280 (rates relative to a reference group)", "by_group": by}


def _cmc(cmc: tuple, mask, subjects, boot: _Boot, label: str, K: int) -> dict:
    """The CMC block over the probes in ``mask``; ``cmc`` is ``cmc_hits(res, K, valid=valid)``."""
    counted, hits = cmc
    counted = counted & mask
    n = int(counted.sum())
    h = hits[counted].sum(axis=0)
    out = {"n": n, "subjects": int(len(np.unique(np.asarray(subjects)[counted]))), "hits": h.tolist(),
           "rate": (h / n).tolist() if n else [None] * K, "ci_boot": None}
    r = boot.reps(counted, hits, subjects, f"cmc|{label}")
    if r is not None:
        out["ci_boot"] = [iv.as_list() for iv in bootstrap_interval(r, boot.confidence)]
    return out


def _size_outcomes(res, t, valid) -> dict:
    """Per probe and gallery size (columns), at threshold ``t``: name -> (counted, error) for FPIR
    and FNIR; computed once, then masked per group."""
    out = {}
    for name, fn in (("fpir", lambda j: nonmated_false_positives(res, t, j, valid)),
                     ("fnir", lambda j: mated_misses(res, t, None, j, valid))):
        per = [fn(j) for j in range(len(res.sizes))]
        out[name] = (np.column_stack([c for c, _ in per]), np.column_stack([e for _, e in per]))
    return out


def _by_size(size_outcomes: dict, mask, subjects, boot: _Boot, label: str) -> dict:
    """FPIR and FNIR at the threshold for every gallery size (one bootstrap call per rate: the
    sizes are the columns)."""
    out = {}
    for name, (cnt, err) in size_outcomes.items():
        cnt = cnt & mask[:, None]
        r = boot.reps(cnt, err, subjects, f"size_{name}|{label}")
        out[name] = [rate_entry(cnt[:, j], err[:, j], subjects, boot.confidence, r, j, rate_name=name,
                                min_count=boot.min_count) for j in range(cnt.shape[1])]
    return out


def _false_candidates(res, t, valid, probe_labels, column_labels) -> dict:
    nm = (res.probe_mate < 0) & valid
    m = (res.probe_mate >= 0) & valid
    a = false_candidate_matrix(res, t, probe_labels, column_labels, nm)
    b = false_candidate_matrix(res, t, probe_labels, column_labels, m)
    labels, counts = np.unique(np.asarray(column_labels).astype(str), return_counts=True)
    return {"probe_labels": a["probe_labels"], "candidate_labels": a["candidate_labels"],
            "nonmated": {k: a[k] for k in ("false_candidates", "probes_with", "n_probes")},
            "mated": {"probe_labels": b["probe_labels"], **{k: b[k] for k in ("false_candidates", "probes_with", "n_probes")}},
            "gallery_subjects": {str(g): int(c) for g, c in zip(labels, counts)},
            "gallery_share": {str(g): float(c / counts.sum()) for g, c in zip(labels, counts)}}


def _audit(res, audit_threshold: dict, valid, subjects, probe_groups: dict, column_groups: dict, boot: _Boot) -> dict:
    """The ACLU shape at a vendor's fixed threshold: non-mated probes (people not in the
    database) with at least one false candidate, per probe group, with intervals; the share of the
    falsely matched each group makes up against its share of the non-mated probes; and whom they
    matched."""
    t = float(audit_threshold["threshold"])
    lab = f"audit{t!r}"
    oc = _outcomes(res, t, valid)
    overall, _ = _rates(oc, np.ones(res.n_probes, bool), subjects, boot, f"{lab}|all", ("fnir", "fpir"))
    cf, fp = oc["fpir"]
    out = {"threshold": t, "source": audit_threshold.get("source"), "gallery_size": int(res.sizes[-1]),
           "candidates": int(res.candidates),
           "overall": {"fpir": overall["fpir"], "fnir": overall["fnir"],
                       "false_candidates": int(_n_false_candidates(res, t, cf))},
           "groups": {}, "false_candidates": {}}
    n_fp, n_nm = int(fp.sum()), int(cf.sum())
    for attr, labels in probe_groups.items():
        per = {}
        for g in np.unique(labels[cf]) if n_nm else []:
            mask = labels == g
            e, _ = _rates(oc, mask, subjects, boot, f"{lab}|{attr}|{g}", ("fnir", "fpir"))
            per[str(g)] = {"fpir": e["fpir"], "fnir": e["fnir"],
                           "false_candidates": int(_n_false_candidates(res, t, cf & mask)),
                           "share_of_falsely_matched": float((fp & mask).sum() / n_fp) if n_fp else None,
                           "share_of_nonmated_probes": float((cf & mask).sum() / n_nm)}
        out["groups"][attr] = per
        out["false_candidates"][attr] = _false_candidates(res, t, valid, labels, column_groups[attr])
    return out


def _n_false_candidates(res: SearchResult, t: float, probes) -> int:
    cols, sc = res.top_column[probes], res.top_score[probes]
    return int(((sc <= t) & (cols >= 0) & (cols != res.probe_mate[probes, None])).sum())


def _threshold(res, valid, policy: str, target_fpir: float, value) -> dict:
    counted, _ = nonmated_false_positives(res, None, valid=valid)
    n = int(counted.sum())
    if n == 0:
        raise ValueError("the search has no non-mated probes to set or check a threshold on")
    best = res.best_nonmate[counted, -1]
    size = int(res.sizes[-1])
    if policy == "global_fpir":
        ch = rates.threshold_at_fmr(best, target_fpir)
        return results.ThresholdRecord(
            policy="global_fpir", value=ch.threshold, rate="fpir", target=float(target_fpir), achieved=ch.achieved_fmr,
            n=n, resolvable=ch.resolvable, gallery_size=size,
            label=f"one threshold for everyone at FPIR {target_fpir:g} over all {n} non-mated searches of "
                  f"the {size}-subject gallery")
    if policy == "fixed":
        t = rates.check_threshold(value)
        return results.ThresholdRecord(policy="fixed", value=t, rate="fpir", target=None,
                                       achieved=float(np.mean(best <= t)), n=n, resolvable=True, gallery_size=size,
                                       label=f"fixed distance threshold {t:.6g}")
    raise ValueError(f"threshold.policy={policy} is not available with protocol=search; use global_fpir or fixed")


def summarise_search(res: SearchResult, *, probe_subjects, probe_groups: dict, column_groups: dict,
                     threshold_policy: str, target_fpir: float, threshold_value, failure_policy: str,
                     confidence: float, image_failures, image_groups: dict, header: dict, image_notes=None,
                     min_count: tuple[int, int] = (10, 30), intersections=(), bootstrap: dict | None = None,
                     audit=(), cmc_max_rank: int | None = None, image_subjects=None) -> dict:
    """metrics.json (module docstring) from a :class:`SearchResult`.

    probe_subjects: (P,) subject of each probe; probe_groups / column_groups: attribute -> label
    per probe / per enrolled subject (column); image_*: per image the run embedded (failures to
    enrol); audit: [{threshold, source}] vendor thresholds to audit; cmc_max_rank: CMC ranks
    (default the candidate-list length)."""
    subjects = np.asarray(probe_subjects).astype(str)
    pg = {a: np.asarray(v).astype(str) for a, v in probe_groups.items()}
    cg = {a: np.asarray(v).astype(str) for a, v in column_groups.items()}
    valid = probe_validity(res, failure_policy)
    thr = _threshold(res, valid, threshold_policy, target_fpir, threshold_value)
    t = thr.value
    boot = _Boot(bootstrap, confidence, min_count)
    K = min(int(cmc_max_rank or res.candidates), res.candidates)
    everyone = np.ones(res.n_probes, bool)

    mated = res.probe_mate >= 0
    mate_dead = np.zeros(res.n_probes, bool)
    mate_dead[mated] = ~res.column_ok[res.probe_mate[mated]]
    failed = {"mated_probe_failed": int((mated & ~res.probe_ok).sum()),
              "mate_not_enrolled": int((mated & res.probe_ok & mate_dead).sum()),
              "nonmated_probe_failed": int((~mated & ~res.probe_ok).sum()),
              "excluded": int((~valid).sum()),
              "policy": failure_policy,
              "note": ("a failed search returns no candidates: a miss when mated, a correct rejection when non-mated"
                       if failure_policy == "nonmatch" else "failed searches are left out of every rate")}

    fails = failures_block(image_failures, image_notes, image_groups, confidence,
                           genuine=failed["mated_probe_failed"] + failed["mate_not_enrolled"],
                           impostor=failed["nonmated_probe_failed"], excluded=failed["excluded"],
                           image_subjects=image_subjects, min_count=min_count)
    out = results.header_block(
        header, kind=results.SEARCH, rates=results.SEARCH_RATES, failure_policy=failure_policy, failures=fails,
        threshold=thr, min_count=min_count,
        bootstrap=({"replicates": boot.replicates, "seed": boot.seed, "confidence": confidence,
                    "unit": "probe subject",
                    "method": "probe-subject cluster bootstrap, each group resampled on its own; percentile "
                              "intervals"} if boot.replicates else None))
    s: dict = {"gallery_size": int(res.sizes[-1]), "candidates": int(res.candidates)}
    oc, soc = _outcomes(res, t, valid), _size_outcomes(res, t, valid)
    out["overall"], _ = _rates(oc, everyone, subjects, boot, "all")
    out["groups"], out["disparity"], out["intersections"] = {}, {}, {}
    hits = cmc_hits(res, K, valid=valid)
    s["cmc"] = {"ranks": list(range(1, K + 1)), "overall": _cmc(hits, everyone, subjects, boot, "all", K),
                "groups": {}}
    s["by_gallery_size"] = {"sizes": res.sizes.tolist(), "overall": _by_size(soc, everyone, subjects, boot, "all"),
                            "groups": {}}
    s["false_candidates"] = {}
    for attr, labels in pg.items():
        entries, reps = _groups(oc, labels, subjects, boot, attr)
        out["groups"][attr] = entries
        out["disparity"][attr] = _disparity(entries, reps, confidence)
        s["cmc"]["groups"][attr] = {g: _cmc(hits, labels == g, subjects, boot, f"{attr}|{g}", K) for g in entries}
        s["by_gallery_size"]["groups"][attr] = {g: _by_size(soc, labels == g, subjects, boot, f"{attr}|{g}")
                                                for g in entries}
        s["false_candidates"][attr] = _false_candidates(res, t, valid, labels, cg[attr])
    for combo in intersections:
        if len(combo) < 2 or any(c not in pg for c in combo):
            continue
        name = " x ".join(combo)
        labels = np.array([" x ".join(x) for x in zip(*(pg[c] for c in combo))])
        out["intersections"][name], _ = _groups(oc, labels, subjects, boot, name)
        if all(c in image_groups for c in combo) and len(image_failures):   # failure to enrol per intersection
            combined = np.array([" x ".join(x) for x in zip(*(np.asarray(image_groups[c]).astype(str) for c in combo))])
            out["failures"]["by_group"][name] = failures_by_group(image_failures, {name: combined}, confidence,
                                                                  image_notes, image_subjects, min_count)[name]
    s["audit"] = [_audit(res, a, valid, subjects, pg, cg, boot) for a in audit]
    s["failed_searches"] = failed
    s["engine"] = {"seconds": None, "block_rows": int(res.block_rows), "distance": res.distance}
    out["search"] = s
    return _clean(out)
