"""evalkit manages DeepFace's weights folder and never lets DeepFace download silently."""

from __future__ import annotations

import hashlib

import pytest

from evalkit.backends import build_backend, weights
from evalkit.backends.base import WeightsMissing


def test_dlib_weights_are_placed_in_evalkit_deepface_home(evalkit_home):
    placed = weights.place_packaged_weights()
    target = weights.deepface_weights_dir() / "dlib_face_recognition_resnet_model_v1.dat"
    assert target in placed and target.is_file()
    assert str(target).startswith(str(evalkit_home))
    src = weights.face_recognition_models_file("dlib_face_recognition_resnet_model_v1.dat").path
    assert weights.cached_sha256(target) == weights.cached_sha256(src)


def test_missing_weights_fail_before_work_naming_file_place_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    # pretend face-recognition-models is not installed: nothing can be placed
    monkeypatch.setattr(weights, "face_recognition_models_file",
                        lambda name: weights.WeightFile(name, tmp_path / "absent" / name, "the PyPI package face-recognition-models"))
    b = build_backend("deepface", {"model_name": "Dlib"})
    with pytest.raises(WeightsMissing) as exc:
        b.check_ready()
    msg = str(exc.value)
    assert "dlib_face_recognition_resnet_model_v1.dat" in msg
    assert str(tmp_path / "home") in msg                 # where it is expected
    assert "face-recognition-models" in msg and "dlib.net" in msg   # where it comes from
    assert not (tmp_path / "home" / "deepface" / ".deepface" / "weights" / "dlib_face_recognition_resnet_model_v1.dat").exists()


def test_every_deepface_model_is_accepted_and_unknown_ones_are_refused_clearly():
    for model in weights.DEEPFACE_MODELS:
        assert build_backend("deepface", {"model_name": model}).model_name == model
    with pytest.raises(ValueError, match="Did you mean 'VGG-Face'"):
        build_backend("deepface", {"model_name": "VGGFace"})


def test_dlib_landmark_model_is_placed_for_deepfaces_dlib_detector(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    placed = weights.place_packaged_weights()
    target = weights.deepface_weights_dir() / "shape_predictor_5_face_landmarks.dat"
    assert target in placed
    src = weights.face_recognition_models_file("shape_predictor_5_face_landmarks.dat").path
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()
    assert all(f.present for f in weights.deepface_required_files("Dlib", "dlib"))


def test_local_detector_file_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALKIT_YUNET_ONNX", raising=False)
    assert weights.place_detector_weights("yunet") is None          # nothing given: nothing placed
    with pytest.raises(WeightsMissing, match="nope.onnx.*does not exist.*face_detection_yunet_2023mar.onnx"):
        weights.place_detector_weights("yunet", str(tmp_path / "nope.onnx"))
    monkeypatch.setenv("EVALKIT_YUNET_ONNX", str(tmp_path / "gone.onnx"))
    with pytest.raises(WeightsMissing, match=r"\$EVALKIT_YUNET_ONNX names .*gone.onnx"):
        weights.place_detector_weights("yunet")
    other = tmp_path / "cascade.xml"
    other.write_text("<x/>")
    with pytest.raises(ValueError, match="loads 2 files"):
        weights.place_detector_weights("opencv", str(other))
    # a stand-in file is copied under the name DeepFace expects; its hash is what gets recorded
    fake = tmp_path / "my_yunet.onnx"
    fake.write_bytes(b"not really onnx")
    dst = weights.place_detector_weights("yunet", str(fake))
    assert dst == weights.deepface_weights_dir() / "face_detection_yunet_2023mar.onnx"
    assert dst.read_bytes() == b"not really onnx"
    f = weights.deepface_required_files("Dlib", "yunet")[-1]
    assert f.present and str(fake) in f.source
    dst.write_bytes(b"replaced by hand")      # no longer the copied file: no longer attributed to it
    assert str(fake) not in weights.deepface_required_files("Dlib", "yunet")[-1].source


def test_evalkit_weights_lists_present_and_missing_with_hashes(tmp_path, monkeypatch, capsys):
    from evalkit.cli import main

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALKIT_YUNET_ONNX", raising=False)
    monkeypatch.setenv("DEEPFACE_BACKEND_ENGINE", "onnx")
    assert main(["weights", "deepface"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    wdir = tmp_path / "home" / "deepface" / ".deepface" / "weights"

    def row(label, name):
        i = next(i for i, ln in enumerate(lines) if ln.split()[:2] == [label, name])
        return lines[i], lines[i + 1], lines[i + 2]

    dlib_file = weights.face_recognition_models_file("dlib_face_recognition_resnet_model_v1.dat").path
    head, where, source = row("model=Dlib", "dlib_face_recognition_resnet_model_v1.dat")
    assert f"present  sha256 {hashlib.sha256(dlib_file.read_bytes()).hexdigest()[:16]}" in head
    assert str(wdir / "dlib_face_recognition_resnet_model_v1.dat") in where and "face-recognition-models" in source
    head, where, source = row("model=ArcFace", "arcface_weights.onnx")
    assert head.rstrip().endswith("MISSING") and str(wdir / "arcface_weights.onnx") in where
    assert "serengil/deepface_models" in source
    head, where, source = row("detector=yunet", "face_detection_yunet_2023mar.onnx")
    assert head.rstrip().endswith("MISSING") and "EVALKIT_YUNET_ONNX" in source
    for model in weights.DEEPFACE_MODELS:
        assert f"model={model}" in out
    for det in weights.DEEPFACE_DETECTORS:
        assert f"detector={det}" in out
    assert "== dlib ==" not in out                   # filtered to one backend
    assert main(["weights", "deepfase"]) == 2
    assert "did you mean 'deepface'" in capsys.readouterr().err
