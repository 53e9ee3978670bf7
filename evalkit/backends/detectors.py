"""Face detection and cropping shared by the generic backends (ONNX, LBPH).

Two detectors, both run through OpenCV so they add no dependency:

- ``haar``: OpenCV's frontal-face Haar cascade (Viola-Jones; ``haarcascade_frontalface_default.xml``,
  shipped with opencv-contrib-python-headless 4.x), run on the grey image. Boxes only.
- ``yunet``: YuNet (Shiqi Yu et al., OpenCV model zoo ``face_detection_yunet_2023mar.onnx``, MIT),
  run by ``cv2.FaceDetectorYN``. Boxes plus five landmarks (the subject's right eye, left eye,
  nose tip, right and left mouth corners), so a face can be aligned the way ArcFace models expect.

``skip`` means no detector: the whole image is the face (pre-cropped data).

A backend picks one detection per image (``multiple_faces``: largest | central | fail) and says
what to do when there is none (``no_face``: fail | center_box | whole_image). Every fallback is
returned as a note, which the extraction loop counts per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import MULTIPLE_FACES, NO_FACE, EnrolmentFailure, WeightsMissing
from .weights import WeightFile, evalkit_home

DETECTORS = ("haar", "yunet", "skip")
MULTI_FACE_POLICIES = ("largest", "central", "fail")
NO_FACE_POLICIES = ("fail", "center_box", "whole_image")

HAAR_FILE = "haarcascade_frontalface_default.xml"
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_SOURCE = ("the OpenCV model zoo (opencv_zoo, models/face_detection_yunet/face_detection_yunet_2023mar.onnx, "
                "MIT licence); any YuNet release that cv2.FaceDetectorYN loads works")

# The Haar cascade's face box on a centred face crop such as LFW's: the median box of
# FaceDetector("haar") (scale_factor 1.1, min_neighbors 5, min_size 30) over 300 deep-funneled LFW
# images (every 25th file in sorted order; the largest box per image; 297 had a detection, 26 more
# than one) is 116 px wide, centred at (125, 124.5) in 250 x 250.
HAAR_CENTER_BOX = {"cx": 0.5, "cy": 0.498, "side": 0.464}

# ArcFace's five reference landmarks in a 112 x 112 crop (insightface, python-package/insightface/
# utils/face_align.py ``arcface_dst``): right eye, left eye, nose, right and left mouth corner
# (the subject's right eye is on the image's left).
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


@dataclass
class Face:
    """One detection: box (x, y, w, h) in pixels; landmarks (5, 2) or None; detector score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray | None = None
    score: float = 1.0

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


def haar_cascade_path() -> Path:
    import cv2

    return Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / HAAR_FILE


def detector_files(detector: str, detector_model_path: str | None = None) -> list[WeightFile]:
    """The files a detector needs (for ``required_files`` / ``evalkit weights``)."""
    if detector == "haar":
        p = haar_cascade_path()
        return [WeightFile(HAAR_FILE, p, "opencv-contrib-python-headless 4.x (cv2.data.haarcascades); "
                                         "opencv 5 wheels do not carry it: pip install 'opencv-contrib-python-headless<5'")]
    if detector == "yunet":
        p = Path(detector_model_path or yunet_default_path())
        return [WeightFile(p.name, p, YUNET_SOURCE)]
    return []


class FaceDetector:
    """Lazily built detector; ``detect(bgr) -> list[Face]``."""

    def __init__(self, detector: str = "haar", detector_model_path: str | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 30,
                 score_threshold: float = 0.6):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.detector = detector
        self.detector_model_path = detector_model_path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.score_threshold = float(score_threshold)
        self._impl = None

    def files(self) -> list[WeightFile]:
        return detector_files(self.detector, self.detector_model_path)

    def check_ready(self) -> None:
        for f in self.files():
            f.require()

    def fingerprint(self) -> dict:
        from ..hashing import cached_sha256

        fp = {"detector": self.detector}
        if self.detector == "haar":
            fp.update(scale_factor=self.scale_factor, min_neighbors=self.min_neighbors, min_size=self.min_size)
        elif self.detector == "yunet":
            fp.update(score_threshold=self.score_threshold)
        fp["detector_sha256"] = {f.name: cached_sha256(f.require()) for f in self.files()}
        return fp

    def _load(self):
        if self._impl is None:
            import cv2

            self.check_ready()
            if self.detector == "haar":
                self._impl = cv2.CascadeClassifier(str(self.files()[0].path))
                if self._impl.empty():
                    raise WeightsMissing(f"OpenCV could not load the Haar cascade {self.files()[0].path}")
            elif self.detector == "yunet":
                self._impl = cv2.FaceDetectorYN.create(str(self.files()[0].path), "", (320, 320),
                                                       self.score_threshold, 0.3, 5000)
        return self._impl

    def detect(self, bgr: np.ndarray) -> list[Face]:
        import cv2

        impl = self._load()
        if self.detector == "skip":
            return []
        if self.detector == "haar":
            grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            boxes = impl.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                          minSize=(self.min_size, self.min_size))
            return [Face(tuple(float(v) for v in b)) for b in (boxes if len(boxes) else [])]
        h, w = bgr.shape[:2]
        impl.setInputSize((w, h))
        _, rows = impl.detect(bgr)
        if rows is None:
            return []
        return [Face(tuple(float(v) for v in r[:4]), np.asarray(r[4:14], np.float64).reshape(5, 2), float(r[14]))
                for r in rows]


def choose_index(areas, centres, shape, policy: str) -> int:
    """Index of the face to keep, given each face's box area and box centre (x, y) in an image of
    ``shape``; one face is always kept. The one rule behind every backend's ``multiple_faces``:

    - ``largest``: the largest box; ``central``: the box whose centre is nearest the image centre;
    - ``size_center``: facenet's ``align_dataset_mtcnn.py`` rule, the box maximising
      area - 2 * (squared distance of its centre from the image centre);
    - ``fail``: a recorded ``multiple_faces`` failure when there is more than one.
    Ties go to the first face."""
    areas = np.asarray(areas, dtype=np.float64)
    if len(areas) == 1:
        return 0
    if policy == "fail":
        raise EnrolmentFailure(MULTIPLE_FACES, f"{len(areas)} faces")
    if policy == "largest":
        return int(np.argmax(areas))
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    h, w = shape[:2]
    off2 = (centres[:, 0] - w / 2) ** 2 + (centres[:, 1] - h / 2) ** 2
    if policy == "central":
        return int(np.argmin(off2))
    if policy == "size_center":
        return int(np.argmax(areas - 2.0 * off2))
    raise ValueError(f"unknown multiple_faces policy {policy!r}")


def choose_face(faces: list[Face], shape, policy: str) -> Face:
    """One face out of several: largest box, closest to the image centre, or a recorded failure."""
    centres = [(f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2) for f in faces]
    return faces[choose_index([f.area for f in faces], centres, shape, policy)]


def center_box_pixels(shape, spec: dict) -> tuple[float, float, float, float]:
    """The fixed ``no_face=center_box`` box of an image of ``shape``, as (centre x, centre y, width,
    height) in pixels. ``spec`` gives the centre as fractions of the image width and height (``cx``,
    ``cy``) and either a square ``side`` (a fraction of the shorter image side) or ``w`` and ``h``
    (fractions of the image width and height)."""
    h, w = shape[:2]
    if "side" in spec:
        bw = bh = spec["side"] * min(h, w)
    else:
        bw, bh = spec["w"] * w, spec["h"] * h
    return spec["cx"] * w, spec["cy"] * h, bw, bh


def locate_face(bgr: np.ndarray, detector: FaceDetector, multiple_faces: str, no_face: str,
                center_box: dict = HAAR_CENTER_BOX) -> tuple[Face, str]:
    """The face to embed and a note ("" unless a fallback was used).

    With ``detector="skip"`` the whole image is the face (no note: it is the configured input)."""
    h, w = bgr.shape[:2]
    whole = Face((0.0, 0.0, float(w), float(h)))
    if detector.detector == "skip":
        return whole, ""
    faces = detector.detect(bgr)
    if faces:
        return choose_face(faces, bgr.shape, multiple_faces), ""
    if no_face == "center_box":
        cx, cy, bw, bh = center_box_pixels(bgr.shape, center_box)
        return Face((cx - bw / 2, cy - bh / 2, bw, bh)), "center_box: no face detected"
    if no_face == "whole_image":
        return whole, "whole_image: no face detected"
    raise EnrolmentFailure(NO_FACE, f"{detector.detector} detector found no face")


def crop_box(img: np.ndarray, box, size: tuple[int, int], margin: float = 0.0, square: bool = True) -> np.ndarray:
    """Crop ``box`` (x, y, w, h) enlarged by ``margin`` (a fraction of its side, on each side) and
    resize to ``size`` = (width, height) with area interpolation. Parts outside the image are
    filled by edge replication, so a box near the border never changes the output size."""
    import cv2

    x, y, bw, bh = (float(v) for v in box)
    cx, cy = x + bw / 2, y + bh / 2
    if square:
        bw = bh = max(bw, bh)
    bw, bh = bw * (1 + 2 * margin), bh * (1 + 2 * margin)
    x0, y0 = int(round(cx - bw / 2)), int(round(cy - bh / 2))
    x1, y1 = int(round(cx + bw / 2)), int(round(cy + bh / 2))
    H, W = img.shape[:2]
    pad = max(0, -x0, -y0, x1 - W, y1 - H)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = img[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if crop.shape[1] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(crop, (int(size[0]), int(size[1])), interpolation=interp)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` points to
    ``dst`` points: Umeyama (1991), "Least-squares estimation of transformation parameters between
    two point patterns", the estimate skimage's SimilarityTransform (used by insightface's
    ``norm_crop``) computes. Returns the 2 x 3 matrix for ``cv2.warpAffine``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[1, 1] = -1
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / s.var(0).sum()
    t = mu_d - scale * R @ mu_s
    return np.hstack([scale * R, t[:, None]])


def align_five_points(img: np.ndarray, landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp the face so its five landmarks land on ArcFace's template, scaled to ``size``
    (insightface ``norm_crop``: 112 x 112 uses the template as is)."""
    import cv2

    w, h = int(size[0]), int(size[1])
    dst = ARCFACE_112 * np.array([w / 112.0, h / 112.0])
    M = similarity_transform(landmarks, dst)
    return cv2.warpAffine(img, M, (w, h), borderValue=0.0)


def yunet_default_path() -> str:
    return str(evalkit_home() / "models" / YUNET_FILE)


__all__ = ["DETECTORS", "MULTI_FACE_POLICIES", "NO_FACE_POLICIES", "HAAR_CENTER_BOX", "ARCFACE_112", "Face",
           "FaceDetector", "detector_files", "choose_index", "choose_face", "center_box_pixels", "locate_face",
           "crop_box", "similarity_transform", "align_five_points", "haar_cascade_path", "yunet_default_path"]
