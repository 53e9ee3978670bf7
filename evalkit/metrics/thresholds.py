"""Threshold policies: how the operating threshold of a run is chosen, named in every output.

Scores are distances; a comparison matches when ``score <= threshold``. A policy yields one
threshold per comparison (an array), so per-group policies and calibrated ones flow through the
same rate code: a comparison is a match when ``score <= threshold[i]``.

Policies:

- ``global_fmr``: one threshold for everyone, set on all impostor comparisons of the run at a
  target FMR (NIST FRVT/FRTE 1:1 and NISTIR 8280 practice). Each group's FMR and FNMR are then
  read at that one threshold, which is what exposes demographic differentials.
- ``fixed``: a given distance, e.g. a vendor's default or DeepFace's per-model threshold.
- ``per_group_fmr``: each group of one attribute gets its own threshold at the target FMR,
  chosen on that group's own impostors (the BFW protocol: Robinson et al., "Face Recognition: Too
  Bias, or Not Too Bias?", CVPR-W 2020). Comparisons whose two sides differ in that attribute
  (mixed-group impostors) use the global threshold. This equalises FMR by construction and
  moves the disparity into FNMR; every output labels it.
- ``calibrated``: the threshold is set at the target FMR on a separate calibration split (LFW
  View 1 DevTrain, or a seeded subject-disjoint split of the run's own comparisons) and applied,
  unchanged, to the evaluation comparisons: the deployment situation, where a threshold is
  fixed before the data it is used on is seen.
"""

from __future__ import annotations

import numpy as np

from . import rates

POLICIES = ("global_fmr", "fixed", "per_group_fmr", "calibrated")


def _at_fmr(impostor: np.ndarray, target_fmr: float) -> dict:
    c = rates.threshold_at_fmr(impostor, target_fmr)
    return {"value": float(c.threshold), "achieved_fmr": float(c.achieved_fmr),
            "resolvable": bool(c.resolvable), "n_impostor": int(c.n_impostor)}


def choose(scores: np.ndarray, mated: np.ndarray, *, policy: str, target_fmr: float, value=None,
           group_a: np.ndarray | None = None, group_b: np.ndarray | None = None, attribute: str | None = None,
           calibration: dict | None = None) -> tuple[np.ndarray, dict]:
    """Per-comparison thresholds and the ``threshold`` block of metrics.json.

    Args:
        scores: distances with the failure policy applied (+inf never matches).
        mated: True for genuine comparisons.
        policy: one of POLICIES.
        target_fmr: the FMR the threshold aims at (global_fmr, per_group_fmr, calibrated).
        value: the distance for ``fixed``.
        group_a, group_b, attribute: the labels of each side for ``per_group_fmr``.
        calibration: for ``calibrated``, ``{"source", "impostor": scores, "n_genuine"}`` from the
            calibration split (failure policy already applied).
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(mated, dtype=bool)
    impostor = s[~m]
    if len(impostor) == 0:
        raise ValueError("choosing a threshold needs impostor comparisons")
    block = {"policy": policy, "target_fmr": None, "calibration": None, "per_group": None}
    if policy == "fixed":
        if value is None:
            raise ValueError("threshold policy 'fixed' needs a value")
        t = float(value)
        block.update(value=t, achieved_fmr=rates.fmr(impostor, t), resolvable=True, n_impostor=int(len(impostor)),
                     label=f"fixed distance threshold {t:.6g}")
        return np.full(len(s), t), block
    if policy == "global_fmr":
        g = _at_fmr(impostor, target_fmr)
        block.update(g, target_fmr=float(target_fmr),
                     label=f"one threshold for everyone at FMR {target_fmr:g} over all {g['n_impostor']} impostors")
        return np.full(len(s), g["value"]), block
    if policy == "calibrated":
        if calibration is None:
            raise ValueError("threshold policy 'calibrated' needs a calibration split")
        c = _at_fmr(np.asarray(calibration["impostor"], dtype=np.float64), target_fmr)
        t = c["value"]
        block.update(value=t, target_fmr=float(target_fmr), achieved_fmr=rates.fmr(impostor, t), resolvable=c["resolvable"],
                     n_impostor=int(len(impostor)),
                     calibration={"source": calibration["source"], "n_impostor": c["n_impostor"],
                                  "n_genuine": int(calibration.get("n_genuine", 0)),
                                  "achieved_fmr": c["achieved_fmr"], **calibration.get("extra", {})},
                     label=f"threshold set at FMR {target_fmr:g} on {calibration['source']} "
                           f"({c['n_impostor']} impostors), applied unchanged to this run")
        return np.full(len(s), t), block
    if policy == "per_group_fmr":
        if group_a is None or group_b is None:
            raise ValueError("threshold policy 'per_group_fmr' needs group labels")
        ga, gb = np.asarray(group_a).astype(str), np.asarray(group_b).astype(str)
        g = _at_fmr(impostor, target_fmr)
        t = np.full(len(s), g["value"])
        per = {}
        same = ga == gb
        for label in np.unique(ga[same]):
            sel = same & (ga == label)
            imp = s[sel & ~m]
            if len(imp) == 0:
                per[str(label)] = {"value": g["value"], "achieved_fmr": None, "resolvable": False, "n_impostor": 0,
                                   "note": "no within-group impostors: the global threshold is used"}
                continue
            pg = _at_fmr(imp, target_fmr)
            per[str(label)] = pg
            t[sel] = pg["value"]
        block.update(value=None, global_value=g["value"], target_fmr=float(target_fmr),
                     achieved_fmr=float(np.mean(impostor <= t[~m])),
                     resolvable=g["resolvable"], n_impostor=g["n_impostor"],
                     per_group={attribute: per}, attribute=attribute,
                     label=f"PER-GROUP thresholds (BFW style): each {attribute} group at FMR {target_fmr:g} on its "
                           "own impostors; mixed-group comparisons at the global threshold")
        return t, block
    raise ValueError(f"unknown threshold policy {policy!r}; choose one of {POLICIES}")


def subject_split(subjects_a: np.ndarray, subjects_b: np.ndarray, fraction: float, seed: int) -> dict:
    """A seeded subject-disjoint split of comparisons into calibration and evaluation.

    Each subject goes to the calibration side with probability ``fraction`` (exactly
    ``round(fraction * n_subjects)`` subjects, chosen by a permutation from ``seed``). A
    comparison is calibration when both its subjects are, evaluation when neither is; a
    comparison straddling the two is used by neither and counted in ``n_dropped``.

    Returns ``{"calibration": bool mask, "evaluation": bool mask, "n_subjects_calibration",
    "n_subjects_evaluation", "n_dropped"}``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"calibration fraction must be in (0, 1), got {fraction}")
    sa, sb = np.asarray(subjects_a).astype(str), np.asarray(subjects_b).astype(str)
    names = np.unique(np.concatenate([sa, sb]))
    rng = np.random.default_rng(seed)
    n_cal = int(round(fraction * len(names)))
    cal_names = names[rng.permutation(len(names))[:n_cal]]
    in_a, in_b = np.isin(sa, cal_names), np.isin(sb, cal_names)
    cal, ev = in_a & in_b, ~in_a & ~in_b
    return {"calibration": cal, "evaluation": ev, "n_subjects_calibration": n_cal,
            "n_subjects_evaluation": int(len(names) - n_cal), "n_dropped": int((~cal & ~ev).sum())}
