"""The rule for real-data tests: skip on a developer's machine without data, FAIL in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ONE_TEST = "tests/data/test_lfw.py::test_lfw_counts_and_ids"


def run_without_data(ci: str | None, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["EVALKIT_DATA_DIR"] = str(tmp_path / "no-data-here")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_data_fails_in_ci(ci, tmp_path):
    proc = run_without_data(ci, tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "lfw data not found" in proc.stdout


def test_missing_data_skips_outside_ci(tmp_path):
    proc = run_without_data(None, tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
