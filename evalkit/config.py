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


def default_figure_cache() -> str:
    from .paths import evalkit_home

    return str(evalkit_home() / "figures")


# -- datasets ---------------------------------------------------------------------------------
@dataclass
class DatasetConfig:
    """Every dataset config: ``kind`` names the adapter in evalkit.registry.DATASETS (``target``,
    a ``package.module:Class``, names one directly)."""
    name: str = MISSING
    kind: str = MISSING                      # adapter: "lfw" | "csv" | a registered or entry-point name
    attributes: list[str] = field(default_factory=list)   # attributes to group by (empty: all)
    target: Optional[str] = None             # package.module:Class of a third-party adapter
    # The dataset's own rule for which detected face is its subject (LFW: the centred one). Passed to
    # the backend as its multiple_faces option when backend.multiple_faces is not set (null).
    multiple_faces: Optional[str] = None
    # attribute -> how the labels were obtained (self-reported; annotated by whom, how; inferred from
    # what); recorded in metrics.json dataset.label_provenance and shown beside the counts
    label_provenance: dict[str, str] = field(default_factory=dict)


@dataclass
class LFWDatasetConfig(DatasetConfig):
    name: str = "lfw"
    kind: str = "lfw"
    root: str = "${data_dir}/lfw"
    images_dir: Optional[str] = None         # lfw-deepfunneled | lfw | lfw_funneled (first found)
    attributes: list[str] = field(default_factory=lambda: ["sex", "race"])
    multiple_faces: Optional[str] = "central"   # LFW's subject is the face in the centre of the 250 x 250 image
    label_provenance: dict[str, str] = field(default_factory=lambda: {
        "sex": ("assigned by third parties, not self-reported: the per-image male/female lists of Afifi & "
                "Abdelhamed (AFIF4, 2019) judged from the photographs and names; evalkit takes each "
                "subject's majority"),
        "race": ("assigned by third parties, not self-reported: USC SAIL's per-identity list "
                 "(mica-race-from-face); the file does not document how each label was decided"),
    })


@dataclass
class CSVDatasetConfig(DatasetConfig):
    kind: str = "csv"
    path: str = MISSING                      # CSV with columns path, subject, <attributes...>
    numeric_bands: dict[str, list[float]] = field(default_factory=dict)   # e.g. {age: [18, 30, 45, 60]}
    encoding: str = "utf-8"                  # the CSV's text encoding (latin-1, cp1252, utf-16, ...)
    allow_outside_root: Optional[str] = None   # a reason to allow image paths outside the CSV's folder
    per_subject: list[str] = field(default_factory=list)   # columns labelling the subject (sex, race), not the image


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
    # caps on one image: a bigger file or picture is a recorded too_large failure (null: no cap)
    max_image_bytes: Optional[int] = 52428800     # 50 MiB on disk
    max_image_pixels: Optional[int] = 25000000    # 25 megapixels decoded (5,000 x 5,000), read from the header
    target: Optional[str] = None             # package.module:Class of a third-party backend


@dataclass
class DlibBackendConfig(BackendConfig):
    name: str = "dlib"
    family: str = "dlib"
    detector: str = "hog"                    # hog | cnn | skip
    upsample: int = 1
    multiple_faces: Optional[str] = None     # largest | central | fail; null: the dataset's rule, else largest
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
    multiple_faces: Optional[str] = None     # null: the dataset's rule, else the backend's default (largest)
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
    multiple_faces: Optional[str] = None     # largest | central | fail; null: the dataset's rule, else largest
    no_face: str = "fail"                    # fail | center_box | whole_image
    l2_normalise: bool = True
    distance: str = "cosine"
    batch_size: int = 32                     # faces per onnxruntime session.run
    provider: str = "auto"                   # auto (CUDA if onnxruntime-gpu and a GPU, else CPU) | cuda | cpu


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
    multiple_faces: Optional[str] = None     # largest | central | fail; null: the dataset's rule, else largest
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
    multiple_faces: Optional[str] = None     # size_center (facenet's align rule) | largest | central | fail; null: the dataset's rule, else size_center
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
    run: Optional[str] = None                # from_run: the run folder whose threshold is applied unchanged


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


@dataclass
class ScoringConfig:
    """Pair scoring (evalkit.scoring.pair_distances): its temporaries stay within this many MiB,
    whatever the embedding width (a 16,384-d LBPH histogram is 128 times a 128-d vector)."""
    memory_budget_mb: float = 256.0


@dataclass
class ReportConfig:
    """Figures: SVG is always written (the HTML report inlines it); ``formats`` adds png and/or
    pdf (each costs one more render of every figure: a warm LFW View 2 rerun spent most of its
    time drawing PNG, SVG and PDF of each)."""
    formats: list[str] = field(default_factory=list)   # e.g. [png, pdf]
    workers: int = 2                  # processes drawing figures in parallel (1: in the run's own)
    # figures reused when nothing they draw changed (evalkit/report/figures.py); null: always draw
    figure_cache: Optional[str] = "${evalkit_figure_cache:}"


# -- the whole run ----------------------------------------------------------------------------
@dataclass
class ShardConfig:
    """Which piece of a run this job is (README "Running on a cluster"; evalkit/shard.py)."""
    index: int = 0                           # this job's shard, 0..count-1
    count: int = 1                           # how many shards the work is split into
    dir: Optional[str] = None                # manifests and partial files (None: <cache_dir>/shards)


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
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    # attributes to cross; null (default): every pair of the dataset's categorical attributes
    # (LFW: sex x race; a CSV with sex and ethnicity: sex x ethnicity), see evalkit.preflight
    intersections: Optional[list[list[str]]] = None
    reference: dict[str, str] = field(default_factory=dict)   # attribute -> reference group for ratios
    stage: str = "run"                       # run | embed | score | merge (evalkit/shard.py)
    shard: ShardConfig = field(default_factory=ShardConfig)
    embed_missing: Optional[bool] = None     # embed images missing from the cache (None: unless a sharded embed ran)


def register() -> None:
    """Register resolvers and schemas (idempotent): the run schema, and the config schema of
    every registered dataset, protocol and backend (built-in, entry point) as
    ``<group>/base_<name>``."""
    if not OmegaConf.has_resolver("evalkit_data_dir"):
        OmegaConf.register_new_resolver("evalkit_data_dir", default_data_dir)
    if not OmegaConf.has_resolver("evalkit_cache_dir"):
        OmegaConf.register_new_resolver("evalkit_cache_dir", default_cache_dir)
    if not OmegaConf.has_resolver("evalkit_figure_cache"):
        OmegaConf.register_new_resolver("evalkit_figure_cache", default_figure_cache)
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


def backend_options(backend_cfg: Any, dataset_cfg: Any = None, accepted=None) -> dict:
    """The keyword arguments for the backend class: its config minus evalkit's runtime keys.

    ``multiple_faces`` left unset (null) takes the dataset's declared face rule
    (``dataset.multiple_faces``, e.g. LFW's ``central``) when there is one, else it is not passed
    and the backend uses its own default: backends never learn about datasets. ``accepted``: the
    rules the backend implements (``Backend.multiple_faces_choices``); a declared rule outside them
    is not passed (the backend's default applies)."""
    d = OmegaConf.to_container(backend_cfg, resolve=True) if not isinstance(backend_cfg, dict) else dict(backend_cfg)
    out = {k: v for k, v in d.items() if k not in BACKEND_RUNTIME_KEYS}
    if "multiple_faces" in out and out["multiple_faces"] is None:
        rule = None if dataset_cfg is None else dataset_cfg.get("multiple_faces")
        if rule and (accepted is None or rule in accepted):
            out["multiple_faces"] = rule
        else:
            del out["multiple_faces"]
    return out


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
    one_of(cfg.threshold.policy, ("global_fmr", "fixed", "per_group_fmr", "calibrated", "global_fpir", "from_run"),
           "threshold.policy")
    if cfg.protocol.get("device") is not None:   # GPU block products (evalkit.accel)
        one_of(cfg.protocol.device, ("cpu", "cuda"), "protocol.device")
        if cfg.protocol.device == "cuda":
            from .accel import gpu_unavailable_reason

            why = gpu_unavailable_reason()
            if why:
                raise ConfigError(f"protocol.device=cuda: {why}; use protocol.device=cpu")
    if "stage" in cfg:   # sharded runs (evalkit/shard.py)
        one_of(cfg.stage, ("run", "embed", "score", "merge"), "stage")
        if int(cfg.shard.count) < 1 or not 0 <= int(cfg.shard.index) < int(cfg.shard.count):
            raise ConfigError(f"shard.index must be in 0..shard.count-1 and shard.count >= 1, got "
                              f"shard.index={cfg.shard.index} shard.count={cfg.shard.count}")
    if cfg.threshold.policy == "from_run":   # the source run must exist and hold one threshold (checked again on use)
        from .metrics.carried import CarriedThresholdError, read_source

        if not cfg.threshold.run:
            raise ConfigError("threshold=from_run needs threshold.run=RUN_DIR (a run folder holding metrics.json)")
        try:
            read_source(cfg.threshold.run)
        except CarriedThresholdError as exc:
            raise ConfigError(str(exc)) from None
        if cfg.protocol.kind in ("search", "exhaustive"):
            raise ConfigError(f"threshold=from_run is not available with protocol={cfg.protocol.kind}")
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
    from .data.adapters import validate_dataset_protocol   # data without identities: protocol=enrolment only

    validate_dataset_protocol(cfg)
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
