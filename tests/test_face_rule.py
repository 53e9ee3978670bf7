"""Issue 12 item 7: the dataset declares which detected face is its subject; the pipeline passes it
to the backend as its multiple_faces option unless the user set one. Backends know no datasets."""

from __future__ import annotations

import inspect

from evalkit import config as config_mod
from evalkit.backends import dlib_native

from .test_config import cfg


def test_lfw_declares_the_central_face_and_the_backend_gets_it():
    c = cfg()
    assert c.dataset.multiple_faces == "central"
    assert c.backend.multiple_faces is None
    assert config_mod.backend_options(c.backend, c.dataset)["multiple_faces"] == "central"


def test_the_user_overrides_the_dataset_rule():
    c = cfg("backend.multiple_faces=largest")
    assert config_mod.backend_options(c.backend, c.dataset)["multiple_faces"] == "largest"


def test_a_dataset_without_a_rule_leaves_the_backend_default():
    c = cfg("dataset=csv", "dataset.name=x", "dataset.path=/x.csv", "protocol=generated")
    assert c.dataset.multiple_faces is None
    opts = config_mod.backend_options(c.backend, c.dataset)
    assert "multiple_faces" not in opts
    assert inspect.signature(dlib_native.DlibBackend.__init__).parameters["multiple_faces"].default == "largest"
    f = cfg("backend=facenet", "dataset=csv", "dataset.name=x", "dataset.path=/x.csv", "protocol=generated")
    assert "multiple_faces" not in config_mod.backend_options(f.backend, f.dataset)


def test_lfw_label_provenance_is_declared():
    prov = cfg().dataset.label_provenance
    assert set(prov) >= {"sex", "race"} and all("not self-reported" in v for v in prov.values())


def test_a_rule_the_backend_does_not_implement_is_not_passed():
    from evalkit.backends.deepface_backend import DeepFaceBackend

    c = cfg("backend=deepface-dlib")
    opts = config_mod.backend_options(c.backend, c.dataset, DeepFaceBackend.multiple_faces_choices)
    assert "multiple_faces" not in opts          # DeepFace implements largest and fail only
    assert config_mod.backend_options(c.backend, c.dataset, ("largest", "central"))["multiple_faces"] == "central"
