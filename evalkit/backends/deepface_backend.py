"""DeepFace's own pipeline, as DeepFace users run it: ``DeepFace.represent`` with its detector,
crop, eye alignment, resize and normalisation. Every DeepFace recogniser (VGG-Face, Facenet,
Facenet512, OpenFace, DeepFace, DeepID, ArcFace, Dlib, SFace, GhostFaceNet, Buffalo_L) and every
DeepFace detector (opencv, ssd, dlib, mtcnn, retinaface, mediapipe, yolov8*/yolov11*/yolov12*, yunet,
fastmtcnn, centerface, skip) can be chosen by config: ``backend=deepface-<model>`` or
``backend.model_name=... backend.detector_backend=...``.

evalkit manages DeepFace's weights folder: it sets ``DEEPFACE_HOME`` to its own folder (see
``weights.deepface_home``), places weights that ship in PyPI packages there (Dlib's ResNet and
5-point landmark model from face-recognition-models) and local detector files the user points it
at (``backend.detector_weights``, or ``$EVALKIT_YUNET_ONNX`` for YuNet), and refuses to start when a
needed file or Python package is absent, so DeepFace never downloads anything silently.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from .base import (MULTIPLE_FACES, NO_FACE, Backend, DefaultThreshold, EmbeddingResult, EnrolmentFailure, WeightsMissing,
                   check_choice, read_image_bgr)
from .weights import (
    ANY_ENGINE,
    DEEPFACE_DETECTOR_FILES,
    DEEPFACE_DETECTORS,
    DEEPFACE_ENGINES,
    DEEPFACE_MODEL_FILES,
    DEEPFACE_MODELS,
    DEEPFACE_NORMALIZATIONS,
    WeightFile,
    _check_name,
    cached_sha256,
    deepface_engine,
    deepface_home,
    deepface_missing_packages,
    deepface_required_files,
    deepface_weights_dir,
    missing_weights_message,
    place_detector_weights,
    place_packaged_weights,
)

DISTANCES = ("cosine", "euclidean", "euclidean_l2")   # evalkit's; DeepFace also has "angular"


class DependencyMissing(RuntimeError):
    """A Python package the chosen model, detector or engine needs is not installed; raised before
    any image is processed, naming the package and the pip command."""


def deepface_threshold(model_name: str, distance: str = "cosine") -> float:
    """DeepFace's own pre-tuned decision threshold for a recogniser and distance (a distance:
    ``distance <= threshold`` is a match), read from the installed DeepFace
    (``deepface/config/threshold.py``, used by ``deepface.modules.verification.find_threshold``).

    These are DeepFace's values, tuned by its author on his own data with DeepFace's default
    pipeline; evalkit offers them as a fixed-threshold policy (``threshold=fixed``), never as a
    measurement.
    """
    from deepface.config.threshold import thresholds

    _check_name(model_name, tuple(thresholds), "model_name (with a pre-tuned threshold)")
    per = thresholds[model_name]
    if distance not in per:
        raise ValueError(f"DeepFace has no threshold for {model_name} with distance {distance!r}; "
                         f"it has {sorted(per)}")
    return float(per[distance])


def deepface_default_threshold(model_name: str, distance: str) -> DefaultThreshold:
    """DeepFace's own threshold for ``model_name`` and ``distance`` with its source text (see
    :func:`deepface_threshold`); raises ValueError when DeepFace has none for them."""
    src = f"DeepFace's default threshold for {model_name} ({distance})"
    if model_name == "Dlib" and distance == "euclidean":
        src += "; also the default tolerance of face_recognition's compare_faces (0.6)"
    return DefaultThreshold(deepface_threshold(model_name, distance), src)


def _use_evalkit_deepface_home(engine: Optional[str]) -> None:
    # Must happen before deepface is imported: it creates its folders and picks its engine then.
    os.environ["DEEPFACE_HOME"] = str(deepface_home())
    if engine:
        os.environ["DEEPFACE_BACKEND_ENGINE"] = engine


def _guard_downloads(modules) -> None:
    """Replace DeepFace's (and retina-face's) downloader by a check that raises WeightsMissing: a file
    the tables in weights.py do not list must never be fetched silently at run time."""
    def no_download(file_name, source_url=None, compress_type=None, source_urls=None, **_):
        target = deepface_weights_dir() / file_name
        if target.is_file():
            return str(target)
        urls = source_url or source_urls
        raise WeightsMissing(missing_weights_message(
            [WeightFile(file_name, target, str(urls))],
            "DeepFace asked for a file evalkit does not list"))

    for mod in modules:
        mod.download_weights_if_necessary = no_download


def _package_versions(modules: Sequence[str]) -> dict:
    import importlib.metadata as md

    dists = md.packages_distributions()
    aliases = {"dlib": ["dlib", "dlib-bin"]}   # dlib-bin's RECORD does not map the dlib package folder
    out = {}
    for m in sorted(set(modules)):
        for dist in dists.get(m) or aliases.get(m, []):
            try:
                out[dist] = md.version(dist)
            except md.PackageNotFoundError:
                pass
    return out


class DeepFaceBackend(Backend):
    """Args:
        model_name: a DeepFace recogniser (``weights.DEEPFACE_MODELS``), e.g. "Dlib", "ArcFace".
        detector_backend: a DeepFace detector (``weights.DEEPFACE_DETECTORS``); "opencv" is
            DeepFace's default, "skip" is for pre-cropped data.
        align: DeepFace's eye alignment (default True, as in DeepFace).
        expand_percentage: DeepFace's crop expansion (default 0).
        normalization: DeepFace's input normalisation (default "base", DeepFace's default for every
            model; its pre-tuned thresholds were set with it).
        distance: "cosine" (DeepFace.verify's default), "euclidean" or "euclidean_l2".
        multiple_faces: "largest" (DeepFace returns every face; the largest is the subject) or "fail".
        engine: "tensorflow", "pytorch" or "onnx"; None: DeepFace's own choice (the first installed,
            in that order). Recognisers other than Dlib, SFace and Buffalo_L load a different
            weights file per engine.
        detector_weights: a local file to use as the detector's weights (single-file detectors,
            e.g. a YuNet .onnx); copied into DeepFace's folder under the name DeepFace expects.
            For yunet, $EVALKIT_YUNET_ONNX does the same.
    """

    name = "deepface"

    def __init__(self, model_name: str = "Dlib", detector_backend: str = "opencv", align: bool = True,
                 expand_percentage: int = 0, normalization: str = "base", distance: str = "cosine",
                 multiple_faces: str = "largest", engine: Optional[str] = None,
                 detector_weights: Optional[str] = None, **unused):
        if unused:
            raise TypeError(f"deepface backend: unknown options {sorted(unused)}")
        _check_name(model_name, DEEPFACE_MODELS, "model_name")
        _check_name(detector_backend, DEEPFACE_DETECTORS, "detector_backend")
        _check_name(normalization, DEEPFACE_NORMALIZATIONS, "normalization")
        _check_name(distance, DISTANCES, "distance")
        if engine is not None:
            _check_name(engine, DEEPFACE_ENGINES, "engine")
        check_choice("deepface", "multiple_faces", multiple_faces, ("largest", "fail"))
        if int(expand_percentage) < 0:
            raise ValueError("deepface backend: expand_percentage must be >= 0")
        self.model_name = model_name
        self.detector_backend = detector_backend
        self.align = bool(align)
        self.expand_percentage = int(expand_percentage)
        self.normalization = normalization
        self.distance = distance
        self.multiple_faces = multiple_faces
        self.engine = engine
        self.detector_weights = detector_weights
        self._deepface = None

    @classmethod
    def validate_config(cls, backend_cfg) -> None:
        """Config checks with ``key=value`` messages (evalkit.config.validate calls this before
        any work): known model, detector, normalisation, engine, distance; the detector weights
        file exists; ``backend.name`` names the model, so a run is never mislabelled."""
        from pathlib import Path

        from ..config import ConfigError, one_of
        from . import weights as _w

        b = backend_cfg
        one_of(b.model_name, _w.DEEPFACE_MODELS, "backend.model_name")
        one_of(b.detector_backend, _w.DEEPFACE_DETECTORS, "backend.detector_backend")
        one_of(b.normalization, _w.DEEPFACE_NORMALIZATIONS, "backend.normalization")
        one_of(b.engine, (None, *_w.DEEPFACE_ENGINES), "backend.engine")
        one_of(b.distance, ("euclidean", "euclidean_l2", "cosine"), "backend.distance")
        if b.detector_weights and not Path(b.detector_weights).expanduser().is_file():
            raise ConfigError(f"backend.detector_weights={b.detector_weights!r}: no such file")
        simple = lambda x: "".join(ch for ch in str(x).lower() if ch.isalnum())  # noqa: E731
        if simple(b.model_name) not in simple(b.name):
            raise ConfigError(
                f"backend.name={b.name!r} does not name backend.model_name={b.model_name!r}, so "
                f"the run would be mislabelled: use backend=deepface-{simple(b.model_name)} (if that file "
                f"exists) or also set backend.name=deepface-{simple(b.model_name)}")

    @classmethod
    def default_threshold(cls, options: dict, distance: str) -> DefaultThreshold:
        """DeepFace's pre-tuned threshold for the model in ``options`` and ``distance``."""
        return deepface_default_threshold(options.get("model_name", "Dlib"), distance)

    # -- weights -----------------------------------------------------------------------------
    @classmethod
    def required_files(cls, options: dict) -> list:
        """Every file DeepFace needs for ``options`` (recogniser on the engine in use, and detector)."""
        return deepface_required_files(options.get("model_name", "Dlib"), options.get("detector_backend", "opencv"),
                                       options.get("engine"))

    @classmethod
    def weights_listing(cls, engine: Optional[str] = None) -> list:
        """For ``evalkit weights``: (label, files, missing pip requirements) for every recogniser
        (on the engine in use) and every detector."""
        eng = deepface_engine(engine)
        rows = []
        for m in DEEPFACE_MODELS:
            files = deepface_required_files(m, "skip", eng)
            rows.append((f"model={m}", files, deepface_missing_packages(m, "skip", eng)))
        model_only = deepface_missing_packages("Dlib", "skip", eng)
        for d in DEEPFACE_DETECTORS:
            names = {x.name for x in DEEPFACE_DETECTOR_FILES[d]}
            files = [f for f in deepface_required_files("Dlib", d, eng) if f.name in names]
            missing = [p for p in deepface_missing_packages("Dlib", d, eng) if p not in model_only]
            rows.append((f"detector={d}", files, missing))
        return rows

    def _engine(self) -> str:
        return deepface_engine(self.engine)

    def _what(self) -> str:
        return (f"deepface backend (model_name={self.model_name}, detector_backend={self.detector_backend}, "
                f"engine={self._engine()})")

    def check_ready(self) -> None:
        """Before any work: the packages the model, detector and engine need are installed, and every
        weights file is in place (after placing packaged and user-given local files). Raises
        WeightsMissing naming each missing file, its expected path and upstream, or
        DependencyMissing naming each missing package and its pip command."""
        _use_evalkit_deepface_home(self.engine)
        place_packaged_weights()
        place_detector_weights(self.detector_backend, self.detector_weights)
        packages = deepface_missing_packages(self.model_name, self.detector_backend, self.engine)
        missing = [f for f in self.required_files(self._options()) if not f.present]
        if missing:
            msg = missing_weights_message(missing, self._what())
            if packages:
                msg += "\nIt also needs these Python packages, not installed: " + "; ".join(packages)
            raise WeightsMissing(msg)
        if packages:
            raise DependencyMissing(f"{self._what()} needs these Python packages, not installed: "
                                    + "; ".join(packages))

    def _options(self) -> dict:
        return {"model_name": self.model_name, "detector_backend": self.detector_backend, "engine": self.engine}

    def fingerprint(self) -> dict:
        import importlib.metadata as md

        import cv2

        self.check_ready()
        files = self.required_files(self._options())
        engine_neutral = ANY_ENGINE in DEEPFACE_MODEL_FILES[self.model_name]
        modules = [] if engine_neutral else {"tensorflow": ["tensorflow"], "pytorch": ["torch"],
                                              "onnx": ["onnxruntime"]}[self._engine()]
        modules += {"Dlib": ["dlib"], "Buffalo_L": ["insightface", "onnxruntime"], "SFace": ["onnxruntime"]}.get(
            self.model_name, [])
        modules += {"dlib": ["dlib"], "mtcnn": ["mtcnn"], "retinaface": ["retinaface", "tensorflow"],
                    "mediapipe": ["mediapipe"], "fastmtcnn": ["facenet_pytorch", "torch"]}.get(self.detector_backend, [])
        if self.detector_backend.startswith("yolo"):
            modules.append("ultralytics")
        return {
            "backend": "deepface",
            "model": self.model_name,
            "engine": self._engine() if not engine_neutral else ANY_ENGINE,
            "weights_sha256": {f.name: cached_sha256(f.path) for f in files},
            "detector": self.detector_backend,
            "align": self.align,
            "expand_percentage": self.expand_percentage,
            "normalization": self.normalization,
            "multiple_faces": self.multiple_faces,
            "deepface_version": md.version("deepface"),
            "opencv_version": cv2.__version__,
            "packages": _package_versions(modules) if modules else {},
        }

    # -- embedding ---------------------------------------------------------------------------
    def _load(self):
        if self._deepface is None:
            self.check_ready()
            from deepface import DeepFace
            from deepface.commons import backend_utils, weight_utils

            engine = backend_utils.get_backend_engine()
            if engine != self._engine():
                raise RuntimeError(f"DeepFace already runs on the {engine} engine in this process; "
                                   f"{self._what()} needs {self._engine()}")
            guarded = [weight_utils]
            if self.detector_backend == "retinaface":
                from retinaface.commons import weight_utils as rf_weight_utils

                guarded.append(rf_weight_utils)
            _guard_downloads(guarded)
            # build both models now: a load problem stops the run, instead of failing every image
            DeepFace.build_model(self.model_name, task="facial_recognition")
            if self.detector_backend != "skip":
                DeepFace.build_model(self.detector_backend, task="face_detector")
            self._deepface = DeepFace
        return self._deepface

    def embed(self, paths: Sequence[str]) -> EmbeddingResult:
        self._load()   # outside the per-image guard: a model that cannot load is not an image failure
        return super().embed(paths)

    def embed_one(self, path: str) -> np.ndarray:
        DeepFace = self._load()
        img = read_image_bgr(path)
        try:
            faces = DeepFace.represent(
                img, model_name=self.model_name, enforce_detection=True,
                detector_backend=self.detector_backend, align=self.align,
                expand_percentage=self.expand_percentage, normalization=self.normalization,
            )
        except ValueError as exc:
            if "Face could not be detected" in str(exc) or type(exc).__name__ == "FaceNotDetected":
                raise EnrolmentFailure(NO_FACE, f"{self.detector_backend} detector found no face") from exc
            raise   # any other error: Backend.embed records it as ERROR with its type and message
        if len(faces) > 1 and self.multiple_faces == "fail":
            raise EnrolmentFailure(MULTIPLE_FACES, f"{len(faces)} faces")
        best = max(faces, key=lambda f: f["facial_area"]["w"] * f["facial_area"]["h"])
        return np.asarray(best["embedding"], dtype=np.float32)
