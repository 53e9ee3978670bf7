"""Every image against every other (with an optional seeded cap per subject), counted in chunks
of matrix products without keeping a score table (evalkit.metrics.exhaustive). Config
``kind: exhaustive`` (conf/protocol/exhaustive.yaml); threshold policies global_fmr and fixed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import ConfigError, ProtocolConfig
from ..data.samples import Samples
from .base import Embedded, Plan, Protocol, RunContext, reject_search_policy

log = logging.getLogger("evalkit")


@dataclass
class ExhaustiveProtocolConfig(ProtocolConfig):
    """Every image against every other, counted in chunks (evalkit.metrics.exhaustive)."""
    name: str = "exhaustive"
    kind: str = "exhaustive"
    max_images_per_subject: Optional[int] = None   # seeded cap per subject (None: every image)
    memory_budget_mb: float = 1024.0         # bounds the score blocks and the kept impostor list
    topk: int = 1_000_000                    # smallest impostor scores kept exactly (thresholds down to FMR 1/n)
    seed: int = "${seed}"  # type: ignore[assignment]


class ExhaustiveProtocol(Protocol):
    name = "exhaustive"
    config_schema = ExhaustiveProtocolConfig

    def validate(self, cfg) -> None:
        reject_search_policy(cfg)
        if cfg.threshold.policy not in ("global_fmr", "fixed"):
            raise ConfigError(f"threshold.policy={cfg.threshold.policy} is not available with protocol=exhaustive "
                              "(it keeps counts, not a score table); use threshold=global_fmr or threshold=fixed")

    def plan(self, cfg, samples: Samples) -> Plan:
        """The compared rows: each subject capped at ``max_images_per_subject`` (seeded)."""
        from ..data.protocols import cap_images_per_subject

        p = cfg.protocol
        kept = cap_images_per_subject(samples, p.max_images_per_subject, np.random.default_rng(int(p.seed)))
        return Plan(samples, kept)

    def score(self, cfg, plan: Plan, embedded: Embedded):
        from ..metrics.exhaustive import exhaustive_counts

        used = plan.used_samples
        res = exhaustive_counts(embedded.matrix(), embedded.ok, used.subjects, dict(used.attributes),
                                thresholds=[float(self.threshold_value(cfg))] if cfg.threshold.policy == "fixed" else [],
                                distance=cfg.backend.distance, failure_policy=cfg.failure_policy,
                                memory_budget_mb=float(cfg.protocol.memory_budget_mb), topk=int(cfg.protocol.topk))
        log.info("exhaustive: %d comparisons over %d images in %.1f s", res.n_comparisons, res.n_images, res.seconds)
        return res

    def summarise(self, cfg, plan: Plan, output, context: RunContext) -> dict:
        from ..metrics import summary

        res, p, emb = output, cfg.protocol, context.embeddings
        header = context.header({
            "name": p.name, "n_comparisons": int(res.overall.n_genuine + res.overall.n_impostor),
            "n_genuine": int(res.overall.n_genuine), "n_impostor": int(res.overall.n_impostor), "n_folds": 0,
            "max_images_per_subject": p.max_images_per_subject})
        return summary.summarise_exhaustive(
            res, plan.used_samples, threshold_policy=cfg.threshold.policy, target_fmr=cfg.threshold.target_fmr,
            threshold_value=self.threshold_value(cfg), confidence=cfg.confidence, image_failures=emb.failures,
            header=header, image_notes=emb.details, min_count=(cfg.min_count.subjects, cfg.min_count.comparisons),
            reference=dict(cfg.reference))
