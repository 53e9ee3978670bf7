"""A classical baseline: Local Binary Pattern Histograms (LBPH), compared by chi-square distance.

Ahonen, Hadid and Pietikäinen, "Face Recognition with Local Binary Patterns" (ECCV 2004) /
"Face Description with Local Binary Patterns" (TPAMI 2006): each pixel is coded by comparing it
with ``neighbors`` points on a circle of ``radius`` around it; the face is split into a
``grid_x`` x ``grid_y`` grid and the codes of each cell are histogrammed; the feature is the
concatenation of the cell histograms, and two faces are compared by the chi-square distance.

The histogram is OpenCV's own (``cv2.face.LBPHFaceRecognizer``, opencv-contrib): circular
("extended") LBP with bilinear interpolation, all 2**neighbors codes (no uniform-pattern
reduction), each cell histogram normalised to sum 1. One image's feature is read by training a
recognizer on that image alone and calling ``getHistograms()``. With the defaults (radius 1,
8 neighbours, 8 x 8 grid, 100 x 100 face) it has 8 * 8 * 256 = 16,384 dimensions (64 KiB per image
in the cache). OpenCV's ``predict`` compares histograms with ``HISTCMP_CHISQR_ALT``; evalkit's
``chi2`` distance is computed in ``evalkit/scoring.py``.

Face crop: OpenCV's frontal Haar cascade on the grey image (see ``detectors.py``), the largest
face, a square box resized to ``face_size``. When the cascade finds nothing, ``no_face`` decides:
a recorded ``no_face`` failure (default), or a fixed centre box (``center_box``; LFW images are
centred face detections, and the box is the Haar cascade's median box on LFW), recorded as a note.

Cheap and real: no weights to download, about a millisecond per face. It is a weak baseline
(LBPH was designed for controlled images); use it as a reference point and in CI.
"""

from __future__ import annotations

import numpy as np

from .base import check_choice, Backend, read_image_bgr
from .detectors import (HAAR_CENTER_BOX, MULTI_FACE_POLICIES, NO_FACE_POLICIES, FaceDetector, crop_box,
                        detector_files, locate_face)


def lbph_histogram(grey: np.ndarray, radius: int = 1, neighbors: int = 8, grid_x: int = 8, grid_y: int = 8,
                   recognizer=None) -> np.ndarray:
    """OpenCV's LBPH feature of one grey uint8 image: float32 (grid_x * grid_y * 2**neighbors,)."""
    import cv2

    if recognizer is None:
        recognizer = cv2.face.LBPHFaceRecognizer_create(radius=radius, neighbors=neighbors,
                                                        grid_x=grid_x, grid_y=grid_y)
    recognizer.train([np.ascontiguousarray(grey)], np.array([0], dtype=np.int32))
    return np.asarray(recognizer.getHistograms()[0], dtype=np.float32).ravel()


class LBPHBackend(Backend):
    """Args:
        radius, neighbors, grid_x, grid_y: LBPH parameters (OpenCV's defaults 1, 8, 8, 8).
        face_size: side in pixels of the square grey face crop the histogram is computed on.
        detector: "haar" (default), "yunet" (needs ``detector_model_path``) or "skip" (whole image).
        detector_model_path: the YuNet ONNX file when detector="yunet".
        crop_margin: enlarge the detected box by this fraction of its side on each side.
        multiple_faces: "largest" | "central" | "fail".
        no_face: "fail" (a recorded failure) | "center_box" (fixed centre box, a note) | "whole_image".
        distance: "chi2" (default; the distance LBPH is defined with).
    """

    name = "lbph"
    distance = "chi2"

    def __init__(self, radius: int = 1, neighbors: int = 8, grid_x: int = 8, grid_y: int = 8,
                 face_size: int = 100, detector: str = "haar", detector_model_path: str | None = None,
                 crop_margin: float = 0.0, multiple_faces: str = "largest", no_face: str = "fail",
                 distance: str = "chi2", **unused):
        if unused:
            raise TypeError(f"lbph backend: unknown options {sorted(unused)}")
        check_choice("lbph", "multiple_faces", multiple_faces, MULTI_FACE_POLICIES)
        check_choice("lbph", "no_face", no_face, NO_FACE_POLICIES)
        if not (1 <= int(radius) and 1 <= int(neighbors) <= 16 and int(grid_x) >= 1 and int(grid_y) >= 1):
            raise ValueError("lbph backend: radius >= 1, 1 <= neighbors <= 16, grid_x, grid_y >= 1")
        if int(face_size) < 2 * int(radius) + max(int(grid_x), int(grid_y)):
            raise ValueError(f"lbph backend: face_size {face_size} is too small for radius {radius} and the grid")
        self.radius, self.neighbors = int(radius), int(neighbors)
        self.grid_x, self.grid_y = int(grid_x), int(grid_y)
        self.face_size = int(face_size)
        self.detector = FaceDetector(detector, detector_model_path)   # validates the detector name
        self.crop_margin = float(crop_margin)
        self.multiple_faces = multiple_faces
        self.no_face = no_face
        self.distance = distance
        self._recognizer = None

    @classmethod
    def required_files(cls, options: dict) -> list:
        return detector_files(options.get("detector", "haar"), options.get("detector_model_path"))

    def check_ready(self) -> None:
        import cv2

        if not hasattr(cv2, "face"):
            raise ImportError("the lbph backend needs cv2.face from opencv-contrib: "
                              "pip install 'opencv-contrib-python-headless<5'")
        self.detector.check_ready()

    def fingerprint(self) -> dict:
        import cv2

        self.check_ready()
        return {
            "backend": "lbph",
            "model": f"LBPH r{self.radius} n{self.neighbors} {self.grid_x}x{self.grid_y} (OpenCV)",
            "method": "cv2.face.LBPHFaceRecognizer histograms",
            "radius": self.radius, "neighbors": self.neighbors, "grid_x": self.grid_x, "grid_y": self.grid_y,
            "face_size": self.face_size,
            "crop": "square detector box, grey, resized (INTER_AREA when shrinking)",
            "crop_margin": self.crop_margin,
            **self.detector.fingerprint(),
            "multiple_faces": self.multiple_faces,
            "no_face": self.no_face,
            "center_box": HAAR_CENTER_BOX if self.no_face == "center_box" else None,
            "opencv_version": cv2.__version__,
        }

    def face_crop(self, bgr: np.ndarray) -> tuple[np.ndarray, str]:
        """The grey ``face_size`` square crop the histogram is computed on, and a fallback note."""
        import cv2

        face, note = locate_face(bgr, self.detector, self.multiple_faces, self.no_face, HAAR_CENTER_BOX)
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return crop_box(grey, face.box, (self.face_size, self.face_size), self.crop_margin), note

    def embed_one(self, path: str):
        import cv2

        if self._recognizer is None:
            self.check_ready()
            self._recognizer = cv2.face.LBPHFaceRecognizer_create(
                radius=self.radius, neighbors=self.neighbors, grid_x=self.grid_x, grid_y=self.grid_y)
        crop, note = self.face_crop(read_image_bgr(path))
        hist = lbph_histogram(crop, recognizer=self._recognizer)
        return (hist, note) if note else hist
