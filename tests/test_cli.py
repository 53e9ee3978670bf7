"""End-to-end: the real `evalkit` command on real LFW images with each real Dlib form."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_images

SMALL = ["protocol.pairs_per_fold=2", "progress=false"]


def evalkit(args, tmp, env_extra=None, check=True):
    env = dict(os.environ)
    env["EVALKIT_HOME"] = str(tmp / "home")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", *args, f"results_dir={tmp / 'results'}"],
                          capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"evalkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_dirs(tmp: Path, experiment: str) -> list[Path]:
    return sorted((tmp / "results" / experiment).glob("*/"))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, data_dir):
    return tmp_path_factory.mktemp("cli")


@pytest.mark.parametrize("backend", ["dlib", "deepface-dlib"])
def test_run_writes_the_run_folder(backend, tmp, lfw_root):
    evalkit(["run", f"backend={backend}", *SMALL], tmp)
    (run,) = run_dirs(tmp, f"lfw-lfw_view2-{backend}")
    for name in ("config.yaml", "record.json", "metrics.json", "scores.csv", "failures.csv", "summary.md",
                 "det_sex.png", "det_sex.svg", "det_race.png", "det_race.svg"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    assert m["protocol"]["n_comparisons"] == 40 and m["protocol"]["n_folds"] == 10
    assert m["threshold"]["policy"] == "target_fmr" and m["threshold"]["target_fmr"] == 1e-3
    for key in ("fmr", "fnmr", "n_genuine", "n_impostor", "n_subjects"):
        assert key in m["overall"]
        for attr in ("sex", "race"):
            for g in m["groups"][attr].values():
                assert key in g
    assert set(m["groups"]["sex"]) <= {"male", "female", "conflict", "unlabelled"}
    assert 0.5 < m["lfw_accuracy"]["mean"] <= 1.0 and len(m["lfw_accuracy"]["per_fold"]) == 10
    rows = list(csv.DictReader((run / "scores.csv").open()))
    assert len(rows) == 40 and {"sex_a", "sex_b", "race_a", "race_b", "mated", "score"} <= set(rows[0])
    rec = json.loads((run / "record.json").read_text())
    assert rec["backend_fingerprint"] == m["backend"]["fingerprint"]
    assert any(k.endswith("pairs.txt") for k in rec["dataset_files_sha256"])
    assert rec["packages"]["deepface"] and rec["seed"] == 0


def test_second_identical_run_embeds_nothing_and_metrics_are_byte_identical(tmp, lfw_root):
    evalkit(["run", "backend=dlib", *SMALL], tmp)
    first, second = run_dirs(tmp, "lfw-lfw_view2-dlib")[-2:]
    rec = json.loads((second / "record.json").read_text())
    assert rec["extraction"]["computed"] == 0 and rec["extraction"]["from_cache"] == rec["extraction"]["n_images"]
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()


def test_new_threshold_recomputes_nothing_and_sweeps_with_m(tmp, lfw_root):
    evalkit(["run", "-m", "backend=dlib", "threshold.target_fmr=0.1,0.5", *SMALL], tmp)
    sweeps = sorted((tmp / "results" / "multirun").glob("*/*/metrics.json"))
    assert len(sweeps) == 2
    thresholds = sorted(json.loads(p.read_text())["threshold"]["value"] for p in sweeps)
    assert thresholds[0] < thresholds[1]
    for p in sweeps:
        assert json.loads((p.parent / "record.json").read_text())["extraction"]["computed"] == 0


def test_config_typo_fails_with_a_clear_message(tmp, lfw_root):
    proc = evalkit(["run", "threshold.target_fmrr=1e-4"], tmp, check=False)
    assert proc.returncode != 0
    assert "target_fmrr" in proc.stderr and "ThresholdConfig" in proc.stderr
    proc = evalkit(["run", "backend=dlb"], tmp, check=False)
    assert proc.returncode != 0 and "dlb" in proc.stderr and "deepface-dlib" in proc.stderr
    proc = evalkit(["run", "failure_policy=drop", *SMALL], tmp, check=False)
    assert proc.returncode != 0 and "failure_policy" in proc.stderr


def test_csv_dataset_records_corrupt_and_missing_images_per_group(tmp, lfw_root, tmp_path):
    imgs = copy_images(lfw_root, tmp_path, [("Serena_Williams", 1), ("Serena_Williams", 2), ("Serena_Williams", 3),
                                            ("Tony_Blair", 1), ("Tony_Blair", 2), ("Tony_Blair", 3),
                                            ("Jennifer_Lopez", 1), ("Jennifer_Lopez", 2)])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    rows = [(p.relative_to(tmp_path), p.parent.name) for p in imgs]
    sex = {"Serena_Williams": "female", "Tony_Blair": "male", "Jennifer_Lopez": "female"}
    with open(tmp_path / "mine.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject", "sex", "age"])
        for rel, subj in rows:
            w.writerow([rel, subj, sex[subj], 40])
        w.writerow(["broken.jpg", "Jennifer_Lopez", "female", 40])        # corrupt image
        w.writerow(["Tony_Blair/Tony_Blair_0099.jpg", "Tony_Blair", "male", ""])  # missing file
    evalkit(["run", "dataset=csv", f"dataset.path={tmp_path / 'mine.csv'}", "dataset.name=mine",
             "protocol=generated", "protocol.nonmated=null", "backend=dlib", "progress=false"], tmp)
    (run,) = run_dirs(tmp, "mine-generated-dlib")
    m = json.loads((run / "metrics.json").read_text())
    f = m["failures"]
    assert f["images"]["by_reason"] == {"missing_file": 1, "unreadable": 1}
    assert f["by_group"]["sex"]["female"]["failed"] == 1 and f["by_group"]["sex"]["male"]["failed"] == 1
    assert f["by_group"]["age"]["30-44"]["failed"] == 1 and f["by_group"]["age"]["unlabelled"]["failed"] == 1
    assert m["protocol"]["n_genuine"] == 3 + 6 + 3      # Serena C(3,2), Tony C(4,2), Jennifer C(3,2)
    assert f["comparisons"]["genuine"] == 3 + 2         # Tony's pairs with the missing file, Jennifer's with the broken one
    failed_rows = list(csv.DictReader((run / "failures.csv").open()))
    assert {r["reason"] for r in failed_rows} == {"missing_file", "unreadable"}
