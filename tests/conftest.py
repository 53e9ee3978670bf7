"""Shared fixtures.

Real-data tests read the LFW copy under $EVALKIT_DATA_DIR (CI: ../shared/datasets). Without it
they skip on a developer's machine and FAIL in CI (CI=true): data-dependent tests never silently
skip there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _missing(why: str):
    """Skip on a developer's machine; fail in CI (CI=true), where data must be present."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def require_data_dir(dataset: str = "lfw", must_contain: tuple[str, ...] = ("lfw-deepfunneled", "pairs.txt")) -> Path:
    """``<data root>/<dataset>`` (data root: $EVALKIT_DATA_DIR, else datasets/ in the repo)."""
    env = os.environ.get("EVALKIT_DATA_DIR")
    path = (Path(env) if env else REPO / "datasets") / dataset
    missing = [name for name in must_contain if not (path / name).exists()]
    if not path.is_dir() or missing:
        _missing(f"{dataset} data not found at {path} (missing: {', '.join(missing) or path}); set "
                 f"EVALKIT_DATA_DIR to the folder holding {dataset}/ or run `evalkit data download {dataset}`")
    return path.resolve()


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The LFW root; skips (fails on CI) when absent."""
    return require_data_dir("lfw")


@pytest.fixture(scope="session")
def data_dir(lfw_root) -> Path:
    return lfw_root.parent


@pytest.fixture(scope="session")
def lfw_samples(lfw_root):
    """``load_lfw(lfw_root)``, loaded once per session."""
    from evalkit.data.lfw import load_lfw

    return load_lfw(lfw_root)


@pytest.fixture(scope="session")
def lfw_image(lfw_root):
    """Path of a real LFW image: lfw_image("Aaron_Peirsol", 1)."""
    def get(name: str, n: int) -> str:
        p = lfw_root / "lfw-deepfunneled" / name / f"{name}_{n:04d}.jpg"
        if not p.is_file():
            _missing(str(p))
        return str(p)

    return get


def yunet_path() -> Path:
    """Where the offline YuNet detector file is: $EVALKIT_YUNET_ONNX, else models/yunet/ beside the
    data root ($EVALKIT_DATA_DIR/../models/yunet; CI: ../shared/models/yunet)."""
    env = os.environ.get("EVALKIT_YUNET_ONNX")
    if env:
        return Path(env)
    data = Path(os.environ["EVALKIT_DATA_DIR"]) if os.environ.get("EVALKIT_DATA_DIR") else REPO.parent / "shared" / "datasets"
    return data.resolve().parent / "models" / "yunet" / "face_detection_yunet_2026may.onnx"


@pytest.fixture(scope="session")
def yunet_onnx() -> Path:
    """The YuNet .onnx (see yunet_path); skips on a developer's machine without it, fails in CI."""
    p = yunet_path()
    if not p.is_file():
        _missing(f"YuNet detector file not found at {p}; set EVALKIT_YUNET_ONNX to a YuNet .onnx")
    return p


@pytest.fixture(scope="session", autouse=True)
def evalkit_home(tmp_path_factory) -> Path:
    """One evalkit home (embedding cache, DeepFace weights folder) for the whole test session,
    so tests never write into the user's ~/.cache/evalkit."""
    home = tmp_path_factory.mktemp("evalkit_home")
    os.environ["EVALKIT_HOME"] = str(home)
    return home


@pytest.fixture
def corrupt_image(tmp_path) -> Path:
    p = tmp_path / "corrupt.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return p


@pytest.fixture
def blank_image(tmp_path) -> Path:
    """A readable image with no face in it: uniform grey, 250 x 250."""
    import cv2
    import numpy as np

    p = tmp_path / "blank.png"
    cv2.imwrite(str(p), np.full((250, 250, 3), 127, np.uint8))
    return p


def embed_people(backend, lfw_image, people) -> tuple:
    """Embed real LFW images of ``people`` ([(name, (image numbers...)), ...]) with ``backend``:
    (EmbeddingResult, subject per image, paths)."""
    import numpy as np

    paths = [lfw_image(name, n) for name, nums in people for n in nums]
    subjects = np.array([name for name, nums in people for _ in nums])
    return backend.embed(paths), subjects, paths


def copy_images(lfw_root: Path, dest: Path, names: list[tuple[str, int]]) -> list[Path]:
    out = []
    for name, n in names:
        src = lfw_root / "lfw-deepfunneled" / name / f"{name}_{n:04d}.jpg"
        dst = dest / name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        out.append(dst)
    return out


def compose_config(overrides: list[str]):
    """The run config Hydra would build for ``evalkit run <overrides>`` (no run folder made)."""
    from hydra import compose, initialize_config_dir

    from evalkit import config as config_mod

    config_mod.register()
    with initialize_config_dir(config_dir=str(config_mod.conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture(scope="session")
def lfw_run(tmp_path_factory, lfw_root):
    """One small real run, shared by the report tests: LFW View 2 with the first 10 mated and 10
    non-mated pairs of each fold (200 comparisons), the dlib backend. Returns the run folder."""
    from evalkit.pipeline import run

    out = tmp_path_factory.mktemp("lfw_run") / "run"
    cfg = compose_config(["protocol.pairs_per_fold=10", "progress=false", f"data_dir={lfw_root.parent}"])
    run(cfg, out)
    return out


SEARCH_RUN_OVERRIDES = ["+experiment=lfw_search", "protocol.max_subjects=120", "protocol.max_probes_per_subject=3",
                        "protocol.gallery_sizes=[20,40,null]", "protocol.candidates=10", "bootstrap.replicates=200",
                        "threshold.target_fpir=0.05", "progress=false"]


@pytest.fixture(scope="session")
def lfw_search_run(tmp_path_factory, lfw_root):
    """One small real 1:N search run: 120 LFW subjects (seeded), the dlib backend, galleries of
    20, 40 and all 60 enrolled subjects, FPIR 5%, audited at DeepFace's Dlib default. Returns the
    run folder."""
    from evalkit.pipeline import run

    out = tmp_path_factory.mktemp("lfw_search_run") / "run"
    run(compose_config([*SEARCH_RUN_OVERRIDES, f"data_dir={lfw_root.parent}"]), out)
    return out


# ---------------------------------------------------------------- every metrics.json validates against the schema

_VALIDATED: dict[str, float] = {}


def validate_written_metrics(root: Path, skip: bool = False) -> list[Path]:
    """Validate every metrics.json under ``root`` written (or rewritten) since the last call against
    evalkit/schema/metrics.schema.json; returns the files checked. A file that does not conform
    raises AssertionError naming it and the offending path. ``skip``: note the new files as seen
    without validating them (tests marked ``writes_invalid_metrics``)."""
    import json

    import jsonschema

    from evalkit.schema import validate_metrics

    checked = []
    for p in root.rglob("metrics.json"):
        key, mtime = str(p), p.stat().st_mtime
        if _VALIDATED.get(key) == mtime:
            continue
        _VALIDATED[key] = mtime
        if skip:
            continue
        try:
            m = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue   # a test's deliberately broken file (not JSON at all)
        try:
            validate_metrics(m)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"{p} does not conform to metrics.schema.json at "
                                 f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}") from None
        checked.append(p)
    return checked


@pytest.fixture(autouse=True)
def _metrics_json_conforms_to_the_schema(request, tmp_path_factory):
    """After every test: each metrics.json written under the session's temporary folders (run
    folders of fixtures and tests alike) conforms to the JSON Schema; a test whose run wrote a
    non-conforming file errors in its teardown. Tests that write hand-made or broken files on
    purpose are marked ``writes_invalid_metrics``."""
    yield
    validate_written_metrics(tmp_path_factory.getbasetemp(),
                             skip=request.node.get_closest_marker("writes_invalid_metrics") is not None)
