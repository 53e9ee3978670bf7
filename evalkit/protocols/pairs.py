"""1:1 protocols that hand the metrics a score table: a list of pairs, one score per pair.

A subclass implements :meth:`PairProtocol.pairs` (which comparisons); scoring (one distance per
pair, failures carried into every comparison of a failed image), the calibration split of the
``calibrated`` threshold policy, the summary (evalkit.metrics.summary), scores.csv and the DET
figures are shared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.samples import Pairs, Samples
from ..scores import ScoreTable
from ..scoring import apply_failure_policy, pair_distances
from .base import Embedded, Plan, Protocol, RunContext, reject_search_policy

log = logging.getLogger("evalkit")


@dataclass
class PairPlan(Plan):
    """The pairs to score, and the LFW View 1 DevTrain pairs when they calibrate the threshold."""

    pairs: Pairs | None = None
    calibration_pairs: Pairs | None = None


@dataclass
class PairOutput:
    """The evaluated score table and, for ``threshold=calibrated``, the calibration split."""

    table: ScoreTable
    calibration: dict | None


class PairProtocol(Protocol):
    """Base of the 1:1 protocols built on a list of pairs (LFW views, generated pairs)."""

    def pairs(self, cfg, samples: Samples) -> Pairs:
        raise NotImplementedError

    def summary_options(self, cfg) -> dict:
        """Extra keyword arguments of ``evalkit.metrics.summary.summarise`` for this protocol."""
        return {}

    def validate(self, cfg) -> None:
        reject_search_policy(cfg)

    def plan(self, cfg, samples: Samples) -> PairPlan:
        pairs = self.pairs(cfg, samples)
        pairs.check_against(samples)
        cal = None
        if cfg.threshold.policy == "calibrated" and cfg.threshold.calibration == "lfw_view1_train":
            from ..data.lfw import lfw_protocol

            cal = lfw_protocol(samples, cfg.dataset.root, "view1_train")
        rows = np.unique(np.concatenate([pairs.used_samples()] + ([cal.used_samples()] if cal else [])))
        log.info("%s: %d samples, protocol %s: %d pairs over %d images", samples.name, len(samples),
                 pairs.name, len(pairs), len(rows))
        return PairPlan(samples, rows, pairs, cal)

    def score(self, cfg, plan: PairPlan, embedded: Embedded) -> PairOutput:
        if getattr(embedded, "kind", None) == "scoring":   # a black-box scoring backend (evalkit.black_box)
            table, calibration = calibration_split(cfg, plan.samples, embedded.score_table(plan.pairs), None, None, None)
            return PairOutput(table, calibration)
        # pairs index the embedded rows directly (no samples-sized copy of the matrix: 867 MB for
        # LBPH's 16,384-d histograms over all of LFW); pair_distances works within a byte budget
        vec = embedded.matrix()
        ok = np.zeros(embedded.n_samples, dtype=bool)
        ok[embedded.rows] = embedded.ok
        scoring = cfg.get("scoring")
        budget = int(float(scoring.memory_budget_mb if scoring is not None else 256) * 2 ** 20)

        def score(p: Pairs) -> np.ndarray:
            return pair_distances(vec, embedded.positions(p.a), embedded.positions(p.b), cfg.backend.distance,
                                  memory_budget_bytes=budget)

        pairs = plan.pairs
        table = ScoreTable.build(plan.samples, pairs, score(pairs), ok)
        table, calibration = calibration_split(cfg, plan.samples, table, plan.calibration_pairs, score, ok)
        return PairOutput(table, calibration)

    def summarise(self, cfg, plan: PairPlan, output: PairOutput, context: RunContext) -> dict:
        from ..metrics import summary

        table = output.table
        header = context.header({
            "name": plan.pairs.name, "n_comparisons": len(table), "n_genuine": int(table.mated.sum()),
            "n_impostor": int((~table.mated).sum()), "n_folds": int(len(np.unique(table.fold[table.fold >= 0]))),
            **({"notes": list(plan.pairs.notes)} if plan.pairs.notes else {})})
        emb = context.embeddings
        from .carried import carried_source   # threshold=from_run: another run's threshold, unchanged

        carried = carried_source(cfg, context.fingerprint)
        metrics = summary.summarise(
            table, threshold_policy="fixed" if carried else cfg.threshold.policy, target_fmr=cfg.threshold.target_fmr,
            threshold_value=carried["value"] if carried else self.threshold_value(cfg), failure_policy=cfg.failure_policy,
            confidence=cfg.confidence,
            image_failures=emb.failures, image_groups=plan.used_samples.attributes, header=header,
            image_notes=emb.details, image_subjects=plan.used_samples.subjects,
            threshold_attribute=cfg.threshold.attribute, calibration=output.calibration,
            reference=dict(cfg.reference), **context.statistics_options(), **self.summary_options(cfg))
        if carried:
            from ..metrics.carried import carried_block

            metrics["threshold"] = carried_block(carried, metrics["threshold"])
        return metrics

    def write(self, out_dir: Path, plan: PairPlan, output: PairOutput, context: RunContext) -> None:
        direction = context.extra.get("score_direction")   # set for a scoring backend (evalkit.black_box)
        if direction is None:
            output.table.write_csv(Path(out_dir) / "scores.csv")
        else:   # scores.csv in the backend's own units
            from ..black_box import present_table

            present_table(output.table, direction).write_csv(Path(out_dir) / "scores.csv")
        if context.cfg.det_plot:
            det_plots(Path(out_dir), output.table, context.metrics, context.cfg, direction,
                      context.extra.get("figures"))


def calibration_split(cfg, samples: Samples, table: ScoreTable, cal_pairs: Pairs | None, score, ok):
    """(evaluation table, calibration split) for threshold.policy=calibrated; else (table, None).

    ``calibration=lfw_view1_train``: the View 1 DevTrain pairs calibrate and the run's table stays
    whole; ``subject_split``: a seeded subject-disjoint split of the run's own comparisons
    (evalkit.metrics.thresholds.subject_split), the calibration half leaves the evaluated table.
    ``score``: pairs -> distances (or an embedding matrix over every sample row)."""
    if cfg.threshold.policy != "calibrated":
        return table, None
    if cal_pairs is not None:   # LFW View 1 DevTrain -> the run's protocol
        dist = (score(cal_pairs) if callable(score)
                else pair_distances(score, cal_pairs.a, cal_pairs.b, cfg.backend.distance))
        cal = ScoreTable.build(samples, cal_pairs, dist, ok)
        source = "LFW View 1 DevTrain (pairsDevTrain.txt)"
        extra = {"shared_subjects_with_run": int(len(np.intersect1d(
            np.concatenate([cal.subject_a, cal.subject_b]), np.concatenate([table.subject_a, table.subject_b]))))}
    else:
        from ..metrics.thresholds import subject_split

        split = subject_split(table.subject_a, table.subject_b, cfg.threshold.calibration_fraction, cfg.seed)
        cal, table = table.subset(split["calibration"]), table.subset(split["evaluation"])
        source = (f"a seeded subject-disjoint split (seed {cfg.seed}, {split['n_subjects_calibration']} subjects "
                  "calibrate, the rest evaluate)")
        extra = {"n_subjects_calibration": split["n_subjects_calibration"],
                 "n_subjects_evaluation": split["n_subjects_evaluation"],
                 "dropped_straddling_comparisons": split["n_dropped"], "seed": int(cfg.seed)}
    scores, keep = apply_failure_policy(cal.distance, cal.failed, cfg.failure_policy)
    imp = scores[keep & ~cal.mated]
    if len(imp) == 0:
        raise ValueError(f"the calibration split ({source}) has no impostor comparisons")
    return table, {"source": source, "impostor": imp, "n_genuine": int((keep & cal.mated).sum()), "extra": extra}


def det_plots(out: Path, table: ScoreTable, metrics: dict, cfg, direction: str | None = None, jobs=None) -> None:
    """Per attribute: each group's DET curve and its genuine/impostor score distributions (a
    scoring backend's ``direction``: the distributions in its own units, thresholds ``metrics``'
    internal ones). Scheduled on ``jobs`` (evalkit.report.figures.FigureJobs), or drawn here."""
    from functools import partial

    from ..pipeline import figure_formats
    from ..report import plots
    from ..report.figures import FigureJobs

    own = jobs is None
    jobs = FigureJobs(workers=1) if own else jobs

    sign = -1.0 if direction == "similarity" else 1.0
    xlabel = (f"{cfg.backend.distance} distance (lower = more alike; linear scale)" if direction is None else
              f"{cfg.backend.name} {direction} ({'higher' if direction == 'similarity' else 'lower'} = more alike; "
              "linear scale)")

    scores, keep = apply_failure_policy(table.distance, table.failed, cfg.failure_policy)
    th = metrics["threshold"]
    per_group = th.get("per_group") or {}
    for attr, (ga, gb) in table.groups.items():
        # one line for everyone; per-group policies mark each group's own only for the attribute
        # whose groups got their own thresholds (elsewhere a group's comparisons mix thresholds)
        thr = th["value"] if th["value"] is not None else (
            {g: v["value"] for g, v in per_group[attr].items()} if attr in per_group else None)
        curves, finite, failed = {}, {}, {}
        same = (ga == gb) & keep
        for g in np.unique(ga[same]):
            m = same & (ga == g)
            gen, imp = scores[m & table.mated], scores[m & ~table.mated]
            curves[str(g)] = (gen, imp)
            finite[str(g)] = (sign * gen[np.isfinite(gen)], sign * imp[np.isfinite(imp)])
            failed[str(g)] = int((m & table.failed).sum())
        jobs.add(out / f"det_{attr}", partial(plots.det_figure, curves, f"{metrics['experiment']}: DET by {attr}",
                                              threshold=thr, min_count=2), figure_formats(cfg))
        shown = thr if sign > 0 or thr is None else (
            {g: sign * v for g, v in thr.items()} if isinstance(thr, dict) else sign * thr)
        jobs.add(out / f"scores_{attr}", partial(
            plots.score_distribution_plot, finite, f"{metrics['experiment']}: score distributions by {attr}",
            threshold=shown, xlabel=xlabel, failed=failed), figure_formats(cfg))
    if own:
        jobs.wait()
