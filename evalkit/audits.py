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
from .preflight import intersections

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


def _fte_by_group(image_failures, image_notes, groups: dict, subjects, cfg, intersections) -> dict:
    """metrics.json ``failures`` with failure to enrol per group and per intersection (schema 3)."""
    from .metrics import summary

    mc = (cfg.min_count.subjects, cfg.min_count.comparisons)
    fails = summary.failures_block(image_failures, image_notes, groups, cfg.confidence, genuine=0, impostor=0,
                                   excluded=0, image_subjects=subjects, min_count=mc)
    for combo in intersections:
        if all(c in groups for c in combo) and len(combo) > 1:
            name = " x ".join(combo)
            combined = np.array([" x ".join(t) for t in zip(*(np.asarray(groups[c]).astype(str) for c in combo))])
            fails["by_group"][name] = summary.failures_by_group(image_failures, {name: combined}, cfg.confidence,
                                                                image_notes, subjects, mc)[name]
    return fails


def summarise_impostor(cfg, table, *, header: dict, image_failures, image_notes, image_groups, carried=None,
                       threshold_value=None, n_multi: int = 0, image_subjects=None, samples=None) -> dict:
    """metrics.json (schema 3) of an impostor-only run from its score table (no genuine comparison):
    every group entry is ``{"fmr": RateEstimate, "fnmr": not measurable}``."""
    from .metrics import results, summary, thresholds
    from .metrics.carried import carried_block
    from .metrics.impostor_only import IMPOSTOR_SCOPE, impostor_only_summary
    from .protocols.base import statistics_options
    from .scoring import apply_failure_policy

    scores, keep = apply_failure_policy(table.distance, table.failed, cfg.failure_policy)
    s = scores[keep]
    policy, value = cfg.threshold.policy, threshold_value
    if carried is not None:
        policy, value = "fixed", carried["value"]
    t, block = thresholds.choose(s, table.mated[keep], policy=policy, target_fmr=cfg.threshold.target_fmr, value=value)
    record = results.ThresholdRecord.from_choice(block).to_dict()
    if carried is not None:
        record = carried_block(carried, record)
    match = s <= t
    groups = {a: (ga[keep], gb[keep]) for a, (ga, gb) in table.groups.items()}
    mc = (cfg.min_count.subjects, cfg.min_count.comparisons)
    combos = intersections(cfg, samples) if samples is not None else [list(c) for c in (cfg.get("intersections") or [])]
    r = impostor_only_summary(match, table.subject_a[keep], table.subject_b[keep], groups, cfg.confidence,
                              min_count=mc, intersections=combos, bootstrap=statistics_options(cfg)["bootstrap"])
    fails = _fte_by_group(image_failures, image_notes, image_groups, image_subjects, cfg, combos)
    fails["comparisons"]["impostor"] = int(table.failed.sum())
    fails["excluded_comparisons"] = int((~keep).sum())
    out = results.header_block(header, kind=results.VERIFICATION, rates=results.VERIFICATION_RATES,
                               failure_policy=cfg.failure_policy, failures=fails, threshold=record, min_count=mc,
                               bootstrap=r["bootstrap"])
    for k in ("overall", "groups", "mixed", "intersections", "cross_fmr", "disparity"):
        out[k] = r[k]
    for block in ("groups", "intersections"):   # no genuine comparison: no accuracy, EER or DET points
        for per in out[block].values():
            for e in per.values():
                e.update(accuracy=None, eer=None, fnmr_at_fmr={})
    if "intersections_skipped" in r:
        out["intersections_skipped"] = r["intersections_skipped"]
    out["tests"], out["eer"] = {}, None
    scope = dict(IMPOSTOR_SCOPE)
    if n_multi:
        scope["note"] = (f"{n_multi} subject(s) have more than one image; this protocol uses one each (seeded); "
                         "protocol=generated would measure FNMR on them too")
    out["scope"] = scope
    return summary._clean(out)


def summarise_enrolment(cfg, samples: Samples, *, header: dict, image_failures, image_notes) -> dict:
    """metrics.json (schema 3; FNMR and FMR present as not measurable) of an enrolment-only run: failure to enrol per
    group, intersection and reason; nothing compared, so no threshold value."""
    from .metrics import results, summary
    from .metrics.impostor_only import ENROLMENT_SCOPE, bootstrap_unit, enrolment_summary
    from .protocols.base import statistics_options

    mc = (cfg.min_count.subjects, cfg.min_count.comparisons)
    combos = intersections(cfg, samples)   # given, or every pair of the dataset's categorical attributes
    boot = statistics_options(cfg)["bootstrap"]   # {replicates, seed} as for every 1:1 run, or None
    r = enrolment_summary(image_failures, samples.subjects, samples.attributes, cfg.confidence, min_count=mc,
                          intersections=combos, bootstrap=boot)
    fails = _fte_by_group(image_failures, image_notes, samples.attributes, samples.subjects, cfg, combos)
    # failures.* hold the same FTE estimates as the enrolment block: the same bootstrap intervals
    fails["images"]["fte"].update({k: r["overall"]["fte"][k] for k in ("ci_boot", "ci_boot_reason")})
    for attr, per in fails["by_group"].items():
        src = r["groups"].get(attr) or r["intersections"].get(attr) or {}
        for g, e in per.items():
            if g in src:
                e["fte"].update({k: src[g]["fte"][k] for k in ("ci_boot", "ci_boot_reason")})
    boot_info = None
    if boot:
        unit = bootstrap_unit(samples.subjects)
        boot_info = {"replicates": int(boot["replicates"]), "seed": boot["seed"], "confidence": cfg.confidence,
                     "unit": unit, "rate": "fte",
                     "note": ("each image is its own cluster (the data has no identities), so this is an ordinary "
                              "bootstrap of images, stratified by group" if unit == "image" else
                              "subjects resampled within their group, carrying all their images")}
    threshold = results.ThresholdRecord(policy="none", value=None, rate="fmr", target=None, achieved=None, n=0,
                                        resolvable=False, label="no threshold: nothing is compared")
    out = results.header_block(header, kind=results.VERIFICATION, rates=results.VERIFICATION_RATES,
                               failure_policy=cfg.failure_policy,
                               failures=fails, threshold=threshold, min_count=mc, bootstrap=boot_info)
    from .metrics.impostor_only import not_measurable

    nm = not_measurable("not measurable: the data has no identities, so no comparison is known to be mated or "
                        "non-mated")

    def entry(e):   # the verification group shape, FNMR and FMR not measurable
        return {"fnmr": nm, "fmr": nm, "accuracy": None, "eer": None, "fnmr_at_fmr": {}}   # FTE: ``enrolment``

    out["enrolment"] = {**r, "confidence": float(cfg.confidence)}   # the level of every exact interval
    out["overall"] = {"fnmr": nm, "fmr": nm}
    out["groups"] = {a: {g: entry(e) for g, e in per.items()} for a, per in r["groups"].items()}
    out["intersections"] = {a: {g: entry(e) for g, e in per.items()} for a, per in r["intersections"].items()}
    out["disparity"] = r["disparity"]
    out["mixed"], out["cross_fmr"], out["tests"], out["eer"] = {}, {}, {}, None
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

