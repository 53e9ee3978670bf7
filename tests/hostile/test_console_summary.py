"""Issue 13, item 7: the console summary of a finished run, read from its metrics.json (both run
kinds, on the committed baselines): the threshold, each group's headline rates with the counts
behind them, failures to enrol, and the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.runfolder import console_summary

BASELINES = Path(__file__).resolve().parents[2] / "results" / "baselines"


@pytest.mark.parametrize("name, rates", [("lfw-view2-dlib-small", ("fmr", "fnmr")),
                                         ("lfw-search-dlib-small", ("fpir", "fnir"))])
def test_summary_carries_the_headline_numbers(name, rates):
    run = BASELINES / name
    m = json.loads((run / "metrics.json").read_text())
    text = console_summary(m, run, seconds=1.5)
    assert text.startswith(f"evalkit: {m['experiment']} finished in 1.5 s")
    assert f"threshold: {m['threshold']['label']}" in text
    lines = text.splitlines()
    for attr, groups in m["groups"].items():
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"  {attr}:"))
        section = lines[start:start + len(groups)]
        for g, e in groups.items():
            line = next(ln for ln in section if g in ln.replace(f"{attr}:", "").split())
            for r in rates:
                est = e[r]
                if est["n"]:
                    assert f"({est['errors']:,}/{est['n']:,})" in line, (g, r, line)
    img = m["failures"]["images"]
    assert f"{img['fte']['errors']:,} of {img['fte']['n']:,} images could not be embedded" in text
    assert f"run folder: {run}" in text
