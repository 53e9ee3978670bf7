"""A generic ONNX face-embedding backend, run by onnxruntime.

The config says everything the model expects: the file (``model_path``), the input size
``[width, height]``, the colour order (``rgb``/``bgr``), the tensor layout (``nchw``/``nhwc``),
the normalisation ``(x - mean) / std`` (per channel, in the model's colour order, or one scalar),
the input and output names (default: the first of each), and how the face is found and cropped.

Pipeline per image: read (BGR uint8) -> detect (``haar``, ``yunet`` or ``skip``) -> crop
(``alignment: box``: the square detector box enlarged by ``crop_margin``, resized; or
``alignment: five_points``: YuNet's five landmarks warped onto ArcFace's reference points with a
least-squares similarity transform, as insightface's ``norm_crop``) -> colour order -> float32,
``(x - mean) / std`` -> layout, batch of one -> onnxruntime -> the named output, flattened ->
optional L2 normalisation.

Batches: ``embed`` preprocesses a chunk image by image (a failure is recorded for that image
alone), then runs the model once per ``batch_size`` faces (one ``session.run`` on an
``(B, ...)`` tensor). A model whose input has a fixed batch dimension of 1 is run one face at a
time (noted in the log). Batched and one-at-a-time embeddings agree to float32 rounding (tested).

Execution provider (``provider``): ``auto`` uses onnxruntime's ``CUDAExecutionProvider`` when
it is installed (``pip install evalkit[gpu]``, i.e. onnxruntime-gpu) and a GPU answers, else the
CPU one, logging which and why; ``cuda`` requires the GPU (an error otherwise); ``cpu`` never
tries it. The provider that actually runs (onnxruntime falls back silently when CUDA cannot
start, so evalkit reads it back from the session) goes into the fingerprint: CPU and GPU kernels
differ in the last bits, so their embeddings are cached apart.

On the CPU provider onnxruntime runs with one intra-op and one inter-op thread: evalkit
parallelises over images with worker processes, and threads inside each worker would only
compete with them.

Example: insightface's ArcFace exports (e.g. ``w600k_r50.onnx`` from the ``buffalo_l`` pack, or
``glintr100.onnx``) take 112 x 112 RGB, ``(x - 127.5) / 127.5``, NCHW, faces aligned on five
landmarks; see conf/backend/onnx.yaml. evalkit cannot download them: put the file where
``model_path`` says.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np

from .base import (ERROR, Backend, EmbeddingResult, EnrolmentFailure, check_choice, read_image_bgr,
                   stack_vectors)
from .detectors import (MULTI_FACE_POLICIES, NO_FACE_POLICIES, FaceDetector, align_five_points, crop_box,
                        detector_files, locate_face)
from .weights import WeightFile, cached_sha256

log = logging.getLogger("evalkit")

COLOUR_ORDERS = ("rgb", "bgr")
PROVIDERS = ("auto", "cuda", "cpu")
CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
LAYOUTS = ("nchw", "nhwc")
ALIGNMENTS = ("box", "five_points")
MODEL_SOURCE = ("your own ONNX export, named by backend.model_path (e.g. insightface's ArcFace "
                "w600k_r50.onnx from its buffalo_l model pack)")


def _channels(value, key: str) -> np.ndarray:
    v = np.asarray(value if isinstance(value, (list, tuple)) else [value], dtype=np.float32).ravel()
    if v.size == 1:
        v = np.repeat(v, 3)
    if v.size != 3:
        raise ValueError(f"onnx backend: {key} must be one number or three (one per channel), got {value!r}")
    return v


def _pick(name: str | None, available: list[str], what: str) -> str:
    if name is None:
        return available[0]
    if name not in available:
        hint = difflib.get_close_matches(name, available, n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"onnx backend: the model has no {what} named {name!r}; it has {available}.{extra}")
    return name


def _model_file(model_path) -> WeightFile:
    return WeightFile(Path(model_path).name, Path(model_path), MODEL_SOURCE)


class OnnxBackend(Backend):
    """Args:
        model_path: the .onnx file (required).
        input_size: [width, height] of the model input in pixels.
        colour_order: "rgb" or "bgr": the channel order the model expects.
        layout: "nchw" or "nhwc".
        mean, std: normalisation ``(x - mean) / std`` on 0..255 pixel values, per channel in the
            model's colour order, or one number for all channels.
        input_name, output_name: graph input/output to use (None: the first).
        detector: "haar", "yunet" (gives landmarks; needs ``detector_model_path``) or "skip" (the
            whole image, for pre-cropped faces).
        detector_model_path: the YuNet .onnx file (None: <evalkit home>/models/face_detection_yunet_2023mar.onnx).
        alignment: "box" (square detector box + ``crop_margin``) or "five_points" (needs yunet).
        crop_margin: fraction of the box side added on each side before resizing ("box" only).
        multiple_faces: "largest" | "central" | "fail".
        no_face: "fail" (recorded failure) | "center_box" (fixed centre box, a note) | "whole_image" (a note).
        l2_normalise: divide each embedding by its L2 norm.
        distance: "cosine" (default), "euclidean" or "euclidean_l2".
        batch_size: faces per ``session.run`` (models with a fixed batch of 1: always 1).
        provider: "auto" (CUDA when onnxruntime-gpu and a GPU are there, else CPU), "cuda"
            (required) or "cpu".
    """

    name = "onnx"
    distance = "cosine"

    def __init__(self, model_path: str, input_size=(112, 112), colour_order: str = "rgb", layout: str = "nchw",
                 mean=127.5, std=127.5, input_name: str | None = None, output_name: str | None = None,
                 detector: str = "haar", detector_model_path: str | None = None, alignment: str = "box",
                 crop_margin: float = 0.0, multiple_faces: str = "largest", no_face: str = "fail",
                 l2_normalise: bool = True, distance: str = "cosine", batch_size: int = 32,
                 provider: str = "auto", **unused):
        if unused:
            raise TypeError(f"onnx backend: unknown options {sorted(unused)}")
        if not model_path or str(model_path) == "???":
            raise ValueError("onnx backend: model_path is required (the .onnx file to run)")
        check_choice("onnx", "colour_order", colour_order, COLOUR_ORDERS)
        check_choice("onnx", "layout", layout, LAYOUTS)
        check_choice("onnx", "alignment", alignment, ALIGNMENTS)
        if alignment == "five_points" and detector != "yunet":
            raise ValueError("onnx backend: alignment=five_points needs landmarks: use detector=yunet")
        check_choice("onnx", "multiple_faces", multiple_faces, MULTI_FACE_POLICIES)
        check_choice("onnx", "no_face", no_face, NO_FACE_POLICIES)
        check_choice("onnx", "provider", provider, PROVIDERS)
        if int(batch_size) < 1:
            raise ValueError(f"onnx backend: batch_size must be >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.provider = provider
        size = [int(v) for v in input_size]
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"onnx backend: input_size must be [width, height], got {input_size!r}")
        self.model_path = str(model_path)
        self.input_size = tuple(size)
        self.colour_order = colour_order
        self.layout = layout
        self.mean = _channels(mean, "mean")
        self.std = _channels(std, "std")
        if (self.std == 0).any():
            raise ValueError("onnx backend: std must not be zero")
        self.input_name = input_name
        self.output_name = output_name
        self.detector = FaceDetector(detector, detector_model_path)
        self.alignment = alignment
        self.crop_margin = float(crop_margin)
        self.multiple_faces = multiple_faces
        self.no_face = no_face
        self.l2_normalise = bool(l2_normalise)
        self.distance = distance
        self._session = None
        self._names = None
        self._batch_dim_fixed = False
        self.execution_provider = None

    # -- files and readiness -----------------------------------------------------------------
    @classmethod
    def required_files(cls, options: dict) -> list:
        mp = options.get("model_path")
        files = [_model_file(mp)] if mp and str(mp) != "???" else []
        return files + detector_files(options.get("detector", "haar"), options.get("detector_model_path"))

    @classmethod
    def weights_listing(cls) -> list:
        """For ``evalkit weights``: the detector files (the model itself is whatever
        ``backend.model_path`` names, checked when a run starts)."""
        return [("detector=haar", detector_files("haar")), ("detector=yunet", detector_files("yunet"))]

    def _open(self):
        """Load the session once and check names, input shape and type against the config."""
        if self._session is None:
            import onnxruntime as ort

            _model_file(self.model_path).require()
            sess = self._new_session(ort)
            inputs = {i.name: i for i in sess.get_inputs()}
            in_name = _pick(self.input_name, list(inputs), "input")
            out_name = _pick(self.output_name, [o.name for o in sess.get_outputs()], "output")
            inp = inputs[in_name]
            if inp.type != "tensor(float)":
                raise ValueError(f"onnx backend: input {in_name!r} has type {inp.type}; only float32 inputs are supported")
            w, h = self.input_size
            want = [1, 3, h, w] if self.layout == "nchw" else [1, h, w, 3]
            shape = list(inp.shape)
            if len(shape) != 4 or any(isinstance(s, int) and s != t for s, t in zip(shape[1:], want[1:])):
                raise ValueError(f"onnx backend: input {in_name!r} has shape {shape}, but input_size={list(self.input_size)} "
                                 f"and layout={self.layout} give {want} (check input_size is [width, height] and the layout)")
            self._batch_dim_fixed = isinstance(shape[0], int)
            if self._batch_dim_fixed and shape[0] != 1:
                raise ValueError(f"onnx backend: input {in_name!r} has a fixed batch of {shape[0]}; only 1 or a "
                                 "dynamic batch dimension is supported")
            if self._batch_dim_fixed and self.batch_size > 1:
                log.info("onnx backend: %s takes one face per run (fixed batch dimension): batch_size=%d not used",
                         Path(self.model_path).name, self.batch_size)
            self._session, self._names = sess, (in_name, out_name)
        return self._session

    def _new_session(self, ort):
        """An InferenceSession on the provider ``provider`` asks for, falling back to the CPU
        (logged) under ``auto``; ``execution_provider`` is set to the one the session really runs."""
        so = ort.SessionOptions()
        so.log_severity_level = 3
        available = ort.get_available_providers()
        want_cuda = self.provider in ("auto", "cuda")
        why = None
        if want_cuda and CUDA_PROVIDER in available:
            sess = ort.InferenceSession(self.model_path, sess_options=so, providers=[CUDA_PROVIDER, CPU_PROVIDER])
            if sess.get_providers()[:1] == [CUDA_PROVIDER]:
                self.execution_provider = CUDA_PROVIDER
                return sess
            why = "the CUDA provider is installed but could not start (no GPU, or a CUDA/cuDNN mismatch)"
        elif want_cuda:
            why = ("this onnxruntime has no CUDA provider (install the gpu extra, onnxruntime-gpu, "
                   f"on a GPU machine; available: {', '.join(available)})")
        if why and self.provider == "cuda":
            raise RuntimeError(f"onnx backend: provider=cuda, but {why}; use provider=auto or cpu to run on the CPU")
        if why:
            log.info("onnx backend: running on the CPU: %s", why)
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.execution_provider = CPU_PROVIDER
        return ort.InferenceSession(self.model_path, sess_options=so, providers=[CPU_PROVIDER])

    def check_ready(self) -> None:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            raise ImportError("the onnx backend needs onnxruntime: pip install onnxruntime")
        _model_file(self.model_path).require()
        self.detector.check_ready()
        self._open()

    def fingerprint(self) -> dict:
        import cv2
        import onnxruntime as ort

        self.check_ready()
        in_name, out_name = self._names
        return {
            "backend": "onnx",
            "model": Path(self.model_path).name,
            "weights_sha256": {Path(self.model_path).name: cached_sha256(self.model_path)},
            "input_name": in_name, "output_name": out_name,
            "input_size": list(self.input_size), "colour_order": self.colour_order, "layout": self.layout,
            "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
            **self.detector.fingerprint(),
            "alignment": self.alignment, "crop_margin": self.crop_margin,
            "multiple_faces": self.multiple_faces, "no_face": self.no_face,
            "l2_normalise": self.l2_normalise,
            "execution_provider": self.execution_provider,
            "onnxruntime_version": ort.__version__, "opencv_version": cv2.__version__,
        }

    # -- preprocessing and inference ---------------------------------------------------------
    def face_image(self, bgr: np.ndarray) -> tuple[np.ndarray, str]:
        """The BGR uint8 face image of ``input_size`` that goes into the model, and a fallback note."""
        face, note = locate_face(bgr, self.detector, self.multiple_faces, self.no_face)
        if self.alignment == "five_points" and face.landmarks is not None:
            return align_five_points(bgr, face.landmarks, self.input_size), note
        if self.detector.detector == "skip":
            return crop_box(bgr, face.box, self.input_size, 0.0, square=False), note
        return crop_box(bgr, face.box, self.input_size, self.crop_margin), note

    def to_tensor(self, face_bgr: np.ndarray) -> np.ndarray:
        """Colour order, ``(x - mean) / std`` and layout: the model's input array (batch of one)."""
        img = face_bgr[:, :, ::-1] if self.colour_order == "rgb" else face_bgr
        x = (img.astype(np.float32) - self.mean) / self.std
        if self.layout == "nchw":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None], dtype=np.float32)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, dtype=np.float32).reshape(len(out), -1)
        if self.l2_normalise:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def embed_one(self, path: str):
        sess = self._open()
        face, note = self.face_image(read_image_bgr(path))
        in_name, out_name = self._names
        out = self._finish(sess.run([out_name], {in_name: self.to_tensor(face)})[0])[0]
        return (out, note) if note else out

    def embed(self, paths) -> EmbeddingResult:
        """Preprocess every image (failures recorded per image, as ``Backend.embed``), then run
        the model once per ``batch_size`` faces."""
        sess = self._open()
        in_name, out_name = self._names
        n = len(paths)
        failures: list = [None] * n
        details: list = [""] * n
        tensors: dict[int, np.ndarray] = {}
        for i, p in enumerate(paths):
            try:
                face, note = self.face_image(read_image_bgr(p))
                tensors[i] = self.to_tensor(face)
                details[i] = note or ""
            except EnrolmentFailure as exc:
                failures[i], details[i] = exc.reason, exc.detail
            except Exception as exc:   # a bug on one image must not lose the chunk
                failures[i], details[i] = ERROR, f"{type(exc).__name__}: {exc}"
        vectors: list = [None] * n
        done = list(tensors)
        step = 1 if self._batch_dim_fixed else self.batch_size
        for s in range(0, len(done), step):
            idx = done[s:s + step]
            try:
                out = sess.run([out_name], {in_name: np.concatenate([tensors[i] for i in idx])})[0]
                if len(out) != len(idx):
                    raise ValueError(f"the model returned {len(out)} rows for a batch of {len(idx)}")
                rows = self._finish(out)
            except Exception as exc:   # recorded per image of the batch, never dropped
                for i in idx:
                    failures[i], details[i] = ERROR, f"{type(exc).__name__}: {exc}"
                continue
            for i, r in zip(idx, rows):
                vectors[i] = r
        return EmbeddingResult(stack_vectors(vectors), failures, details)
