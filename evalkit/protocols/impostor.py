"""Impostor only (``kind: impostor``, conf/protocol/impostor.yaml): one image per subject
(seeded), every (or a seeded sample of the) non-mated pair. FMR per group, between groups and
for mixed pairs at one threshold (global_fmr, fixed or from_run); FNMR is reported as not
measurable with its reason (evalkit.audits, evalkit.metrics.impostor_only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audits import ImpostorProtocolConfig, plan_impostor, summarise_impostor
from ..data.samples import Pairs, Samples
from .base import Embedded, Plan, Protocol, RunContext, reject_search_policy


@dataclass
class ImpostorPlan(Plan):
    pairs: Pairs | None = None
    n_multi: int = 0                         # subjects with more than one image (one used each)


class ImpostorProtocol(Protocol):
    name = "impostor"
    needs_genuine = False   # one image per subject: FMR alone, FNMR reported as not measurable
    config_schema = ImpostorProtocolConfig

    def validate(self, cfg) -> None:
        from ..audits import validate

        reject_search_policy(cfg)
        validate(cfg)

    def plan(self, cfg, samples: Samples) -> ImpostorPlan:
        pairs = plan_impostor(cfg, samples)
        _, counts = np.unique(samples.subjects, return_counts=True)
        return ImpostorPlan(samples, pairs.used_samples(), pairs, int((counts > 1).sum()))

    def score(self, cfg, plan: ImpostorPlan, embedded: Embedded):
        from ..scores import ScoreTable
        from ..scoring import pair_distances

        p = plan.pairs
        ok = np.zeros(embedded.n_samples, dtype=bool)
        ok[embedded.rows] = embedded.ok
        scoring = cfg.get("scoring")
        budget = int(float(scoring.memory_budget_mb if scoring is not None else 256) * 2 ** 20)
        # the planned rows' own matrix (no copy over the whole samples table: bounded for wide embeddings)
        dist = pair_distances(embedded.matrix(), embedded.positions(p.a), embedded.positions(p.b),
                              cfg.backend.distance, memory_budget_bytes=budget)
        return ScoreTable.build(plan.samples, p, dist, ok)

    def summarise(self, cfg, plan: ImpostorPlan, output, context: RunContext) -> dict:
        from .carried import carried_source

        header = context.header({"name": cfg.protocol.name, "kind": "impostor", "seed": int(cfg.protocol.seed),
                                 "n_folds": 0, "n_comparisons": len(output), "n_genuine": 0, "n_impostor": len(output),
                                 "images_per_subject": 1, "nonmated": cfg.protocol.nonmated})
        emb = context.embeddings
        return summarise_impostor(cfg, output, header=header, image_failures=emb.failures, image_notes=emb.details,
                                  image_groups=plan.used_samples.attributes,
                                  carried=carried_source(cfg, context.fingerprint),
                                  threshold_value=self.threshold_value(cfg), n_multi=plan.n_multi,
                                  image_subjects=plan.used_samples.subjects, samples=plan.used_samples)

    def write(self, out_dir: Path, plan: ImpostorPlan, output, context: RunContext) -> None:
        output.write_csv(Path(out_dir) / "scores.csv")
