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
    cs.store(group="threshold", name="base_threshold", node=ThresholdConfig)


def backend_options(backend_cfg: Any, dataset_cfg: Any = None) -> dict:
    """The keyword arguments for the backend class: its config minus evalkit's runtime keys.

    ``multiple_faces`` left unset (null) takes the dataset's declared face rule
    (``dataset.multiple_faces``, e.g. LFW's ``central``) when there is one, else it is not passed
    and the backend uses its own default: backends never learn about datasets."""
    d = OmegaConf.to_container(backend_cfg, resolve=True) if not isinstance(backend_cfg, dict) else dict(backend_cfg)
    out = {k: v for k, v in d.items() if k not in BACKEND_RUNTIME_KEYS}
    if "multiple_faces" in out and out["multiple_faces"] is None:
        rule = None if dataset_cfg is None else dataset_cfg.get("multiple_faces")
        if rule:
            out["multiple_faces"] = rule
        else:
            del out["multiple_faces"]
    return out


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
