"""The two partial audits, end to end (``protocol=impostor`` and ``protocol=enrolment``): what is
measured is in evalkit.metrics.impostor_only; this module plans the images, scores the pairs,
chooses or carries the threshold and assembles metrics.json; the protocol plug-ins
(evalkit/protocols/impostor.py, enrolment.py) call these, and the pipeline writes the run folder
as for any run.

metrics.json of these runs: the 1:1 header, ``failures``, ``threshold``, ``min_count`` blocks;
``protocol.kind`` ``"impostor"`` or ``"enrolment"``; ``scope`` ({can_show, cannot_show}: what the
data can and cannot show); ``estimates`` (every rate as a RateEstimate-shaped object: rate,
errors, n, subjects, ci, upper, ..., estimable, reason). An impostor-only run also has the 1:1
rate fields of its groups (``groups``, ``mixed``, ``intersections``, ``cross_fmr``, ``overall``,
``disparity``) with ``fnmr`` null and ``fnmr_reason`` saying it is not measurable; an
enrolment-only run has ``enrolment`` (failure to enrol per group, intersection and reason).
"""

from __future__ import annotations

import logging

import numpy as np

from .data.samples import DatasetError, Samples

log = logging.getLogger("evalkit")

KINDS = ("impostor", "enrolment")


def plan_impostor(cfg, samples: Samples):
    """One image per subject (seeded) and every, or a seeded sample of the, non-mated pairs."""
    from .data.protocols import generated_pairs

    if len(np.unique(samples.subjects)) < 2:
        raise DatasetError(f"protocol=impostor needs at least two subjects; {samples.name!r} has one")
    p = cfg.protocol
    pairs = generated_pairs(samples, 1, p.nonmated, int(p.seed), name=p.name)
    return pairs


def plan_enrolment(cfg, samples: Samples) -> np.ndarray:
    """Every image, or a seeded sample of ``protocol.max_images``."""
    p = cfg.protocol
    rows = np.arange(len(samples), dtype=np.int64)
    if p.max_images is not None and p.max_images < len(samples):
        rows = np.sort(np.random.default_rng(int(p.seed)).choice(rows, size=int(p.max_images), replace=False))
    return rows


def _flat(e: dict, rate: str) -> dict:
    """A RateEstimate-shaped FMR or FNMR estimate as the flat fields of a 1:1 group entry."""
    count, n = {"fmr": ("false_matches", "n_impostor"), "fnmr": ("false_nonmatches", "n_genuine")}[rate]
    out = {rate: e["rate"], f"{rate}_ci": e["ci"], f"{rate}_upper_bound": e["upper"], count: e["errors"], n: e["n"],
           f"small_{rate}": e["small"], f"small_{rate}_reason": e["small_reason"]}
    if not e["estimable"]:
        out[f"{rate}_reason"] = e["reason"]
    return out


def _entry(both: dict) -> dict:
    e = {**_flat(both["fmr"], "fmr"), **_flat(both["fnmr"], "fnmr"), "n_subjects": both["fmr"]["subjects"]}
    e["small_fnmr"], e["small_fnmr_reason"] = False, None     # not small: not measurable at all
    e["small"], e["small_reason"] = e["small_fmr"], e["small_fmr_reason"]
    e["accuracy"], e["eer"], e["fnmr_at_fmr"] = None, None, {}
    return e


def summarise_impostor(cfg, table, *, header: dict, image_failures, image_notes, image_groups, carried=None,
                       threshold_value=None, n_multi: int = 0) -> dict:
    """metrics.json of an impostor-only run from its score table (no genuine comparison)."""
    from .metrics import summary, thresholds
    from .metrics.carried import carried_block
    from .metrics.impostor_only import IMPOSTOR_SCOPE, impostor_only_summary
    from .scoring import apply_failure_policy

    scores, keep = apply_failure_policy(table.distance, table.failed, cfg.failure_policy)
    s = scores[keep]
    policy, value = cfg.threshold.policy, threshold_value
    if carried is not None:
        policy, value = "fixed", carried["value"]
    t, block = thresholds.choose(s, table.mated[keep], policy=policy, target_fmr=cfg.threshold.target_fmr, value=value)
    if carried is not None:
        block = carried_block(carried, block["achieved_fmr"], block["n_impostor"])
    match = s <= t
    groups = {a: (ga[keep], gb[keep]) for a, (ga, gb) in table.groups.items()}
    mc = (cfg.min_count.subjects, cfg.min_count.comparisons)
    combos = [list(c) for c in cfg.intersections]
    r = impostor_only_summary(match, table.subject_a[keep], table.subject_b[keep], groups, cfg.confidence,
                              min_count=mc, intersections=combos)
    out = dict(header)
    out["schema"] = summary.SCHEMA
    out["failure_policy"] = cfg.failure_policy
    out["failures"] = summary.failures_block(image_failures, image_notes, image_groups, cfg.confidence, genuine=0,
                                             impostor=int(table.failed.sum()), excluded=int((~keep).sum()))
    out["threshold"] = block
    out["min_count"] = {"subjects": mc[0], "comparisons": mc[1]}
    out["overall"] = _entry(r["overall"])
    out["groups"] = {a: {g: _entry(e) for g, e in per.items()} for a, per in r["groups"].items()}
    out["mixed"] = {a: _entry(e) for a, e in r["mixed"].items()}
    out["intersections"] = {a: {g: _entry(e) for g, e in per.items()} for a, per in r["intersections"].items()}
    if "intersections_skipped" in r:
        out["intersections_skipped"] = r["intersections_skipped"]
    out["cross_fmr"] = r["cross_fmr"]
    out["disparity"] = r["disparity"]
    out["tests"], out["bootstrap"], out["eer"] = {}, None, None
    scope = dict(IMPOSTOR_SCOPE)
    if n_multi:
        scope["note"] = (f"{n_multi} subject(s) have more than one image; this protocol uses one each (seeded); "
                         "protocol=generated would measure FNMR on them too")
    out["scope"] = scope
    out["estimates"] = {"overall": r["overall"], "groups": r["groups"], "mixed": r["mixed"],
                        "intersections": r["intersections"]}
    return summary._clean(out)


def summarise_enrolment(cfg, samples: Samples, *, header: dict, image_failures, image_notes) -> dict:
    """metrics.json of an enrolment-only run: failure to enrol per group, intersection, reason."""
    from .metrics import summary
    from .metrics.impostor_only import ENROLMENT_SCOPE, enrolment_summary

    mc = (cfg.min_count.subjects, cfg.min_count.comparisons)
    combos = [list(c) for c in cfg.intersections]
    r = enrolment_summary(image_failures, samples.subjects, samples.attributes, cfg.confidence, min_count=mc,
                          intersections=combos)
    out = dict(header)
    out["schema"] = summary.SCHEMA
    out["failure_policy"] = cfg.failure_policy
    out["failures"] = summary.failures_block(image_failures, image_notes, samples.attributes, cfg.confidence,
                                             genuine=0, impostor=0, excluded=0)
    for name, per in r["intersections"].items():   # the FTE figure reads failures.by_group
        combined = np.array([" x ".join(t) for t in zip(*(samples.attributes[a] for a in name.split(" x ")))])
        out["failures"]["by_group"][name] = summary.failures_by_group(image_failures, {name: combined},
                                                                      cfg.confidence, image_notes)[name]
    out["threshold"] = {"policy": "none", "value": None, "label": "no threshold: nothing is compared",
                        "target_fmr": None, "achieved_fmr": None, "resolvable": False, "n_impostor": 0,
                        "per_group": None, "calibration": None}
    out["min_count"] = {"subjects": mc[0], "comparisons": mc[1]}
    out["enrolment"] = r
    nm = "not measurable: the data has no identities, so no comparison is known to be mated or non-mated"
    out["groups"] = {a: {g: {"fnmr": None, "fnmr_reason": nm, "fmr": None, "fmr_reason": nm, "n_genuine": 0,
                             "n_impostor": 0, "false_matches": 0, "false_nonmatches": 0,
                             "n_subjects": e["fte"]["subjects"], "small": False}
                         for g, e in per.items()} for a, per in r["groups"].items()}
    out["scope"] = dict(ENROLMENT_SCOPE)
    return summary._clean(out)


# -- configs (the protocol plug-ins evalkit.protocols.impostor / .enrolment use them) ------------

from dataclasses import dataclass  # noqa: E402
from typing import Optional  # noqa: E402

from .config import ProtocolConfig  # noqa: E402


@dataclass
class ImpostorProtocolConfig(ProtocolConfig):
    """One image per subject; every (or a seeded sample of the) non-mated pair."""
    name: str = "impostor"
    kind: str = "impostor"
    nonmated: Optional[int] = None           # None: every non-mated pair; else a seeded sample of this many
    seed: int = "${seed}"  # type: ignore[assignment]


@dataclass
class EnrolmentProtocolConfig(ProtocolConfig):
    """Every image (or a seeded sample) enrolled; nothing compared."""
    name: str = "enrolment"
    kind: str = "enrolment"
    max_images: Optional[int] = None         # None: every image; else a seeded sample of this many
    seed: int = "${seed}"  # type: ignore[assignment]




def validate(cfg) -> None:
    """Config-only checks of the two kinds (before any data is read)."""
    from .config import ConfigError

    if cfg.protocol.kind == "impostor" and cfg.threshold.policy not in ("global_fmr", "fixed", "from_run"):
        raise ConfigError(f"threshold.policy={cfg.threshold.policy} is not available with protocol=impostor (it needs "
                          "genuine comparisons or a calibration split); use threshold=global_fmr, fixed or from_run")
    if cfg.protocol.kind == "enrolment" and cfg.threshold.policy == "from_run":
        raise ConfigError("protocol=enrolment compares nothing, so a carried threshold has nothing to apply to")

