"""Structured config schemas, registered in Hydra's ConfigStore.

Every yaml under conf/ is validated against one of these dataclasses, so a typo in a key
(``threshold.target_fmrr=...``) or a wrong type fails before any work with Hydra's message
naming the key and the schema. ``???`` marks a value the user must give.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent


def conf_dir() -> Path:
    """The conf/ folder: $EVALKIT_CONF, else conf/ next to the package (editable install)."""
    return Path(os.environ.get("EVALKIT_CONF", REPO_ROOT / "conf")).resolve()


def default_data_dir() -> str:
    """Data root: $EVALKIT_DATA_DIR, else datasets/ in the repository."""
    return str(Path(os.environ.get("EVALKIT_DATA_DIR", REPO_ROOT / "datasets")).resolve())


def default_cache_dir() -> str:
    from .backends.weights import evalkit_home

    return str(evalkit_home() / "embeddings")


# -- datasets ---------------------------------------------------------------------------------
@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: str = MISSING                      # adapter: "lfw" | "csv"
    attributes: list[str] = field(default_factory=list)   # attributes to group by (empty: all)


@dataclass
class LFWDatasetConfig(DatasetConfig):
    name: str = "lfw"
    kind: str = "lfw"
    root: str = "${data_dir}/lfw"
    images_dir: Optional[str] = None         # lfw-deepfunneled | lfw | lfw_funneled (first found)
    attributes: list[str] = field(default_factory=lambda: ["sex", "race"])


@dataclass
class CSVDatasetConfig(DatasetConfig):
    kind: str = "csv"
    path: str = MISSING                      # CSV with columns path, subject, <attributes...>
    numeric_bands: dict[str, list[float]] = field(default_factory=dict)   # e.g. {age: [18, 30, 45, 60]}


# -- protocols --------------------------------------------------------------------------------
@dataclass
class ProtocolConfig:
    name: str = MISSING
    kind: str = MISSING                      # "lfw" | "generated"


@dataclass
class LFWProtocolConfig(ProtocolConfig):
    name: str = "lfw_view2"
    kind: str = "lfw"
    split: str = "view2"                     # view2 | view1_train | view1_test
    pairs_per_fold: Optional[int] = None     # keep the first n mated + n non-mated pairs per fold (smoke runs)


@dataclass
class GeneratedProtocolConfig(ProtocolConfig):
    name: str = "generated"
    kind: str = "generated"
    max_images_per_subject: Optional[int] = 10
    nonmated: Optional[int] = None           # None: every non-mated pair; else a seeded sample of this many
    seed: int = "${seed}"  # type: ignore[assignment]


# -- backends ---------------------------------------------------------------------------------
@dataclass
class BackendConfig:
    name: str = MISSING                      # label in outputs, e.g. "dlib", "deepface-dlib"
    family: str = MISSING                    # registry key in evalkit.backends
    workers: int = 2                         # worker processes for embedding
    chunk_size: int = 16                     # images per task sent to a worker
    distance: str = "euclidean"              # euclidean | euclidean_l2 | cosine


@dataclass
class DlibBackendConfig(BackendConfig):
    name: str = "dlib"
    family: str = "dlib"
    detector: str = "hog"                    # hog | cnn | skip
    upsample: int = 1
    multiple_faces: str = "largest"          # largest | central | fail
    no_face: str = "fail"                    # fail | center_box | whole_image
    chip_size: int = 150
    chip_padding: float = 0.25
    num_jitters: int = 0


@dataclass
class DeepFaceBackendConfig(BackendConfig):
    name: str = "deepface-dlib"
    family: str = "deepface"
    model_name: str = "Dlib"
    detector_backend: str = "opencv"
    align: bool = True
    expand_percentage: int = 0
    normalization: str = "base"
    distance: str = "cosine"
    multiple_faces: str = "largest"


BACKEND_RUNTIME_KEYS = ("name", "family", "workers", "chunk_size")


# -- thresholds -------------------------------------------------------------------------------
@dataclass
class ThresholdConfig:
    policy: str = "target_fmr"               # target_fmr (NIST: one threshold from all impostors) | fixed
    target_fmr: float = 1e-3
    value: Optional[float] = None            # the fixed threshold (a distance) when policy=fixed


# -- the whole run ----------------------------------------------------------------------------
@dataclass
class Config:
    dataset: DatasetConfig = MISSING
    backend: BackendConfig = MISSING
    protocol: ProtocolConfig = MISSING
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    experiment: str = "${dataset.name}-${protocol.name}-${backend.name}"
    seed: int = 0
    data_dir: str = "${evalkit_data_dir:}"
    cache_dir: str = "${evalkit_cache_dir:}"
    results_dir: str = "results"
    failure_policy: str = "nonmatch"         # nonmatch (ISO/IEC 19795-1) | exclude
    confidence: float = 0.95
    det_plot: bool = True
    progress: bool = True


def register() -> None:
    """Register resolvers and schemas (idempotent)."""
    if not OmegaConf.has_resolver("evalkit_data_dir"):
        OmegaConf.register_new_resolver("evalkit_data_dir", default_data_dir)
    if not OmegaConf.has_resolver("evalkit_cache_dir"):
        OmegaConf.register_new_resolver("evalkit_cache_dir", default_cache_dir)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="dataset", name="base_lfw", node=LFWDatasetConfig)
    cs.store(group="dataset", name="base_csv", node=CSVDatasetConfig)
    cs.store(group="protocol", name="base_lfw", node=LFWProtocolConfig)
    cs.store(group="protocol", name="base_generated", node=GeneratedProtocolConfig)
    cs.store(group="backend", name="base_dlib", node=DlibBackendConfig)
    cs.store(group="backend", name="base_deepface", node=DeepFaceBackendConfig)
    cs.store(group="threshold", name="base_threshold", node=ThresholdConfig)


def backend_options(backend_cfg: Any) -> dict:
    """The keyword arguments for the backend class: its config minus evalkit's runtime keys."""
    d = OmegaConf.to_container(backend_cfg, resolve=True) if not isinstance(backend_cfg, dict) else dict(backend_cfg)
    return {k: v for k, v in d.items() if k not in BACKEND_RUNTIME_KEYS}


class ConfigError(ValueError):
    """A config value that the schema allows but evalkit cannot use; the message says which."""


def validate(cfg: Any) -> None:
    """Checks the schema cannot express (allowed values), with clear messages."""
    def one_of(value, allowed, key):
        if value not in allowed:
            import difflib

            hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            extra = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}.{extra}")

    one_of(cfg.threshold.policy, ("target_fmr", "fixed"), "threshold.policy")
    if cfg.threshold.policy == "fixed" and cfg.threshold.value is None:
        raise ConfigError("threshold.policy=fixed needs threshold.value (a distance)")
    if not 0 < cfg.threshold.target_fmr <= 1:
        raise ConfigError(f"threshold.target_fmr must be in (0, 1], got {cfg.threshold.target_fmr}")
    one_of(cfg.failure_policy, ("nonmatch", "exclude"), "failure_policy")
    one_of(cfg.backend.distance, ("euclidean", "euclidean_l2", "cosine"), "backend.distance")
    one_of(cfg.dataset.kind, ("lfw", "csv"), "dataset.kind")
    one_of(cfg.protocol.kind, ("lfw", "generated"), "protocol.kind")
    if cfg.protocol.kind == "lfw" and cfg.dataset.kind != "lfw":
        raise ConfigError("protocol=lfw_* needs dataset=lfw; use protocol=generated for other datasets")
    if cfg.backend.workers < 1:
        raise ConfigError("backend.workers must be >= 1")
    if not 0 < cfg.confidence < 1:
        raise ConfigError("confidence must be in (0, 1)")
