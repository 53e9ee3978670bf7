"""Issue 13, items 3-7 on real LFW images (a small CSV dataset, the LBPH backend): checks before
any embedding, failed runs marked and refused, a default protocol that works on any CSV, default
intersections from the CSV's own attributes, "not comparable" apart from "regression", messages
that name the fix, and a console summary at the end of every run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit import pipeline
from evalkit.config import ConfigError
from evalkit.data.samples import DatasetError
from tests.conftest import compose_config

REPO = Path(__file__).resolve().parents[2]
PEOPLE = [("George_W_Bush", "male", "white"), ("Colin_Powell", "male", "black"),
          ("Serena_Williams", "female", "black"), ("Jennifer_Lopez", "female", "latino")]


def _dataset(lfw_root, dest: Path, per_person: int = 3) -> Path:
    """A CSV (sex, ethnicity) over real LFW images copied beside it."""
    rows = ["path,subject,sex,ethnicity"]
    for name, sex, eth in PEOPLE:
        for i in range(1, per_person + 1):
            src = lfw_root / "lfw-deepfunneled" / name / f"{name}_{i:04d}.jpg"
            dst = dest / "img" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            rows.append(f"img/{src.name},{name},{sex},{eth}")
    p = dest / "faces.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def _cfg(csv_path, *extra):
    return compose_config(["dataset=csv", f"dataset.path={csv_path}", "dataset.name=faces", "protocol=generated",
                           "backend=lbph", "backend.workers=1", "bootstrap.replicates=50", "progress=false", *extra])


@pytest.fixture
def no_embedding(monkeypatch):
    """Embedding is forbidden: a check that comes after it fails the test."""
    def refuse(*a, **k):
        raise AssertionError("an image was embedded before the check")
    monkeypatch.setattr("evalkit.embeddings.extract", refuse)   # every embedding goes through it


def test_one_photo_per_person_is_refused_before_any_embedding(lfw_root, tmp_path, no_embedding):
    csv_path = _dataset(lfw_root, tmp_path, per_person=1)
    with pytest.raises(DatasetError, match="no genuine .*each of the 4 subjects has one image.*nothing was embedded"):
        pipeline.run(_cfg(csv_path), tmp_path / "run")
    assert "no genuine" in json.loads((tmp_path / "run" / "FAILED.json").read_text())["error"]


def test_deepface_default_without_a_default_is_refused_before_embedding(lfw_root, tmp_path, no_embedding):
    csv_path = _dataset(lfw_root, tmp_path)
    with pytest.raises(ConfigError, match="no threshold for the lbph backend"):
        pipeline.run(_cfg(csv_path, "threshold=fixed", "threshold.deepface_default=true"), tmp_path / "run")


def test_unknown_attribute_in_intersections_is_refused_before_embedding(lfw_root, tmp_path, no_embedding):
    csv_path = _dataset(lfw_root, tmp_path)
    with pytest.raises(ConfigError, match="no attribute 'race'.*Did you mean 'sex'|no attribute 'race'"):
        pipeline.run(_cfg(csv_path, "intersections=[[sex,race]]"), tmp_path / "run")


def test_small_csv_runs_with_the_default_protocol_and_says_so(lfw_root, tmp_path, capsys):
    """conf/protocol/generated.yaml asks for 200,000 non-mated pairs; a 12-image CSV has 54: all
    are used and the run says so (metrics.json and the console). The default intersections come
    from the CSV's own attributes (sex x ethnicity), and the console gets a summary."""
    from evalkit.cli import main

    csv_path = _dataset(lfw_root, tmp_path)
    out = tmp_path / "results"
    code = main(["run", "dataset=csv", f"dataset.path={csv_path}", "dataset.name=faces", "protocol=generated",
                 "backend=lbph", "backend.workers=1", "bootstrap.replicates=50", "progress=false",
                 f"results_dir={out}"])
    assert code == 0
    (run,) = sorted(out.glob("faces-generated-lbph/*/"))
    m = json.loads((run / "metrics.json").read_text())
    assert m["protocol"]["n_impostor"] == 54 and m["protocol"]["n_genuine"] == 12
    assert m["protocol"]["notes"] == ["asked for 200,000 non-mated pairs but 'faces' has only 54 (after capping "
                                      "at 10 images per subject): all 54 are used"]
    assert "sex x ethnicity" in m["intersections"] and "intersections_skipped" not in m
    text = capsys.readouterr().out
    assert "evalkit: faces-generated-lbph finished" in text
    assert "threshold:" in text and "overall:" in text and "FNMR" in text and "FMR" in text
    assert "sex:" in text and "female" in text and "ethnicity:" in text
    assert "all 54 are used" in text and f"run folder: {run}" in text.replace(str(run) + "/", str(run))
    assert not (run / "FAILED.json").exists()
    # figures: SVG only unless asked (report.html inlines the SVG)
    assert (run / "fte.svg").is_file() and not list(run.glob("*.png")) and not list(run.glob("*.pdf"))


def _cli(args, cwd=None):
    import os

    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_failed_run_is_marked_and_refused_by_report_compare_and_check(tmp_path):
    out = tmp_path / "results"
    p = _cli(["run", "threshold.target_fmr=2", "progress=false", f"results_dir={out}"])
    assert p.returncode == 2 and "threshold.target_fmr must be in (0, 1], got 2" in p.stderr
    (run,) = sorted(out.glob("*/*/"))
    rec = json.loads((run / "FAILED.json").read_text())
    assert rec["status"] == "failed" and "target_fmr" in rec["error"] and rec["type"] == "ConfigError"
    for args in (["report", str(run)], ["compare", str(run)],
                 ["check", str(run), "--baseline", str(REPO / "results/baselines/lfw-view2-dlib-small")]):
        p = _cli(args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "is a failed run: threshold.target_fmr must be in (0, 1]" in p.stderr, p.stderr
    (run / "FAILED.json").unlink()        # now indistinguishable from a run in progress: said so
    p = _cli(["report", str(run)])
    assert p.returncode == 2 and "still going, or was killed" in p.stderr


def test_check_tells_not_comparable_from_regression(lfw_run, tmp_path, capsys):
    """The session's small run (pairs_per_fold=10) against the committed baseline (30): exit 3, not
    1, saying what differs and the exact run to make."""
    from evalkit.report.check import main

    code = main([str(lfw_run), "--baseline", str(REPO / "results/baselines/lfw-view2-dlib-small"),
                 "--junit", str(tmp_path / "j.xml"), "--report", str(tmp_path / "c.md")])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "NOT COMPARABLE" in out and "protocol.n_genuine" in out and "nothing here is a regression" in out
    assert "evalkit run protocol.pairs_per_fold=30" in out
    assert "Regressions" not in out and "FAIL:" not in out


def test_compare_writes_beside_the_runs_not_into_the_cwd(lfw_run, tmp_path, monkeypatch):
    from evalkit.report.compare import compare

    runs = tmp_path / "runs"
    for k in (1, 2):
        shutil.copytree(lfw_run, runs / f"r{k}")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = compare([str(runs / "r1"), str(runs / "r2")])
    assert Path(res["out"]).resolve().parent == runs.resolve() and Path(res["out"]).name.startswith("compare-")
    assert not list(elsewhere.iterdir())


def test_cli_messages_name_the_fix(tmp_path):
    p = _cli(["run", "backend=dlibb"])
    assert p.returncode == 2 and "Did you mean backend=dlib?" in p.stderr and "base_" not in p.stderr
    p = _cli(["run", "--help"])
    assert p.returncode == 0 and "powered by Hydra" not in p.stdout and "base_" not in p.stdout
    assert "backend" in p.stdout and "dlib" in p.stdout and "dataset.encoding" in p.stdout
    p = _cli(["weights", "lbph"])
    assert "never downloads" not in p.stdout.replace("A run never downloads", "")
    assert "evalkit weights fetch" in p.stdout


def test_cached_failure_detail_never_names_another_datasets_path(tmp_path):
    """The cache keys images by their bytes: the same junk file under two datasets shares one
    entry, whose detail must not carry the first dataset's path into the second's failures."""
    from evalkit.embeddings import extract

    a, b = tmp_path / "dataset_a" / "x.jpg", tmp_path / "dataset_b" / "x.jpg"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"not an image at all")
    cache = tmp_path / "cache"
    first, _, _ = extract([str(a)], "lbph", {}, cache, workers=1, progress=False)
    second, stats, _ = extract([str(b)], "lbph", {}, cache, workers=1, progress=False)
    assert stats.from_cache == 1 and second.failures == ["unreadable"]
    assert "dataset_a" not in second.details[0] and str(tmp_path) not in second.details[0]


def test_finished_embeddings_survive_a_later_failure(lfw_root, tmp_path, monkeypatch):
    """A run that fails after embedding (here: scoring raises) keeps its embeddings in the cache,
    and leaves FAILED.json; the rerun embeds nothing."""
    from evalkit.embeddings import EmbeddingCache

    csv_path = _dataset(lfw_root, tmp_path)
    cfg = _cfg(csv_path, f"cache_dir={tmp_path / 'cache'}")

    def boom(*a, **k):
        raise MemoryError("scoring failed")
    import evalkit.protocols.pairs as pairs_protocol

    monkeypatch.setattr(pairs_protocol, "pair_distances", boom)
    with pytest.raises(MemoryError):
        pipeline.run(cfg, tmp_path / "run1")
    assert json.loads((tmp_path / "run1" / "FAILED.json").read_text())["type"] == "MemoryError"
    (cache_dir,) = (tmp_path / "cache").glob("lbph-*")
    fp = json.loads((cache_dir / "fingerprint.json").read_text())
    assert len(EmbeddingCache(tmp_path / "cache", "lbph", fp)) == 12
    monkeypatch.undo()
    metrics = pipeline.run(cfg, tmp_path / "run2")
    rec = json.loads((tmp_path / "run2" / "record.json").read_text())
    assert rec["extraction"]["computed"] == 0 and rec["extraction"]["from_cache"] == 12
    assert np.isfinite(metrics["threshold"]["value"])
