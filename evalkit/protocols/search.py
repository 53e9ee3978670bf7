"""One-to-many search, the mugshot-database scenario: a seeded, subject-disjoint split into a
gallery of enrolled subjects, mated probes and non-mated probes (evalkit.data.protocols.search_split);
every probe searched against the gallery in chunks of matrix products (evalkit.metrics.search);
FPIR / FNIR / CMC per probe group (evalkit.metrics.search_summary), audited at vendor thresholds.
Config ``kind: search`` (conf/protocol/search.yaml); threshold policies global_fpir and fixed.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import ConfigError, ProtocolConfig
from ..data.samples import Samples
from .base import Embedded, Plan, Protocol, RunContext

log = logging.getLogger("evalkit")


@dataclass
class SearchProtocolConfig(ProtocolConfig):
    """One-to-many search: a gallery of enrolled subjects, mated and non-mated probes
    (evalkit.data.protocols.search_split, evalkit.metrics.search)."""
    name: str = "search"
    kind: str = "search"
    gallery_images_per_subject: int = 1      # images enrolled per subject (its score is its best image's)
    max_probes_per_subject: Optional[int] = 5   # seeded cap on probes per subject (mated and non-mated)
    nonmated_fraction: float = 0.5           # share of subjects held out of every gallery (non-mated probes)
    gallery_sizes: list[Optional[int]] = field(default_factory=lambda: [None])   # enrolled subjects; null = all
    max_subjects: Optional[int] = None       # seeded subsample of the dataset's subjects (quick runs)
    candidates: int = 50                     # candidate-list length L (NIST FRTE 1:N returns 50)
    audit_thresholds: list[float] = field(default_factory=list)   # vendor thresholds (distances) to audit
    audit_deepface_default: bool = True      # also audit at the backend's own default threshold (DeepFace's table)
    memory_budget_mb: float = 512.0          # bounds each probe-by-gallery score block
    device: str = "cpu"                      # cpu | cuda: block products on a GPU through CuPy (evalkit.accel)
    seed: int = "${seed}"  # type: ignore[assignment]


@dataclass
class SearchPlan(Plan):
    """The gallery/probe split and the vendor thresholds to audit."""

    split: object = None
    audit: list = field(default_factory=list)


class SearchProtocol(Protocol):
    name = "search"
    config_schema = SearchProtocolConfig

    def validate(self, cfg) -> None:
        p = cfg.protocol
        if cfg.threshold.policy not in ("global_fpir", "fixed"):
            raise ConfigError(f"threshold.policy={cfg.threshold.policy} is a 1:1 policy; protocol=search needs "
                              "threshold=global_fpir (one threshold at a target FPIR over the non-mated searches) or "
                              "threshold=fixed (e.g. a vendor's threshold). Try: evalkit run protocol=search "
                              "threshold=global_fpir, or +experiment=lfw_search")
        if not 0 < cfg.threshold.target_fpir <= 1:
            raise ConfigError(f"threshold.target_fpir must be in (0, 1], got {cfg.threshold.target_fpir}")
        if p.gallery_images_per_subject < 1:
            raise ConfigError("protocol.gallery_images_per_subject must be >= 1")
        if p.max_probes_per_subject is not None and p.max_probes_per_subject < 1:
            raise ConfigError("protocol.max_probes_per_subject must be >= 1 or null")
        if not 0 < p.nonmated_fraction < 1:
            raise ConfigError(f"protocol.nonmated_fraction must be in (0, 1), got {p.nonmated_fraction}")
        if p.candidates < 1:
            raise ConfigError("protocol.candidates must be >= 1")
        if any(v is not None and v < 1 for v in p.gallery_sizes):
            raise ConfigError(f"protocol.gallery_sizes must be positive (or null for every enrolled subject), got "
                              f"{list(p.gallery_sizes)}")
        if p.memory_budget_mb <= 0:
            raise ConfigError("protocol.memory_budget_mb must be > 0")
        if p.max_subjects is not None and p.max_subjects < 2:
            raise ConfigError("protocol.max_subjects must be >= 2 or null")

    def plan(self, cfg, samples: Samples) -> SearchPlan:
        from ..data.protocols import search_split

        p = cfg.protocol
        split = search_split(samples, gallery_images_per_subject=p.gallery_images_per_subject,
                             max_probes_per_subject=p.max_probes_per_subject, nonmated_fraction=p.nonmated_fraction,
                             gallery_sizes=list(p.gallery_sizes), seed=int(p.seed), max_subjects=p.max_subjects)
        audit = self.audit_thresholds(cfg)   # before any embedding: a bad audit setting fails early
        log.info("%s: search split: %d enrolled subjects (%d gallery images), %d mated + %d non-mated probes",
                 samples.name, len(split.enrolled), len(split.gallery), split.n_mated_probes, split.n_nonmated_probes)
        return SearchPlan(samples, split.used_samples(), split, audit)

    def audit_thresholds(self, cfg) -> list[dict]:
        """The vendor thresholds a search run audits: protocol.audit_thresholds, plus the
        backend's own default (Backend.default_threshold: DeepFace's table for its model) when
        protocol.audit_deepface_default is set and the backend has one for this distance."""
        if getattr(self.backend_class, "kind", None) == "scoring":   # its own units and documented points
            from ..black_box import audit_thresholds

            return audit_thresholds(cfg, self.backend_class)
        out = [{"threshold": float(v), "source": "given (protocol.audit_thresholds)"} for v in cfg.protocol.audit_thresholds]
        if cfg.protocol.audit_deepface_default:
            try:
                default = self.backend_default_threshold(cfg)
            except ValueError as e:
                log.warning("no DeepFace default threshold to audit: %s", e)
            else:
                if default is not None and all(a["threshold"] != default.value for a in out):
                    out.append({"threshold": default.value, "source": default.source})
        return sorted(out, key=lambda a: a["threshold"])

    def _engine_args(self, cfg, plan: SearchPlan, embedded: Embedded) -> tuple[tuple, dict]:
        split, p = plan.split, cfg.protocol
        if getattr(embedded, "kind", None) == "scoring":
            raise ValueError("a scoring backend's searches are made by the service itself: sharded search "
                             "scoring (stage=score / merge) needs an embedding backend")
        vec, ok = embedded.matrix(), embedded.ok
        gi, pi = embedded.positions(split.gallery), embedded.positions(split.probes)
        return ((vec[pi], vec[gi], split.gallery_column, split.probe_mate),
                dict(sizes=split.sizes, candidates=int(p.candidates), distance=cfg.backend.distance,
                     probe_ok=ok[pi], gallery_ok=ok[gi], memory_budget_mb=float(p.memory_budget_mb)))

    def score(self, cfg, plan: SearchPlan, embedded: Embedded):
        from ..metrics.search import search

        if getattr(embedded, "kind", None) == "scoring":   # the service returns the candidate lists (evalkit.black_box)
            p = cfg.protocol
            return embedded.search(plan.split, int(p.candidates), int(p.gallery_images_per_subject))
        args, kw = self._engine_args(cfg, plan, embedded)
        res = search(*args, device=cfg.protocol.get("device", "cpu"), **kw)
        log.info("search: %d probes x %d gallery images in %.2f s", res.n_probes, len(plan.split.gallery), res.seconds)
        return res

    def score_shard(self, cfg, plan: SearchPlan, embedded: Embedded, index: int, count: int) -> dict:
        """stage=score: the probe blocks of shard ``index`` of ``count`` (evalkit.metrics.search.search_shard)."""
        from ..metrics.search import search_shard

        args, kw = self._engine_args(cfg, plan, embedded)
        return search_shard(*args, shard_index=index, shard_count=count, device=cfg.protocol.get("device", "cpu"), **kw)

    def merge_shards(self, cfg, plan: SearchPlan, embedded: Embedded, partials: list):
        """stage=merge: the score() result from every shard's partial, exactly."""
        from ..metrics.search import search_merge

        args, kw = self._engine_args(cfg, plan, embedded)
        return search_merge(partials, *args, **kw)

    def summarise(self, cfg, plan: SearchPlan, output, context: RunContext) -> dict:
        from ..metrics.search_summary import summarise_search

        res, split, p, samples, emb = output, plan.split, cfg.protocol, plan.samples, context.embeddings
        # a subject's label for its column: the label of its first gallery image (labels are per subject
        # in LFW; a subject whose images disagree carries "conflict" on every image)
        first = np.r_[True, split.gallery_column[1:] != split.gallery_column[:-1]]
        column_groups = {a: samples.attributes[a][split.gallery[first]] for a in samples.attribute_names}
        probe_groups = {a: samples.attributes[a][split.probes] for a in samples.attribute_names}
        protocol = {"name": p.name, "kind": "search", **split.describe(samples), "candidates": int(res.candidates),
                    "gallery_images_per_subject": int(p.gallery_images_per_subject),
                    "max_probes_per_subject": p.max_probes_per_subject, "nonmated_fraction": float(p.nonmated_fraction),
                    "max_subjects": p.max_subjects,
                    "n_comparisons": int(res.n_probes * len(split.gallery))}
        return summarise_search(
            res, probe_subjects=samples.subjects[split.probes], probe_groups=probe_groups, column_groups=column_groups,
            threshold_policy=cfg.threshold.policy, target_fpir=cfg.threshold.target_fpir,
            threshold_value=self.threshold_value(cfg), failure_policy=cfg.failure_policy, confidence=cfg.confidence,
            image_failures=emb.failures, image_groups=plan.used_samples.attributes, header=context.header(protocol),
            image_notes=emb.details, image_subjects=plan.used_samples.subjects, audit=plan.audit,
            **context.statistics_options())

    def write(self, out_dir: Path, plan: SearchPlan, output, context: RunContext) -> None:
        write_search_table(Path(out_dir) / "search.csv", plan.samples, plan.split, output,
                           context.extra.get("score_direction", "distance"))


def write_search_table(path: Path, samples: Samples, split, res, direction: str = "distance") -> None:
    """search.csv: one row per probe: who it is, its mate's score and rank, its best non-mate
    score (full gallery) and the nearest candidates; enough to recompute every rate. Scores are
    in the backend's own units (a similarity backend's "no candidate" is -inf)."""
    from ..metrics.search import NO_RANK

    sign = -1.0 if direction == "similarity" else 1.0

    enrolled = split.enrolled
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["probe", "subject", "mated", "probe_ok", "mate_score", "mate_rank", "best_nonmate_score",
                    "top1_subject", "top1_score", *samples.attribute_names])
        for i, row in enumerate(split.probes):
            mated = res.probe_mate[i] >= 0
            rk = int(res.rank[i, -1])
            top = res.top_column[i, 0]
            w.writerow([samples.ids[row], samples.subjects[row], int(mated), int(res.probe_ok[i]),
                        repr(sign * float(res.mate_score[i])) if mated else "",
                        ("" if not mated else ("inf" if rk == NO_RANK else rk)),
                        repr(sign * float(res.best_nonmate[i, -1])), enrolled[top] if top >= 0 else "",
                        repr(sign * float(res.top_score[i, 0])) if top >= 0 else "",
                        *[samples.attributes[a][row] for a in samples.attribute_names]])
