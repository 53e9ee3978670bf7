"""The README's "Python API" section runs as written: its ```python blocks, in order, in one
namespace, from an empty working folder (results/ lands there), on real LFW ($EVALKIT_DATA_DIR)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_api_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("\n## Python API\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_readme_has_the_python_api_examples():
    blocks = python_api_blocks()
    assert len(blocks) == 3 and "evalkit.run(" in blocks[0] and "evalkit.evaluate(" in blocks[1]
    assert "backend=grey_thumbnail" in blocks[2]


def test_readme_python_api_blocks_run_as_written(tmp_path, monkeypatch, lfw_root):
    monkeypatch.setenv("EVALKIT_DATA_DIR", str(lfw_root.parent))   # as CI sets it
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, block in enumerate(python_api_blocks()):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), ns)
    run, ev, mine = ns["run"], ns["ev"], ns["mine"]
    assert run.folder.resolve().is_relative_to(tmp_path.resolve()) and (run.folder / "report.html").is_file()
    assert len(run.scores) == 200 and mine.metrics["backend"]["fingerprint"]["version"] == "1"
    # evaluate() on the run's own scores sees the same comparisons per group as the run
    for g, e in run.metrics["groups"]["sex"].items():
        assert (ev.metrics["groups"]["sex"][g]["fnmr"]["n"], ev.metrics["groups"]["sex"][g]["fmr"]["n"]) == (
            e["fnmr"]["n"], e["fmr"]["n"])
