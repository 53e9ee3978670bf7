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
    from .paths import evalkit_home

    return str(evalkit_home() / "embeddings")


# -- datasets ---------------------------------------------------------------------------------
@dataclass
class DatasetConfig:
    """Every dataset config: ``kind`` names the adapter in evalkit.registry.DATASETS (``target``,
    a ``package.module:Class``, names one directly)."""
    name: str = MISSING
    kind: str = MISSING                      # adapter: "lfw" | "csv" | a registered or entry-point name
    attributes: list[str] = field(default_factory=list)   # attributes to group by (empty: all)
    target: Optional[str] = None             # package.module:Class of a third-party adapter


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
    """Every protocol config: ``kind`` names the protocol in evalkit.registry.PROTOCOLS (``target``,
    a ``package.module:Class``, names one directly). Each protocol's own schema lives in its file
    under evalkit/protocols/ (e.g. ``evalkit.protocols.search.SearchProtocolConfig``)."""
    name: str = MISSING
    kind: str = MISSING                      # "lfw" | "generated" | "exhaustive" | "search" | a plug-in's name
    target: Optional[str] = None             # package.module:Class of a third-party protocol


# -- backends ---------------------------------------------------------------------------------
@dataclass
class BackendConfig:
    name: str = MISSING                      # label in outputs, e.g. "dlib", "deepface-dlib"
    family: str = MISSING                    # registry key in evalkit.registry.BACKENDS
    workers: int = 2                         # worker processes for embedding
    chunk_size: int = 16                     # images per task sent to a worker
    distance: str = "euclidean"              # euclidean | euclidean_l2 | cosine
    target: Optional[str] = None             # package.module:Class of a third-party backend


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
    engine: Optional[str] = None             # tensorflow | pytorch | onnx; None: DeepFace's choice (first installed)
    detector_weights: Optional[str] = None   # local file for a one-file detector (e.g. YuNet .onnx); also $EVALKIT_YUNET_ONNX


@dataclass
class OnnxBackendConfig(BackendConfig):
    """Any ONNX face-embedding model (evalkit/backends/onnx_backend.py); see conf/backend/onnx.yaml."""
    name: str = "onnx"
    family: str = "onnx"
    model_path: str = MISSING                # the .onnx file
    input_size: list[int] = field(default_factory=lambda: [112, 112])   # [width, height]
    colour_order: str = "rgb"                # rgb | bgr
    layout: str = "nchw"                     # nchw | nhwc
    mean: list[float] = field(default_factory=lambda: [127.5])  # (x - mean) / std; 1 value or 3 (model's channel order)
    std: list[float] = field(default_factory=lambda: [127.5])
    input_name: Optional[str] = None         # None: the model's first input
    output_name: Optional[str] = None        # None: the model's first output
    detector: str = "haar"                   # haar | yunet | skip
    detector_model_path: Optional[str] = None  # YuNet .onnx (None: <evalkit home>/models/face_detection_yunet_2023mar.onnx)
    alignment: str = "box"                   # box | five_points (needs yunet)
    crop_margin: float = 0.0
    multiple_faces: str = "largest"          # largest | central | fail
    no_face: str = "fail"                    # fail | center_box | whole_image
    l2_normalise: bool = True
    distance: str = "cosine"


@dataclass
class LBPHBackendConfig(BackendConfig):
    """OpenCV LBPH histograms, chi-square distance (evalkit/backends/lbph.py)."""
    name: str = "lbph"
    family: str = "lbph"
    radius: int = 1
    neighbors: int = 8
    grid_x: int = 8
    grid_y: int = 8
    face_size: int = 100
    detector: str = "haar"                   # haar | yunet | skip
    detector_model_path: Optional[str] = None
    crop_margin: float = 0.0
    multiple_faces: str = "largest"          # largest | central | fail
    no_face: str = "fail"                    # fail | center_box | whole_image
    distance: str = "chi2"


@dataclass
class FaceNetBackendConfig(BackendConfig):
    """FaceNet 20180408-102900 (CASIA-WebFace) with MTCNN crops (evalkit/backends/facenet.py)."""
    name: str = "facenet"
    family: str = "facenet"
    detector: str = "mtcnn"                  # mtcnn | skip
    min_face_size: int = 20                  # MTCNN minimum face (facenet: 20 px)
    margin: int = 32                         # pixels around the MTCNN box, half each side (facenet's LFW set: 32)
    image_size: int = 160
    resize: str = "pil_bilinear"             # pil_bilinear (scipy.misc.imresize) | cv2_linear
    normalization: str = "fixed"             # fixed: (x - 127.5) / 128 (2018 releases) | prewhiten
    multiple_faces: str = "size_center"      # size_center (facenet's align rule) | largest | central | fail
    no_face: str = "fail"                    # fail | center_box | whole_image
    distance: str = "euclidean_l2"


BACKEND_RUNTIME_KEYS = ("name", "family", "workers", "chunk_size", "target")


# -- thresholds -------------------------------------------------------------------------------
@dataclass
class ThresholdConfig:
    policy: str = "global_fmr"               # global_fmr | fixed | per_group_fmr | calibrated | global_fpir (search)
    target_fmr: float = 1e-3
    target_fpir: float = 1e-2                # global_fpir (protocol=search): FPIR over all non-mated searches
    value: Optional[float] = None            # the fixed threshold (a distance) when policy=fixed
    attribute: Optional[str] = None          # per_group_fmr: whose groups get their own threshold (default: first attribute)
    calibration: str = "subject_split"       # calibrated: lfw_view1_train | subject_split
    calibration_fraction: float = 0.5        # subject_split: share of subjects used to calibrate
    deepface_default: bool = False           # fixed: take DeepFace's own per-model threshold as the value


@dataclass
class MinCountConfig:
    """Groups with fewer subjects, or fewer genuine or impostor comparisons, are reported,
    flagged ``small`` and left out of disparity summaries."""
    subjects: int = 10
    comparisons: int = 30


@dataclass
class BootstrapConfig:
    replicates: int = 1000                   # subject-clustered bootstrap replicates (0: none)
    seed: int = "${seed}"  # type: ignore[assignment]


# -- the whole run ----------------------------------------------------------------------------
@dataclass
class Config:
    # Typed by the group option's own schema (its yaml's ``base_<name>`` default); ``Any`` here so
    # that a third-party plug-in's yaml (``target: package.module:Class``, its own keys) composes
    # too: evalkit.config.validate then checks it against the class's ``config_schema``.
    dataset: Any = MISSING
    backend: Any = MISSING
    protocol: Any = MISSING
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
    min_count: MinCountConfig = field(default_factory=MinCountConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    intersections: list[list[str]] = field(default_factory=lambda: [["sex", "race"]])
    reference: dict[str, str] = field(default_factory=dict)   # attribute -> reference group for ratios


def register() -> None:
    """Register resolvers and schemas (idempotent): the run schema, and the config schema of
    every registered dataset, protocol and backend (built-in, entry point) as
    ``<group>/base_<name>``."""
    if not OmegaConf.has_resolver("evalkit_data_dir"):
        OmegaConf.register_new_resolver("evalkit_data_dir", default_data_dir)
    if not OmegaConf.has_resolver("evalkit_cache_dir"):
        OmegaConf.register_new_resolver("evalkit_cache_dir", default_cache_dir)
    from .registry import BACKENDS, DATASETS, PROTOCOLS, RegistryError

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for reg in (DATASETS, PROTOCOLS, BACKENDS):
        for name in reg.names():
            try:
                schema = reg.schema(name)
            except RegistryError as exc:   # a broken third-party plug-in must not stop every run
                import logging

                logging.getLogger("evalkit").warning("%s %r: no config schema registered: %s", reg.kind, name, exc)
                continue
            if schema is not None:
                cs.store(group=reg.config_group, name=f"base_{name}", node=schema)
    cs.store(group="threshold", name="base_threshold", node=ThresholdConfig)


def backend_options(backend_cfg: Any) -> dict:
    """The keyword arguments for the backend class: its config minus evalkit's runtime keys."""
    d = OmegaConf.to_container(backend_cfg, resolve=True) if not isinstance(backend_cfg, dict) else dict(backend_cfg)
    return {k: v for k, v in d.items() if k not in BACKEND_RUNTIME_KEYS}


class ConfigError(ValueError):
    """A config value that the schema allows but evalkit cannot use; the message says which."""


def one_of(value, allowed, key: str) -> None:
    """Raise ConfigError unless ``value`` is in ``allowed``, naming the key, the choices and the
    closest one ("Did you mean ...?")."""
    if value not in allowed:
        import difflib

        hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}.{extra}")


def _registered(registry, node: Any, key: str, what: str) -> None:
    """The node's ``target`` imports, or its ``key`` (kind / family) is a registered name."""
    from .registry import RegistryError, load_target

    target = node.get("target") if hasattr(node, "get") else None
    if target:
        try:
            load_target(target)
        except RegistryError as exc:
            raise ConfigError(f"{what}.target: {exc}") from None
        return
    if node.get(key) is None:
        raise ConfigError(f"{what}.{key} is missing: name a registered {registry.kind} "
                          f"({', '.join(registry.names())}) or give {what}.target=package.module:Class")
    one_of(node[key], registry.names(), f"{what}.{key}")


def complete_plugin_nodes(cfg: Any) -> None:
    """A dataset, protocol or backend node composed from a yaml without a ``base_<name>`` schema
    default (a third-party plug-in's yaml naming its class with ``target:``) is checked against,
    and completed with the defaults of, that class's ``config_schema``; a wrong key or type
    raises ConfigError naming it. Nodes already typed by their yaml's schema are left alone."""
    from omegaconf.errors import OmegaConfBaseException

    from .registry import BACKENDS, DATASETS, PROTOCOLS, RegistryError, load_target

    for group, registry, key in (("dataset", DATASETS, "kind"), ("protocol", PROTOCOLS, "kind"),
                                 ("backend", BACKENDS, "family")):
        node = cfg.get(group)
        if node is None or OmegaConf.get_type(node) is not dict:
            continue
        target = node.get("target")
        try:
            schema = (getattr(load_target(target), "config_schema", None) if target
                      else registry.schema(node.get(key)) if node.get(key) in registry else None)
        except RegistryError as exc:
            raise ConfigError(f"{group}.target: {exc}") from None
        if schema is None:
            continue
        try:
            cfg[group] = OmegaConf.merge(OmegaConf.structured(schema), node)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{group} does not match the schema {schema.__module__}.{schema.__qualname__} of "
                              f"{target or node.get(key)}: {exc}") from None


def validate(cfg: Any, backend_class: type | None = None) -> None:
    """Checks the schema cannot express (allowed values), with clear messages. Dataset, protocol
    and backend names are looked up in evalkit.registry (built-in and entry points); the
    protocol's and the backend's own checks are theirs (``Protocol.validate``,
    ``Backend.validate_config``). A plug-in node without a schema of its own is first completed
    from its class's ``config_schema`` (:func:`complete_plugin_nodes`, which changes ``cfg``).
    ``backend_class``: the run's backend class when it is not the registered ``backend.family``
    (a user's Backend instance, see evalkit.api)."""
    from .registry import BACKENDS, DATASETS, PROTOCOLS

    complete_plugin_nodes(cfg)
    one_of(cfg.threshold.policy, ("global_fmr", "fixed", "per_group_fmr", "calibrated", "global_fpir"),
           "threshold.policy")
    if cfg.threshold.policy == "fixed" and cfg.threshold.value is None and not cfg.threshold.deepface_default:
        raise ConfigError("threshold.policy=fixed needs threshold.value (a distance) or threshold.deepface_default=true")
    one_of(cfg.threshold.calibration, ("lfw_view1_train", "subject_split"), "threshold.calibration")
    if cfg.threshold.policy == "calibrated" and cfg.threshold.calibration == "lfw_view1_train" and cfg.dataset.kind != "lfw":
        raise ConfigError("threshold.calibration=lfw_view1_train needs dataset=lfw; use subject_split")
    attrs = list(cfg.dataset.attributes or [])
    if cfg.threshold.policy == "per_group_fmr" and cfg.threshold.attribute and attrs:
        one_of(cfg.threshold.attribute, attrs, "threshold.attribute")
    if attrs:   # no attribute list: every attribute of the dataset, known only once it is loaded
        for combo in (cfg.intersections or []):
            for name in combo:
                one_of(name, attrs, "intersections (an attribute)")
        for name in (cfg.reference or {}):
            one_of(name, attrs, "reference (an attribute)")
    if not 0 < cfg.threshold.calibration_fraction < 1:
        raise ConfigError("threshold.calibration_fraction must be in (0, 1)")
    if cfg.min_count.subjects < 0 or cfg.min_count.comparisons < 0:
        raise ConfigError("min_count values must be >= 0")
    if cfg.bootstrap.replicates < 0:
        raise ConfigError("bootstrap.replicates must be >= 0")
    if not 0 < cfg.threshold.target_fmr <= 1:
        raise ConfigError(f"threshold.target_fmr must be in (0, 1], got {cfg.threshold.target_fmr}")
    one_of(cfg.failure_policy, ("nonmatch", "exclude"), "failure_policy")
    _registered(DATASETS, cfg.dataset, "kind", "dataset")
    if backend_class is None:
        _registered(BACKENDS, cfg.backend, "family", "backend")
    _registered(PROTOCOLS, cfg.protocol, "kind", "protocol")
    from .protocols import build_protocol

    build_protocol(cfg.protocol).validate(cfg)
    if backend_class is None:
        from .backends import backend_class as _backend_class

        backend_class = _backend_class(cfg.backend)
    if getattr(backend_class, "kind", "embedding") == "scoring":   # scores, not embeddings (evalkit.black_box)
        from .black_box import validate_run

        validate_run(cfg)
    else:
        one_of(cfg.backend.distance, ("euclidean", "euclidean_l2", "cosine", "chi2"), "backend.distance")
    validate_backend = getattr(backend_class, "validate_config", None)
    if validate_backend is not None:
        validate_backend(cfg.backend)
    if cfg.backend.workers < 1:
        raise ConfigError("backend.workers must be >= 1")
    if not 0 < cfg.confidence < 1:
        raise ConfigError("confidence must be in (0, 1)")
