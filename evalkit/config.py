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
    kind: str = MISSING                      # "lfw" | "generated" | "exhaustive" | "search"


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


@dataclass
class ExhaustiveProtocolConfig(ProtocolConfig):
    """Every image against every other, counted in chunks (evalkit.metrics.exhaustive)."""
    name: str = "exhaustive"
    kind: str = "exhaustive"
    max_images_per_subject: Optional[int] = None   # seeded cap per subject (None: every image)
    memory_budget_mb: float = 1024.0         # bounds the score blocks and the kept impostor list
    topk: int = 1_000_000                    # smallest impostor scores kept exactly (thresholds down to FMR 1/n)
    seed: int = "${seed}"  # type: ignore[assignment]


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
    audit_deepface_default: bool = True      # also audit at DeepFace's default threshold for the model
    memory_budget_mb: float = 512.0          # bounds each probe-by-gallery score block
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


@dataclass
class RekognitionBackendConfig(BackendConfig):
    """Amazon Rekognition, a scoring backend (evalkit/backends/rekognition.py, conf/backend/rekognition.yaml).
    Credentials come from the standard AWS chain only: there is deliberately no key for them."""
    name: str = "rekognition"
    family: str = "rekognition"
    distance: str = "none"                   # scores are the service's similarities (0-100, higher = more alike)
    region: Optional[str] = None             # None: AWS_REGION / AWS_DEFAULT_REGION / ~/.aws/config
    endpoint_url: Optional[str] = None       # None: the AWS endpoint (tests: the local fake)
    quality_filter: str = "NONE"             # NONE | AUTO | LOW | MEDIUM | HIGH, sent on every call
    face_match_threshold: float = 0.0        # SearchFacesByImage: 0 returns the whole candidate list
    model_version: str = "7.0"               # the face model version expected (checked against the service's answers)
    multiple_faces: str = "best"             # best (the best-matching face in a CompareFaces target) | fail
    price_per_call: float = 0.001            # USD per billable image call (Group 1, first 1M a month, us-east-1)
    currency: str = "USD"
    max_calls: Optional[int] = 1000          # refuse a run needing more billable calls (after the cache)
    max_cost: Optional[float] = None         # ... or costing more than this
    allow_over_limit: bool = False           # accept a run above max_calls / max_cost
    collection_id: Optional[str] = None      # None: evalkit-<gallery digest>
    keep_collection: bool = False            # keep the 1:N collection after the run (billed per face and month)
    max_retries: int = 8                     # per call, on throttling and transient faults
    backoff_base: float = 0.5                # seconds; capped exponential backoff with full jitter
    backoff_max: float = 20.0
    concurrency: int = 4                     # calls in flight
    cache_dir: Optional[str] = None          # response cache; None: <evalkit home>/responses
    timeout_s: float = 60.0


@dataclass
class ScoreFileBackendConfig(BackendConfig):
    """A vendor's score file (evalkit/backends/score_file.py, conf/backend/scores.yaml)."""
    name: str = "scores"
    family: str = "scores"
    distance: str = "none"
    path: str = MISSING                      # CSV: sample_a,sample_b,score[,failure] or probe,rank,candidate,score[,failure]
    direction: str = MISSING                 # similarity (higher = more alike) | distance (lower = more alike)
    missing: str = "error"                   # error | failure: comparisons of the protocol absent from the file
    label: Optional[str] = None              # the system that produced the scores, for the report
    score_min: Optional[float] = None        # the documented score range, if any
    score_max: Optional[float] = None


SCORING_FAMILIES = ("rekognition", "scores")


def _is_scoring_family(family: str) -> bool:
    """A backend family that returns scores (evalkit.backends.scoring_base), by its registered class."""
    if family in SCORING_FAMILIES:
        return True
    from .backends import BACKENDS

    try:
        return getattr(BACKENDS.get(family), "kind", "embedding") == "scoring"
    except Exception:   # unknown or unimportable: the run reports it where the backend is built
        return False


BACKEND_RUNTIME_KEYS = ("name", "family", "workers", "chunk_size")


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
    min_count: MinCountConfig = field(default_factory=MinCountConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    intersections: list[list[str]] = field(default_factory=lambda: [["sex", "race"]])
    reference: dict[str, str] = field(default_factory=dict)   # attribute -> reference group for ratios


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
    cs.store(group="protocol", name="base_exhaustive", node=ExhaustiveProtocolConfig)
    cs.store(group="protocol", name="base_search", node=SearchProtocolConfig)
    cs.store(group="backend", name="base_dlib", node=DlibBackendConfig)
    cs.store(group="backend", name="base_deepface", node=DeepFaceBackendConfig)
    cs.store(group="backend", name="base_facenet", node=FaceNetBackendConfig)
    cs.store(group="backend", name="base_onnx", node=OnnxBackendConfig)
    cs.store(group="backend", name="base_lbph", node=LBPHBackendConfig)
    cs.store(group="backend", name="base_rekognition", node=RekognitionBackendConfig)
    cs.store(group="backend", name="base_scores", node=ScoreFileBackendConfig)
    cs.store(group="threshold", name="base_threshold", node=ThresholdConfig)


def backend_options(backend_cfg: Any) -> dict:
    """The keyword arguments for the backend class: its config minus evalkit's runtime keys."""
    d = OmegaConf.to_container(backend_cfg, resolve=True) if not isinstance(backend_cfg, dict) else dict(backend_cfg)
    return {k: v for k, v in d.items() if k not in BACKEND_RUNTIME_KEYS}


class ConfigError(ValueError):
    """A config value that the schema allows but evalkit cannot use; the message says which."""


def _validate_search(cfg: Any) -> None:
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


def _validate_scoring(cfg: Any) -> None:
    """A scoring backend (scores, not embeddings): what its runs cannot do, said before any work."""
    b = cfg.backend
    if b.family == "scores" and b.direction not in ("similarity", "distance"):
        raise ConfigError(f"backend.direction={b.direction!r}: say whether the file's scores are a similarity "
                          "(higher = more alike) or a distance (lower = more alike)")
    if b.family == "scores" and b.missing not in ("error", "failure"):
        raise ConfigError(f"backend.missing={b.missing!r}: choose error or failure")
    if b.family == "rekognition" and b.quality_filter not in ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH"):
        raise ConfigError(f"backend.quality_filter={b.quality_filter!r}: choose NONE, AUTO, LOW, MEDIUM or HIGH")
    if cfg.protocol.kind == "exhaustive":
        raise ConfigError(f"protocol=exhaustive needs embeddings (every image against every other); the {b.family} "
                          "backend returns scores: use a pairs protocol (lfw_view2, generated) or protocol=search")
    if cfg.threshold.policy == "calibrated" and cfg.threshold.calibration == "lfw_view1_train":
        raise ConfigError(f"threshold.calibration=lfw_view1_train would score a second pair list with the {b.family} "
                          "backend; use threshold.calibration=subject_split")
    if cfg.threshold.deepface_default:
        raise ConfigError(f"threshold.deepface_default: DeepFace has no threshold for the {b.family} backend; give "
                          "threshold.value in the backend's own units")
    if cfg.protocol.kind == "search" and [v for v in cfg.protocol.gallery_sizes if v is not None]:
        raise ConfigError(f"protocol.gallery_sizes={list(cfg.protocol.gallery_sizes)}: a {b.family} search returns "
                          "candidate lists of the full gallery only (a smaller gallery's list is not a prefix of it); "
                          "use protocol.gallery_sizes=[null]")


def validate(cfg: Any) -> None:
    """Checks the schema cannot express (allowed values), with clear messages."""
    def one_of(value, allowed, key):
        if value not in allowed:
            import difflib

            hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            extra = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}.{extra}")

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
    if _is_scoring_family(cfg.backend.family):
        _validate_scoring(cfg)
    else:
        one_of(cfg.backend.distance, ("euclidean", "euclidean_l2", "cosine", "chi2"), "backend.distance")
    one_of(cfg.dataset.kind, ("lfw", "csv"), "dataset.kind")
    one_of(cfg.protocol.kind, ("lfw", "generated", "exhaustive", "search"), "protocol.kind")
    if cfg.protocol.kind == "search":
        _validate_search(cfg)
    elif cfg.threshold.policy == "global_fpir":
        raise ConfigError("threshold.policy=global_fpir sets a 1:N threshold and needs protocol=search; "
                          "for 1:1 protocols use threshold=global_fmr")
    if cfg.protocol.kind == "exhaustive" and cfg.threshold.policy not in ("global_fmr", "fixed"):
        raise ConfigError(f"threshold.policy={cfg.threshold.policy} is not available with protocol=exhaustive "
                          "(it keeps counts, not a score table); use threshold=global_fmr or threshold=fixed")
    if cfg.backend.family == "deepface":
        from .backends import weights as _w

        one_of(cfg.backend.model_name, _w.DEEPFACE_MODELS, "backend.model_name")
        one_of(cfg.backend.detector_backend, _w.DEEPFACE_DETECTORS, "backend.detector_backend")
        one_of(cfg.backend.normalization, _w.DEEPFACE_NORMALIZATIONS, "backend.normalization")
        one_of(cfg.backend.engine, (None, *_w.DEEPFACE_ENGINES), "backend.engine")
        one_of(cfg.backend.distance, ("euclidean", "euclidean_l2", "cosine"), "backend.distance")
        if cfg.backend.detector_weights and not Path(cfg.backend.detector_weights).expanduser().is_file():
            raise ConfigError(f"backend.detector_weights={cfg.backend.detector_weights!r}: no such file")
        simple = lambda x: "".join(ch for ch in str(x).lower() if ch.isalnum())  # noqa: E731
        if simple(cfg.backend.model_name) not in simple(cfg.backend.name):
            raise ConfigError(
                f"backend.name={cfg.backend.name!r} does not name backend.model_name={cfg.backend.model_name!r}, so "
                f"the run would be mislabelled: use backend=deepface-{simple(cfg.backend.model_name)} (if that file "
                f"exists) or also set backend.name=deepface-{simple(cfg.backend.model_name)}")
    if cfg.protocol.kind == "lfw" and cfg.dataset.kind != "lfw":
        raise ConfigError("protocol=lfw_* needs dataset=lfw; use protocol=generated for other datasets")
    if cfg.backend.workers < 1:
        raise ConfigError("backend.workers must be >= 1")
    if not 0 < cfg.confidence < 1:
        raise ConfigError("confidence must be in (0, 1)")
