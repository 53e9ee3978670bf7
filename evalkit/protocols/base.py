"""The protocol contract: which images a run needs, how they are scored, how the result is
summarised and what the run folder gets besides the common files.

A protocol is a class registered by name in :data:`evalkit.registry.PROTOCOLS` (the name is the
``kind`` of its ``conf/protocol/*.yaml``), or named by a ``protocol.target: package.module:Class``
key, or declared by another package under the entry point group ``evalkit.protocols``. The
pipeline (:func:`evalkit.pipeline.run`) drives every protocol the same way, with no switch on
its kind::

    samples  = dataset adapter's load(cfg.dataset)
    protocol.check(cfg, samples)                    every data-dependent check, before any embedding
    plan     = protocol.plan(cfg, samples)          which sample rows are needed (+ protocol state)
    embedded = embeddings of plan.rows              one extraction pass, cached, failures recorded
    output   = protocol.score(cfg, plan, embedded)  scores / counts / candidate lists
    metrics  = protocol.summarise(cfg, plan, output, context)   the metrics.json dict
    protocol.write(out_dir, plan, output, context)  its own tables and figures (scores.csv, ...)
    run folder: config.yaml, metrics.json, failures.csv, figures, summary.md, report, record.json

Config-only checks (allowed values, combinations with the threshold policy) go in
:meth:`Protocol.validate`, which :func:`evalkit.config.validate` calls, so ``evalkit run`` fails on
them before the dataset is even read.

Writing a protocol (one file, e.g. ``evalkit/protocols/impostor_only.py``)::

    @dataclass
    class ImpostorOnlyConfig(ProtocolConfig):    # evalkit.config.ProtocolConfig: name, kind, target
        name: str = "impostor_only"
        kind: str = "impostor_only"
        pairs: int = 10_000

    class ImpostorOnly(Protocol):
        name = "impostor_only"
        config_schema = ImpostorOnlyConfig       # stored in Hydra's ConfigStore as protocol/base_impostor_only
        def plan(self, cfg, samples): ...
        def score(self, cfg, plan, embedded): ...
        def summarise(self, cfg, plan, output, context): ...

plus one line in evalkit/registry.py (``PROTOCOLS.register("impostor_only", "evalkit.protocols.impostor_only:ImpostorOnly")``)
and ``conf/protocol/impostor_only.yaml`` starting with ``defaults: [base_impostor_only, _self_]``.
1:1 protocols that produce a list of pairs subclass :class:`evalkit.protocols.pairs.PairProtocol`
and only implement ``pairs(cfg, samples)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..backends.base import EmbeddingResult
from ..data.samples import Samples
from ..metrics.stats import label_levels

log = logging.getLogger("evalkit")


@dataclass
class Plan:
    """What a protocol needs from the dataset: the sorted unique sample rows to embed, plus its
    own state (subclasses add fields: the pairs, the gallery/probe split ...)."""

    samples: Samples
    rows: np.ndarray

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        if len(self.rows) and np.any(np.diff(self.rows) <= 0):
            raise ValueError("Plan.rows must be sorted and unique")

    @property
    def used_samples(self) -> Samples:
        """The samples table restricted to the planned rows (the images the run uses)."""
        if not hasattr(self, "_used"):
            self._used = self.samples.subset(self.rows)
        return self._used


@dataclass
class Embedded:
    """The embeddings of a plan's rows, as the extraction loop returned them.

    ``result`` is aligned with ``rows`` (row ``i`` of ``result.vectors`` is sample ``rows[i]``);
    ``n_samples`` is the size of the whole samples table.
    """

    rows: np.ndarray
    result: EmbeddingResult
    n_samples: int
    fingerprint: dict = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        """Per planned row: embedded (True) or failed to enrol."""
        return self.result.ok

    def matrix(self) -> np.ndarray:
        """Vectors of the planned rows, (len(rows), d); a (len(rows), 1) NaN matrix when every
        image failed (no vector says what d is)."""
        v = self.result.vectors
        return v if v.shape[1] else np.full((len(self.rows), 1), np.nan, np.float32)

    def full(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, ok) over every sample row: rows the plan did not embed are NaN / False."""
        v = self.result.vectors
        dim = v.shape[1]
        full = np.full((self.n_samples, max(dim, 1)), np.nan, dtype=np.float32)
        if dim:
            full[self.rows] = v
        ok = np.zeros(self.n_samples, dtype=bool)
        ok[self.rows] = self.result.ok
        return full, ok

    def positions(self, sample_rows) -> np.ndarray:
        """Indices into the planned rows of the given sample rows (which must be planned)."""
        return np.searchsorted(self.rows, np.asarray(sample_rows))


@dataclass
class RunContext:
    """What summarise and write get besides the plan and output: the config, the whole samples
    table, the embedding result of the planned rows, the backend's fingerprint and class."""

    cfg: Any
    samples: Samples
    plan: Plan
    embeddings: EmbeddingResult
    fingerprint: dict
    metrics: dict | None = None          # set by the pipeline once summarise has returned
    extra: dict = field(default_factory=dict)

    @property
    def used_samples(self) -> Samples:
        return self.plan.used_samples

    def header(self, protocol: dict) -> dict:
        """The experiment / dataset / protocol / backend blocks at the top of metrics.json."""
        cfg, used = self.cfg, self.used_samples
        return {
            "experiment": cfg.experiment,
            "dataset": {"name": self.samples.name, "n_samples": len(used),
                        "n_subjects": int(len(np.unique(used.subjects))),
                        "attributes": self.samples.attribute_names, "label_sources": self.samples.label_sources,
                        "label_coverage": used.label_coverage(),
                        "label_provenance": {a: (cfg.dataset.get("label_provenance") or {}).get(a)
                                             for a in self.samples.attribute_names},
                        "label_level": label_levels(used.subjects, used.attributes)},
            "protocol": protocol,
            "backend": {"name": cfg.backend.name, "family": cfg.backend.family, "distance": cfg.backend.distance,
                        "fingerprint": self.fingerprint},
        }

    def statistics_options(self) -> dict:
        return statistics_options(self.cfg, self.samples)


class Protocol:
    """Base class of every protocol; see the module docstring for the contract."""

    #: registry name, the ``kind`` in conf/protocol/*.yaml
    name: ClassVar[str] = ""
    #: its config dataclass (a subclass of evalkit.config.ProtocolConfig), stored in Hydra's
    #: ConfigStore as ``protocol/base_<name>``
    config_schema: ClassVar[type | None] = None
    #: False for a protocol that measures FMR alone (impostor only): pairs without a genuine
    #: comparison are then not refused before embedding (evalkit.preflight.check_data)
    needs_genuine: ClassVar[bool] = True

    def __init__(self, backend_class: type | None = None):
        #: the backend class of the run (None: resolved from cfg.backend when needed); it
        #: declares the backend's own default thresholds (Backend.default_threshold)
        self.backend_class = backend_class

    def threshold_value(self, cfg):
        """The fixed threshold: threshold.value, or the backend's own default when asked (a
        scoring backend's value is in its own units: evalkit.black_box turns it around)."""
        if getattr(self.backend_class, "kind", None) == "scoring":
            from ..black_box import threshold_value

            return threshold_value(cfg, self.backend_class)
        return fixed_threshold(cfg, self.backend_class)

    def backend_default_threshold(self, cfg):
        """The backend's own default threshold for the run's options and distance, or None."""
        from ..backends import backend_class as _backend_class
        from ..config import backend_options

        cls = self.backend_class or _backend_class(cfg.backend)
        return cls.default_threshold(backend_options(cfg.backend), cfg.backend.distance)

    def validate(self, cfg) -> None:
        """Config-only checks (no data read yet); raise evalkit.config.ConfigError."""

    def check(self, cfg, samples: Samples) -> None:
        """Every check that needs the data, run before any image is embedded."""

    def plan(self, cfg, samples: Samples) -> Plan:
        raise NotImplementedError

    def score(self, cfg, plan: Plan, embedded: Embedded) -> Any:
        raise NotImplementedError

    def summarise(self, cfg, plan: Plan, output: Any, context: RunContext) -> dict:
        raise NotImplementedError

    def write(self, out_dir: Path, plan: Plan, output: Any, context: RunContext) -> None:
        """The protocol's own files in the run folder (default: none)."""


# -- helpers every protocol shares -------------------------------------------------------------
def reject_search_policy(cfg) -> None:
    """1:1 protocols: the 1:N threshold policy is a config error."""
    from ..config import ConfigError

    if cfg.threshold.policy == "global_fpir":
        raise ConfigError("threshold.policy=global_fpir sets a 1:N threshold and needs protocol=search; "
                          "for 1:1 protocols use threshold=global_fmr")


def statistics_options(cfg, samples: Samples | None = None) -> dict:
    """The keyword arguments every summary with groups and intervals takes from the config
    (intersections: ``cfg.intersections``, or by default every pair of the dataset's categorical
    attributes, evalkit.preflight.intersections)."""
    from ..preflight import intersections

    return {"min_count": (cfg.min_count.subjects, cfg.min_count.comparisons),
            "intersections": (intersections(cfg, samples) if samples is not None
                              else [list(c) for c in (cfg.get("intersections") or [])]),
            "bootstrap": ({"replicates": cfg.bootstrap.replicates, "seed": cfg.bootstrap.seed}
                          if cfg.bootstrap.replicates else None)}


def fixed_threshold(cfg, backend_class: type | None = None):
    """The fixed threshold: ``threshold.value``, or with ``threshold.deepface_default`` the
    backend's own default for its model and distance (``Backend.default_threshold``)."""
    if cfg.threshold.policy == "fixed" and cfg.threshold.value is None and cfg.threshold.deepface_default:
        from ..backends import backend_class as _backend_class
        from ..config import ConfigError, backend_options

        cls = backend_class or _backend_class(cfg.backend)
        default = cls.default_threshold(backend_options(cfg.backend), cfg.backend.distance)
        if default is None:
            raise ConfigError(f"threshold.deepface_default: DeepFace has no threshold for the "
                              f"{cfg.backend.family} backend; give threshold.value")
        return default.value
    return cfg.threshold.value
