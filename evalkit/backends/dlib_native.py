"""Dlib's native pipeline: the pipeline behind dlib's published 99.38% on LFW.

HOG frontal-face detector -> 5-point landmark predictor -> ``dlib.get_face_chip`` (150x150,
padding 0.25, aligned on the landmarks) -> ResNet-29 descriptor (``dlib_face_recognition_resnet_model_v1``),
compared by Euclidean distance. Weights come from the PyPI package face-recognition-models.
Reference: dlib's dnn_face_recognition_ex.cpp and face_recognition.py examples (D. King).
"""

from __future__ import annotations

import numpy as np

from .base import check_choice, NO_FACE, Backend, EnrolmentFailure, read_image_bgr
from .detectors import MULTI_FACE_POLICIES, NO_FACE_POLICIES, center_box_pixels, choose_index
from .weights import cached_sha256, face_recognition_models_file

DETECTORS = ("hog", "cnn", "skip")

# The face box of a centred face crop such as LFW's: the median HOG detection on 300 random
# deep-funneled LFW images (seed 0) is 108 px wide, centred at (121, 133.5) in 250 x 250.
CENTER_BOX = {"cx": 0.484, "cy": 0.534, "side": 0.432}


class DlibBackend(Backend):
    """Args:
        detector: "hog" (dlib's frontal HOG detector), "cnn" (dlib's MMOD CNN detector) or "skip"
            (the whole image is the face box, for pre-cropped data; landmarks still align it).
        upsample: times the detector upsamples the image (finds smaller faces, slower).
        multiple_faces: which detection to keep when several are found: "largest", "central"
            (closest to the image centre) or "fail" (a recorded ``multiple_faces`` failure).
        no_face: "fail" records a ``no_face`` failure. "center_box" puts a box in the middle of
            the image when the detector finds none: the procedure behind dlib's LFW figure
            (D. King, dlib issue #444: "Use the HOG detector's box, but if it doesn't find one, put
            a box in the middle of the image"; LFW images are centred face detections).
            "whole_image" uses the whole image as the box (tight pre-cropped faces). Both
            fallbacks are explicit, fingerprinted choices and are counted in the record.
        chip_size, chip_padding: ``dlib.get_face_chip`` parameters (dlib's defaults 150, 0.25).
        num_jitters: descriptor jitters (dlib's default 0 = no jitter).
    """

    name = "dlib"
    distance = "euclidean"

    @classmethod
    def default_threshold(cls, options: dict, distance: str):
        """DeepFace's threshold for its Dlib model: the same ResNet as this backend (for euclidean
        it is also face_recognition's default tolerance, 0.6)."""
        from .deepface_backend import deepface_default_threshold

        return deepface_default_threshold("Dlib", distance)

    def __init__(self, detector: str = "hog", upsample: int = 1, multiple_faces: str = "largest",
                 no_face: str = "fail", chip_size: int = 150, chip_padding: float = 0.25,
                 num_jitters: int = 0, distance: str = "euclidean", **unused):
        if unused:
            raise TypeError(f"dlib backend: unknown options {sorted(unused)}")
        check_choice("dlib", "detector", detector, DETECTORS)
        check_choice("dlib", "multiple_faces", multiple_faces, MULTI_FACE_POLICIES)
        check_choice("dlib", "no_face", no_face, NO_FACE_POLICIES)
        self.detector = detector
        self.upsample = int(upsample)
        self.multiple_faces = multiple_faces
        self.no_face = no_face
        self.chip_size = int(chip_size)
        self.chip_padding = float(chip_padding)
        self.num_jitters = int(num_jitters)
        self.distance = distance
        self._models = None

    # -- weights -----------------------------------------------------------------------------
    @staticmethod
    def _files_for(detector: str) -> dict:
        files = {
            "recognizer": face_recognition_models_file("dlib_face_recognition_resnet_model_v1.dat"),
            "predictor": face_recognition_models_file("shape_predictor_5_face_landmarks.dat"),
        }
        if detector == "cnn":
            files["detector"] = face_recognition_models_file("mmod_human_face_detector.dat")
        return files

    def _files(self):
        return self._files_for(self.detector)

    @classmethod
    def required_files(cls, options: dict) -> list:
        return list(cls._files_for(options.get("detector", "hog")).values())

    @classmethod
    def weights_listing(cls):
        """(label, files) rows for ``evalkit weights``."""
        return [("default (detector=hog)", cls.required_files({})),
                ("detector=cnn", [cls._files_for("cnn")["detector"]])]

    def check_ready(self) -> None:
        try:
            import dlib  # noqa: F401
        except ImportError as exc:
            raise ImportError("the dlib backend needs dlib: pip install dlib-bin") from exc
        for f in self._files().values():
            f.require()

    def fingerprint(self) -> dict:
        import dlib

        self.check_ready()
        return {
            "backend": "dlib",
            "model": "dlib_face_recognition_resnet_model_v1",
            "weights_sha256": {k: cached_sha256(f.path) for k, f in sorted(self._files().items())},
            "detector": self.detector,
            "upsample": self.upsample,
            "alignment": "dlib.get_face_chip on 5-point landmarks",
            "chip_size": self.chip_size,
            "chip_padding": self.chip_padding,
            "num_jitters": self.num_jitters,
            "multiple_faces": self.multiple_faces,
            "no_face": self.no_face,
            "center_box": CENTER_BOX if self.no_face == "center_box" else None,
            "dlib_version": dlib.__version__,
        }

    # -- embedding ---------------------------------------------------------------------------
    def _load(self):
        if self._models is None:
            import dlib

            files = self._files()
            if self.detector == "hog":
                det = dlib.get_frontal_face_detector()
            elif self.detector == "cnn":
                det = dlib.cnn_face_detection_model_v1(str(files["detector"].require()))
            else:
                det = None
            self._models = (
                det,
                dlib.shape_predictor(str(files["predictor"].require())),
                dlib.face_recognition_model_v1(str(files["recognizer"].require())),
            )
        return self._models

    def _choose(self, rects, shape):
        centres = [(r.center().x, r.center().y) for r in rects]
        return rects[choose_index([r.width() * r.height() for r in rects], centres, shape, self.multiple_faces)]

    def embed_one(self, path: str) -> np.ndarray:
        import dlib

        det, predictor, recognizer = self._load()
        rgb = np.ascontiguousarray(read_image_bgr(path)[:, :, ::-1])
        whole = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        note = ""
        if det is None:
            rect = whole
        else:
            found = det(rgb, self.upsample)
            rects = [d.rect for d in found] if self.detector == "cnn" else list(found)
            if rects:
                rect = self._choose(rects, rgb.shape)
            elif self.no_face == "whole_image":
                rect, note = whole, "whole_image: no face detected"
            elif self.no_face == "center_box":
                cx, cy, bw, bh = center_box_pixels(rgb.shape, CENTER_BOX)
                rect = dlib.rectangle(int(round(cx - bw / 2)), int(round(cy - bh / 2)),
                                      int(round(cx + bw / 2)), int(round(cy + bh / 2)))
                note = "center_box: no face detected"
            else:
                raise EnrolmentFailure(NO_FACE, f"{self.detector} detector found no face")
        shape = predictor(rgb, rect)
        chip = dlib.get_face_chip(rgb, shape, size=self.chip_size, padding=self.chip_padding)
        desc = np.asarray(recognizer.compute_face_descriptor(chip, self.num_jitters), dtype=np.float32)
        return (desc, note) if note else desc
