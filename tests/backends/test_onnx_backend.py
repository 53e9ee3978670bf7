"""The generic ONNX backend, on small graphs the test builds itself with onnx.helper.

The graph is Flatten -> MatMul with a fixed random matrix (a linear projection of every input
value), so its output is a known numpy function of the exact input tensor: any slip in the
preprocessing (crop, resize, colour order, width/height, mean/std, layout) changes the output.
The reference below recomputes the input from the image file with plain numpy/OpenCV calls.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from evalkit.backends import build_backend
from evalkit.backends.base import MISSING_FILE, NO_FACE, UNREADABLE, WeightsMissing
from evalkit.backends.detectors import ARCFACE_112, align_five_points, similarity_transform

W, H, D = 24, 32, 16          # non-square on purpose: width and height must not be swapped
MEAN = [10.0, 120.0, 200.0]   # per channel, in the model's colour order: a colour swap shows
STD = [50.0, 60.0, 70.0]


def make_model(path: Path, layout: str = "nchw", seed: int = 0, batch="1") -> np.ndarray:
    """Write a Flatten+MatMul graph with two outputs ("embedding", and "double" = 2 * embedding);
    return its projection matrix. ``batch``: the input's batch dimension, "1" (fixed) or a name
    (dynamic, as real exports have)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    b = 1 if batch == "1" else batch
    shape = [b, 3, H, W] if layout == "nchw" else [b, H, W, 3]
    proj = np.random.default_rng(seed).standard_normal((3 * H * W, D)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "proj"], ["embedding"]),
         helper.make_node("Mul", ["embedding", "two"], ["double"])],
        "tiny_projection",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [b, D]),
         helper.make_tensor_value_info("double", TensorProto.FLOAT, [b, D])],
        initializer=[numpy_helper.from_array(proj, "proj"), numpy_helper.from_array(np.float32([2.0]), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return proj


def reference(path: str, proj: np.ndarray, colour: str, layout: str) -> np.ndarray:
    """The graph's output for the whole image resized to W x H, computed in numpy."""
    bgr = cv2.imread(path)
    small = cv2.resize(bgr, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)
    img = small[:, :, [2, 1, 0]] if colour == "rgb" else small
    x = (img - np.float32(MEAN)) / np.float32(STD)           # (H, W, 3)
    if layout == "nchw":
        x = np.moveaxis(x, 2, 0)                              # (3, H, W)
    return x.reshape(-1) @ proj


@pytest.mark.parametrize("colour,layout", [("rgb", "nchw"), ("bgr", "nhwc")])
def test_output_equals_numpy_graph(tmp_path, lfw_image, colour, layout):
    model = tmp_path / f"tiny_{layout}.onnx"
    proj = make_model(model, layout)
    opts = dict(model_path=str(model), input_size=[W, H], colour_order=colour, layout=layout, mean=MEAN,
                std=STD, detector="skip", l2_normalise=False)
    b = build_backend("onnx", opts)
    paths = [lfw_image("Tony_Blair", 1), lfw_image("Jennifer_Lopez", 2)]
    res = b.embed(paths)
    assert res.ok.all(), res.details
    for i, p in enumerate(paths):
        np.testing.assert_allclose(res.vectors[i], reference(p, proj, colour, layout), rtol=1e-4, atol=1e-3)
    # the other colour order gives a different answer: the check above can see a swap
    other = "bgr" if colour == "rgb" else "rgb"
    assert not np.allclose(res.vectors[0], reference(paths[0], proj, other, layout), rtol=1e-3, atol=1e-2)
    # a named output, and L2 normalisation
    doubled = build_backend("onnx", {**opts, "output_name": "double"}).embed(paths[:1]).vectors[0]
    np.testing.assert_allclose(doubled, 2 * res.vectors[0], rtol=1e-5)
    unit = build_backend("onnx", {**opts, "l2_normalise": True}).embed(paths[:1]).vectors[0]
    np.testing.assert_allclose(unit, res.vectors[0] / np.linalg.norm(res.vectors[0]), rtol=1e-5)


def test_haar_crop_and_failures(tmp_path, lfw_image, corrupt_image, blank_image):
    model = tmp_path / "tiny.onnx"
    make_model(model)
    b = build_backend("onnx", dict(model_path=str(model), input_size=[W, H], detector="haar"))
    res = b.embed([lfw_image("Colin_Powell", 1), str(tmp_path / "nope.jpg"), str(corrupt_image), str(blank_image)])
    assert res.failures == [None, MISSING_FILE, UNREADABLE, NO_FACE]
    assert np.isclose(np.linalg.norm(res.vectors[0]), 1.0)
    # the face crop differs from the whole image: the detector was used
    whole = build_backend("onnx", dict(model_path=str(model), input_size=[W, H], detector="skip"))
    assert not np.allclose(res.vectors[0], whole.embed([lfw_image("Colin_Powell", 1)]).vectors[0], atol=1e-3)
    fb = build_backend("onnx", dict(model_path=str(model), input_size=[W, H], no_face="center_box")).embed([str(blank_image)])
    assert fb.failures == [None] and fb.details == ["center_box: no face detected"]


def test_missing_model_is_named_before_any_work(tmp_path):
    missing = tmp_path / "models" / "w600k_r50.onnx"
    b = build_backend("onnx", {"model_path": str(missing)})
    with pytest.raises(WeightsMissing, match=r"'w600k_r50.onnx' is missing: expected at .*models/w600k_r50.onnx"):
        b.check_ready()
    from evalkit.embeddings import extract

    with pytest.raises(WeightsMissing, match="w600k_r50.onnx"):
        extract([str(tmp_path / "any.jpg")], "onnx", {"model_path": str(missing)}, tmp_path / "cache", workers=1)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))
    from evalkit.backends.onnx_backend import OnnxBackend

    assert [f.name for f in OnnxBackend.required_files({"model_path": str(missing), "detector": "skip"})] == ["w600k_r50.onnx"]


def test_config_mismatches_fail_before_any_work(tmp_path):
    model = tmp_path / "tiny.onnx"
    make_model(model)
    base = dict(model_path=str(model), input_size=[W, H], detector="skip")
    with pytest.raises(ValueError, match="Did you mean 'embedding'"):
        build_backend("onnx", {**base, "output_name": "embeding"}).check_ready()
    with pytest.raises(ValueError, match=r"input_size is \[width, height\]"):
        build_backend("onnx", {**base, "input_size": [H, W]}).check_ready()
    with pytest.raises(ValueError, match="layout"):
        build_backend("onnx", {**base, "layout": "nhwc"}).check_ready()
    with pytest.raises(ValueError, match="colour_order"):
        build_backend("onnx", {**base, "colour_order": "rbg"})
    with pytest.raises(ValueError, match="five_points needs landmarks"):
        build_backend("onnx", {**base, "alignment": "five_points"})
    with pytest.raises(TypeError, match="unknown options"):
        build_backend("onnx", {**base, "normalise": True})


def test_fingerprint_tracks_model_bytes_and_preprocessing(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    make_model(a, seed=0)
    make_model(b, seed=1)
    opts = dict(model_path=str(a), input_size=[W, H], detector="skip")
    fa = build_backend("onnx", opts).fingerprint()
    assert fa == build_backend("onnx", opts).fingerprint()
    assert len(fa["weights_sha256"]["a.onnx"]) == 64 and fa["onnxruntime_version"]
    assert fa["weights_sha256"] != build_backend("onnx", {**opts, "model_path": str(b)}).fingerprint()["weights_sha256"]
    assert fa != build_backend("onnx", {**opts, "colour_order": "bgr"}).fingerprint()
    assert fa != build_backend("onnx", {**opts, "mean": [0.0]}).fingerprint()


def test_worker_processes_keep_input_order(tmp_path, lfw_image):
    """Two workers give the same matrix, in the same order, as embedding in this process."""
    from evalkit.embeddings import extract

    model = tmp_path / "tiny.onnx"
    make_model(model)
    opts = dict(model_path=str(model), input_size=[W, H], detector="skip")
    paths = [lfw_image(n, i) for n in ("Tony_Blair", "Colin_Powell", "Jennifer_Lopez") for i in (1, 2, 3)]
    res, stats, _ = extract(paths, "onnx", opts, tmp_path / "cache", workers=2, chunk_size=2, progress=False)
    assert stats.computed == len(paths)
    np.testing.assert_allclose(res.vectors, build_backend("onnx", opts).embed(paths).vectors, rtol=1e-6)


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(3)
    angle, scale, t = 0.3, 1.7, np.array([12.0, -5.0])
    R = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = rng.uniform(0, 200, (5, 2))
    M = similarity_transform(src, src @ R.T + t)
    np.testing.assert_allclose(M, np.hstack([R, t[:, None]]), atol=1e-9)
    # five_points alignment puts the landmarks on ArcFace's template
    img = np.zeros((250, 250, 3), np.uint8)
    lm = ARCFACE_112 * 1.5 + 40
    for x, y in lm:
        cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
    out = align_five_points(img, lm, (112, 112))
    for x, y in ARCFACE_112:
        assert out[int(round(y)), int(round(x))].max() > 100


def test_yunet_five_point_alignment_on_real_faces(tmp_path, lfw_image, yunet_onnx):
    """ArcFace-style preprocessing: YuNet's five landmarks (in the template's order: the subject's
    right eye on the image's left) are warped onto ArcFace's reference points. The similarity that
    does it fits them to a few pixels; with the eyes swapped it could not."""
    from evalkit.backends.detectors import FaceDetector

    model = tmp_path / "tiny112.onnx"
    b = build_backend("onnx", dict(model_path=str(model), detector="yunet", detector_model_path=str(yunet_onnx),
                                   alignment="five_points", input_size=[112, 112]))
    det = FaceDetector("yunet", str(yunet_onnx))
    for name, n in (("Tony_Blair", 1), ("Jennifer_Lopez", 1), ("Colin_Powell", 2)):
        img = cv2.imread(lfw_image(name, n))
        face, note = b.face_image(img)
        assert face.shape == (112, 112, 3) and note == ""
        lm = max(det.detect(img), key=lambda f: f.area).landmarks
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]          # image-left eye / mouth corner first
        M = similarity_transform(lm, ARCFACE_112)
        mapped = lm @ M[:, :2].T + M[:, 2]
        resid = np.linalg.norm(mapped - ARCFACE_112, axis=1)
        assert resid.mean() < 6, (name, resid)          # 1.8 to 4.3 px here (head pose)
        swapped = lm[[1, 0, 2, 4, 3]]
        M2 = similarity_transform(swapped, ARCFACE_112)
        assert np.linalg.norm(swapped @ M2[:, :2].T + M2[:, 2] - ARCFACE_112, axis=1).mean() > 12   # ~20.6 px
        # the crop is that warp of the image
        np.testing.assert_array_equal(face, cv2.warpAffine(img, M, (112, 112), borderValue=0.0))
    fp_files = [f.name for f in type(b).required_files({"model_path": str(model), "detector": "yunet",
                                                        "detector_model_path": str(yunet_onnx)})]
    assert fp_files == ["tiny112.onnx", yunet_onnx.name]


class _CountingSession:
    """Wraps an onnxruntime session and records the batch size of every run."""

    def __init__(self, sess):
        self.sess, self.batches = sess, []

    def run(self, names, feeds):
        self.batches.append(len(next(iter(feeds.values()))))
        return self.sess.run(names, feeds)


def test_batched_embeddings_equal_one_at_a_time(tmp_path, lfw_image, corrupt_image):
    """One session.run per batch of batch_size faces (the last one shorter); the vectors equal the
    one-face-per-run ones to float32 rounding and the numpy reference; a failed image in the
    middle of a batch is recorded for itself and leaves the others' rows in place."""
    model = tmp_path / "dyn.onnx"
    proj = make_model(model, batch="N")
    paths = [lfw_image(n, i) for n in ("Tony_Blair", "Colin_Powell", "Jennifer_Lopez") for i in (1, 2, 3)]
    paths.insert(4, str(corrupt_image))
    opts = dict(model_path=str(model), input_size=[W, H], mean=MEAN, std=STD, detector="skip", l2_normalise=False)
    batched = build_backend("onnx", {**opts, "batch_size": 4})
    batched._session = _CountingSession(batched._open())
    one = build_backend("onnx", {**opts, "batch_size": 1})
    one._session = _CountingSession(one._open())
    rb, r1 = batched.embed(paths), one.embed(paths)
    assert batched._session.batches == [4, 4, 1] and one._session.batches == [1] * 9
    assert rb.failures == r1.failures and rb.failures[4] == UNREADABLE and sum(f is not None for f in rb.failures) == 1
    ok = rb.ok
    np.testing.assert_allclose(rb.vectors[ok], r1.vectors[ok], rtol=1e-5, atol=1e-4)
    assert np.isnan(rb.vectors[4]).all()
    for i in np.flatnonzero(ok):
        np.testing.assert_allclose(rb.vectors[i], reference(paths[i], proj, "rgb", "nchw"), rtol=1e-4, atol=1e-3)
    # normalised rows too
    unit = build_backend("onnx", {**opts, "batch_size": 4, "l2_normalise": True}).embed(paths).vectors[ok]
    np.testing.assert_allclose(unit, rb.vectors[ok] / np.linalg.norm(rb.vectors[ok], axis=1, keepdims=True), rtol=1e-5)


def test_fixed_batch_model_runs_one_face_at_a_time(tmp_path, lfw_image):
    model = tmp_path / "fixed.onnx"
    make_model(model)            # input batch dimension fixed at 1
    b = build_backend("onnx", dict(model_path=str(model), input_size=[W, H], detector="skip", batch_size=8))
    b._session = _CountingSession(b._open())
    res = b.embed([lfw_image("Tony_Blair", i) for i in (1, 2, 3)])
    assert res.ok.all() and b._session.batches == [1, 1, 1]


def test_extraction_loop_sends_whole_batches(tmp_path, lfw_image, monkeypatch):
    """extract hands the backend's batch method chunks of at least batch_size images."""
    from evalkit.backends.onnx_backend import OnnxBackend
    from evalkit.embeddings import extract

    model = tmp_path / "dyn.onnx"
    make_model(model, batch="N")
    seen = []
    real = OnnxBackend.embed

    def spy(self, paths):
        seen.append(len(paths))
        return real(self, paths)

    monkeypatch.setattr(OnnxBackend, "embed", spy)
    paths = [lfw_image(n, i) for n in ("Tony_Blair", "Colin_Powell") for i in (1, 2, 3)]
    opts = dict(model_path=str(model), input_size=[W, H], detector="skip", batch_size=4)
    res, _, _ = extract(paths, "onnx", opts, tmp_path / "cache", workers=1, chunk_size=2, progress=False)
    assert seen == [4, 2] and res.ok.all()


def test_provider_auto_falls_back_to_cpu_with_a_note_and_is_fingerprinted(tmp_path, monkeypatch, caplog):
    """Without a usable CUDA provider, auto runs on the CPU and says why; cuda refuses; the
    provider that really runs is in the fingerprint. The second case is onnxruntime-gpu on a
    machine without a GPU: the CUDA provider is listed, but the session comes up on the CPU."""
    import logging

    import onnxruntime as ort

    model = tmp_path / "dyn.onnx"
    make_model(model, batch="N")
    opts = dict(model_path=str(model), input_size=[W, H], detector="skip")
    cuda_listed = "CUDAExecutionProvider" in ort.get_available_providers()
    if not cuda_listed:
        with caplog.at_level(logging.INFO, logger="evalkit"):
            fp = build_backend("onnx", opts).fingerprint()
        assert fp["execution_provider"] == "CPUExecutionProvider"
        assert "running on the CPU: this onnxruntime has no CUDA provider" in caplog.text
        with pytest.raises(RuntimeError, match="provider=cuda, but this onnxruntime has no CUDA provider"):
            build_backend("onnx", {**opts, "provider": "cuda"}).check_ready()
    # onnxruntime-gpu without a GPU: CUDA listed, the session silently on the CPU
    real_session = ort.InferenceSession
    asked = []

    def no_gpu_session(path, sess_options=None, providers=None):
        asked.append(list(providers))
        return real_session(path, sess_options=sess_options, providers=[p for p in providers if p != "CUDAExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", no_gpu_session)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="evalkit"):
        b = build_backend("onnx", opts)
        fp = b.fingerprint()
    assert asked[0] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert fp["execution_provider"] == "CPUExecutionProvider" and "could not start" in caplog.text
    with pytest.raises(RuntimeError, match="provider=cuda, but the CUDA provider is installed but could not start"):
        build_backend("onnx", {**opts, "provider": "cuda"}).check_ready()
    cpu = build_backend("onnx", {**opts, "provider": "cpu"})
    n_before = len(asked)
    assert cpu.fingerprint()["execution_provider"] == "CPUExecutionProvider" and asked[n_before:][0] == ["CPUExecutionProvider"]


def _cuda_reason():
    import shutil

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDA provider here (onnxruntime-gpu not installed)"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (no nvidia-smi)"
    return None


@pytest.mark.skipif(_cuda_reason() is not None, reason=str(_cuda_reason()))
def test_cuda_provider_embeddings_match_cpu(tmp_path, lfw_image):
    """On a GPU machine with onnxruntime-gpu: auto picks CUDA, the fingerprint says so (a separate
    cache folder), and the vectors agree with the CPU provider's to float32 tolerance."""
    model = tmp_path / "dyn.onnx"
    make_model(model, batch="N")
    opts = dict(model_path=str(model), input_size=[W, H], detector="skip", batch_size=4)
    gpu, cpu = build_backend("onnx", opts), build_backend("onnx", {**opts, "provider": "cpu"})
    assert gpu.fingerprint()["execution_provider"] == "CUDAExecutionProvider"
    assert gpu.fingerprint() != cpu.fingerprint()
    paths = [lfw_image("Tony_Blair", i) for i in (1, 2, 3)]
    np.testing.assert_allclose(gpu.embed(paths).vectors, cpu.embed(paths).vectors, rtol=1e-4, atol=1e-4)
