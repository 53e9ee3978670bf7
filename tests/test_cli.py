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
    env["EVALKIT_HOME"] = os.environ["EVALKIT_HOME"]   # the session's home: embeddings cached by other tests are reused
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
    assert m["threshold"]["policy"] == "global_fmr" and m["threshold"]["target"] == 1e-3
    assert m["threshold"]["rate"] == "fmr" and m["kind"] == "verification" and m["rates"] == ["fnmr", "fmr"]
    for rate in ("fmr", "fnmr"):
        for key in ("rate", "errors", "n", "subjects", "ci", "upper", "ci_boot", "small", "estimable"):
            assert key in m["overall"][rate]
            for attr in ("sex", "race"):
                for g in m["groups"][attr].values():
                    assert key in g[rate]
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
             "+dataset.numeric_bands.age=[18,30,45,60]", "protocol=generated", "protocol.nonmated=null", "backend=dlib",
             "progress=false"], tmp)
    (run,) = run_dirs(tmp, "mine-generated-dlib")
    m = json.loads((run / "metrics.json").read_text())
    f = m["failures"]
    assert f["images"]["by_reason"] == {"missing_file": 1, "unreadable": 1}
    by = f["by_group"]
    assert by["sex"]["female"]["fte"]["errors"] == 1 and by["sex"]["male"]["fte"]["errors"] == 1
    assert by["age"]["30-44"]["fte"]["errors"] == 1 and by["age"]["unlabelled"]["fte"]["errors"] == 1
    assert m["protocol"]["n_genuine"] == 3 + 6 + 3      # Serena C(3,2), Tony C(4,2), Jennifer C(3,2)
    assert f["comparisons"]["genuine"] == 3 + 2         # Tony's pairs with the missing file, Jennifer's with the broken one
    failed_rows = list(csv.DictReader((run / "failures.csv").open()))
    assert {r["reason"] for r in failed_rows} == {"missing_file", "unreadable"}


def test_threshold_policies_are_named_in_the_run(tmp, lfw_run):
    """per_group_fmr and calibrated (subject split) on real dlib scores (the images of the shared
    lfw_run, already embedded)."""
    small = ["protocol.pairs_per_fold=10", "progress=false", "det_plot=false", "bootstrap.replicates=50"]
    evalkit(["run", "-m", "threshold=per_group_fmr,calibrated", "threshold.target_fmr=0.05", *small], tmp)
    runs = {json.loads(p.read_text())["threshold"]["policy"]: json.loads(p.read_text())
            for p in (tmp / "results" / "multirun").glob("*/*/metrics.json")}
    per, cal = runs["per_group_fmr"], runs["calibrated"]
    assert per["threshold"]["value"] is None and "PER-GROUP" in per["threshold"]["label"]
    own = per["threshold"]["per_group"]["sex"]
    assert own["male"]["n"] > 20
    for g, v in per["groups"]["sex"].items():   # each group's own impostors at its own threshold meet the target
        assert v["fmr"]["n"] == 0 or v["fmr"]["rate"] <= 0.05
    c = cal["threshold"]["calibration"]
    assert "subject-disjoint" in c["source"] and c["n_subjects_calibration"] > 0
    # evaluation and calibration share no subject: the evaluated comparisons are what is left
    assert cal["protocol"]["n_comparisons"] + c["n_genuine"] + c["n_impostor"] + c["dropped_straddling_comparisons"] == 200


def test_exhaustive_protocol_runs_end_to_end_on_real_images(tmp, lfw_root, tmp_path):
    """protocol=exhaustive on a small CSV of real LFW images: every pair counted, no score table."""
    imgs = copy_images(lfw_root, tmp_path, [("Serena_Williams", 1), ("Serena_Williams", 3), ("Serena_Williams", 4),
                                            ("Tony_Blair", 1), ("Tony_Blair", 2), ("Tony_Blair", 3),
                                            ("Jennifer_Lopez", 1), ("Jennifer_Lopez", 2), ("Colin_Powell", 1)])
    sex = {"Serena_Williams": "female", "Tony_Blair": "male", "Jennifer_Lopez": "female", "Colin_Powell": "male"}
    with open(tmp_path / "all.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject", "sex"])
        for p in imgs:
            w.writerow([p.relative_to(tmp_path), p.parent.name, sex[p.parent.name]])
    evalkit(["run", "dataset=csv", f"dataset.path={tmp_path / 'all.csv'}", "dataset.name=four",
             "protocol=exhaustive", "threshold=fixed", "threshold.value=0.6",
             "progress=false"], tmp)
    (run,) = run_dirs(tmp, "four-exhaustive-dlib")
    m = json.loads((run / "metrics.json").read_text())
    assert m["protocol"]["n_comparisons"] == 9 * 8 // 2
    assert m["protocol"]["n_genuine"] == 3 + 3 + 1       # C(3,2) + C(3,2) + C(2,2)
    assert m["groups"]["sex"]["female"]["fnmr"]["n"] == 4 and m["groups"]["sex"]["male"]["fnmr"]["n"] == 3
    assert m["overall"]["fmr"]["errors"] == 0            # dlib keeps these four people apart at 0.6
    assert not (run / "scores.csv").exists() and (run / "report.html").is_file()
