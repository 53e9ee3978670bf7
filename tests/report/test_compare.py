"""`evalkit compare` on real runs: a real two-backend sweep through the CLI, and two run folders.
Every number in compare.csv is checked against the runs' own metrics.json."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import main as cli_main
from evalkit.report.compare import CSV_COLUMNS
from tests.report.test_check import WORSE_THRESHOLD, make_run
from tests.report.test_compare_search import assert_csv_matches, assert_markdown_matches, num


@pytest.fixture(scope="module")
def worse_run(tmp_path_factory, lfw_run, lfw_root):
    """The lfw_run's comparisons at a fixed, too permissive threshold (embeddings from the cache)."""
    return make_run(tmp_path_factory.mktemp("worse_cmp") / "run", lfw_root,
                    ["threshold=fixed", f"threshold.value={WORSE_THRESHOLD}"])


def assert_rows_match(rows: list[dict], runs: list[Path]):
    assert assert_csv_matches(rows, runs) > 0


def assert_figure(out: Path):
    for ext in ("png", "svg", "pdf"):
        p = out / f"compare.{ext}"
        assert p.is_file() and p.stat().st_size > 5000, p
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "compare.pdf").read_bytes()[:5] == b"%PDF-"


def test_compare_two_run_folders(lfw_run, worse_run, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli_main(["compare", str(lfw_run), str(worse_run), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert list(rows[0]) == CSV_COLUMNS
    assert_rows_match(rows, [lfw_run, worse_run])
    # both runs use the dlib backend: labels are made unique with the folder name
    assert len({r["run"] for r in rows}) == 2
    thresholds = {r["threshold_policy"] for r in rows}
    assert "fixed" in thresholds and len(thresholds) == 2
    md = (out / "compare.md").read_text()
    m = json.loads((worse_run / "metrics.json").read_text())
    male = m["groups"]["sex"]["male"]
    assert f"({male['fmr']['errors']}/{male['fmr']['n']})" in md         # counts behind the rate
    assert "## By sex" in md and "![FNMR, FMR per group" in md
    labels = {Path(r["path"]): r["run"] for r in rows}
    assert assert_markdown_matches(md, [lfw_run, worse_run], "", labels) > 0
    assert_figure(out)


def test_compare_a_real_two_backend_sweep_through_the_cli(tmp_path, lfw_root):
    """`evalkit run -m backend=dlib,deepface-dlib` then `evalkit compare <sweep folder>`: the sweep is
    expanded, and the outputs land in the sweep folder."""
    env = dict(os.environ)   # the session's EVALKIT_HOME: dlib embeddings come from the lfw_run's cache
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", "-m", "backend=dlib,deepface-dlib",
                           "protocol.pairs_per_fold=2", "progress=false", "det_plot=false", f"results_dir={results}"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep,) = (results / "multirun").iterdir()
    runs = sorted((p.parent for p in sweep.glob("*/metrics.json")), key=lambda p: int(p.name.split("-")[0]))
    assert len(runs) == 2
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "compare", str(sweep)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "compared 2 runs: dlib, deepface-dlib" in proc.stdout
    rows = list(csv.DictReader((sweep / "compare.csv").open()))
    assert_rows_match(rows, runs)
    assert [r["backend"] for r in rows if r["attribute"] == "overall"] == ["dlib", "deepface-dlib"]
    for run in runs:   # run-level numbers too
        m = json.loads((run / "metrics.json").read_text())
        r = next(x for x in rows if Path(x["path"]) == run and x["attribute"] == "overall")
        assert num(r["run_eer"]) == m["eer"] and num(r["lfw_accuracy"]) == m["lfw_accuracy"]["mean"]
        assert num(r["fte"]) == m["failures"]["images"]["fte"]["rate"]
    md = (sweep / "compare.md").read_text()
    assert "| dlib |" in md and "| deepface-dlib |" in md
    assert_figure(sweep)


def test_compare_errors_exit_2(tmp_path, capsys):
    assert cli_main(["compare", str(tmp_path)]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    assert cli_main(["compare", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    assert cli_main(["compare", str(tmp_path / "bad")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("zero", [True, False])
def test_figure_handles_zero_and_null_rates(tmp_path, zero):
    from evalkit.report import plots

    def g(fnmr, fmr, small=False):
        return {"fnmr": {"rate": fnmr, "ci": [0.0, 0.2] if fnmr is not None else None, "upper": 0.15, "small": small},
                "fmr": {"rate": fmr, "ci": [0.0001, 0.01] if fmr is not None else None, "upper": None, "small": False}}

    runs = {"a": {"groups": {"sex": {"f": g(0.0 if zero else 0.1, None, small=True)}}, "threshold": {"value": 0.6}},
            "b": {"groups": {"sex": {"m": g(0.05, 0.001)}}, "threshold": {"value": 0.5, "rate": "fmr", "target": 1e-3}}}
    files = plots.save_figure(plots.compare_runs_figure(runs), tmp_path / "fig")
    assert [f.suffix for f in files] == [".png", ".svg", ".pdf"] and all(f.stat().st_size > 1000 for f in files)
    svg = (tmp_path / "fig.svg").read_text()
    assert "n/a: m" in svg and "n/a: f" in svg       # each run names the group it has no rate for
    assert "log scale" in svg and "FNMR by sex" in svg and "FMR by sex" in svg