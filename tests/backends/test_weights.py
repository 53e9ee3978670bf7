"""evalkit manages DeepFace's weights folder and never lets DeepFace download silently."""

from __future__ import annotations

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


def test_unsupported_deepface_model_is_refused_clearly():
    with pytest.raises(ValueError, match="not supported yet"):
        build_backend("deepface", {"model_name": "VGG-Face"})
