"""Enrolment only (``kind: enrolment``, conf/protocol/enrolment.yaml): every image (or a seeded
sample) enrolled, nothing compared; failure to detect / enrol per group and intersection with
intervals and reasons, for the run's detector and backend (evalkit.audits). The protocol for data
without identities (UTKFace, FairFace)."""

from __future__ import annotations

from ..audits import EnrolmentProtocolConfig, plan_enrolment, summarise_enrolment
from ..data.samples import Samples
from .base import Embedded, Plan, Protocol, RunContext, reject_search_policy


class EnrolmentProtocol(Protocol):
    name = "enrolment"
    config_schema = EnrolmentProtocolConfig

    def validate(self, cfg) -> None:
        from ..audits import validate

        reject_search_policy(cfg)
        validate(cfg)

    def plan(self, cfg, samples: Samples) -> Plan:
        return Plan(samples, plan_enrolment(cfg, samples))

    def score(self, cfg, plan: Plan, embedded: Embedded):
        return None                          # nothing is compared

    def summarise(self, cfg, plan: Plan, output, context: RunContext) -> dict:
        used = plan.used_samples
        header = context.header({"name": cfg.protocol.name, "kind": "enrolment", "seed": int(cfg.protocol.seed),
                                 "n_folds": 0, "n_comparisons": 0, "n_genuine": 0, "n_impostor": 0,
                                 "n_images": len(used), "max_images": cfg.protocol.max_images})
        emb = context.embeddings
        return summarise_enrolment(cfg, used, header=header, image_failures=emb.failures, image_notes=emb.details)
