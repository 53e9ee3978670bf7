"""Figures drawn in parallel worker processes and reused from the content-addressed cache
(evalkit/report/figures.py): the files are byte for byte those drawn in the run's own process,
a changed input is drawn anew, a figure that fails is counted without losing the others."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import numpy as np

from evalkit.report import figures, plots
from tests.conftest import compose_config

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "golden" / "verification" / "base" / "metrics.json").read_text())


def _curves(shift: float = 0.0) -> dict:
    rng = np.random.default_rng(3)
    return {g: (rng.normal(0.4 + shift, 0.1, n), rng.normal(0.8, 0.1, m))
            for g, (n, m) in {"female": (120, 300), "male": (400, 900)}.items()}


def _jobs(curves, threshold=0.6):
    return [("det", partial(plots.det_figure, curves, "DET by sex", threshold=threshold, min_count=2)),
            ("fte", partial(plots.failure_to_enrol_plot, GOLDEN["failures"]["by_group"], "failure to enrol"))]


def _run(out, jobs, **kw):
    out.mkdir(parents=True, exist_ok=True)
    fj = figures.FigureJobs(**kw)
    for stem, make in jobs:
        fj.add(out / stem, make, ("svg",))
    fj.wait()
    return fj, {stem: (out / f"{stem}.svg").read_bytes() for stem, _ in jobs}


def test_keys_follow_every_input_and_refuse_uncanonical_arguments():
    key = figures.figure_key
    base = key(_jobs(_curves())[0][1], ("svg",))
    assert base == key(_jobs(_curves())[0][1], ("svg",))                      # same inputs, same key
    assert base != key(_jobs(_curves(shift=1e-9))[0][1], ("svg",))            # one score moved
    assert base != key(_jobs(_curves(), threshold=0.61)[0][1], ("svg",))      # another threshold
    assert base != key(_jobs(_curves())[0][1], ("svg", "png"))                # other formats
    assert base != key(partial(plots.det_figure, _curves(), "DET by race", threshold=0.6, min_count=2), ("svg",))
    assert key(partial(plots.det_figure, {"a": (object(), object())}, "x"), ("svg",)) is None


def test_parallel_and_cached_figures_are_the_files_drawn_in_process(tmp_path):
    jobs = _jobs(_curves())
    serial, want = _run(tmp_path / "serial", jobs, workers=1, cache_dir=None)
    assert serial.summary() == {"drawn": 2, "reused": 0, "failed": 0, "workers": 1}
    cache = tmp_path / "figcache"
    par, got = _run(tmp_path / "parallel", jobs, workers=2, cache_dir=cache)
    assert (par.drawn, par.reused) == (2, 0) and got == want
    again, got2 = _run(tmp_path / "again", jobs, workers=2, cache_dir=cache)
    assert (again.drawn, again.reused) == (0, 2) and got2 == want
    # a changed threshold is drawn anew (the DET marks it); the unchanged FTE figure is reused
    changed, got3 = _run(tmp_path / "changed", _jobs(_curves(), threshold=0.55), workers=2, cache_dir=cache)
    assert (changed.drawn, changed.reused) == (1, 1)
    assert got3["fte"] == want["fte"] and got3["det"] != want["det"]


def _broken_figure():
    raise RuntimeError("a plotting bug")


def test_a_figure_that_fails_is_logged_and_counted_and_the_others_are_written(tmp_path, caplog):
    jobs = [("broken", partial(_broken_figure)), *_jobs(_curves())]
    out = tmp_path / "run"
    out.mkdir()
    fj = figures.FigureJobs(workers=1, cache_dir=tmp_path / "c")
    for stem, make in jobs:
        fj.add(out / stem, make, ("svg",))
    with caplog.at_level(logging.WARNING, logger="evalkit"):
        fj.wait()
    assert fj.summary()["failed"] == 1 and fj.summary()["drawn"] == 2
    assert "figure broken could not be drawn: RuntimeError: a plotting bug" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["det.svg", "fte.svg"]


def test_a_run_reuses_its_figures_on_a_rerun_and_they_are_the_same_files(tmp_path, lfw_root, caplog):
    from evalkit.pipeline import run

    over = ["protocol.pairs_per_fold=5", "progress=false", f"data_dir={lfw_root.parent}",
            f"report.figure_cache={tmp_path / 'figs'}"]
    run(compose_config(over + ["report.workers=1", "report.figure_cache=null"]), tmp_path / "plain")
    with caplog.at_level(logging.INFO, logger="evalkit"):
        run(compose_config(over), tmp_path / "first")
        run(compose_config(over), tmp_path / "second")
    assert "figures: 7 drawn, 0 reused" in caplog.text and "figures: 0 drawn, 7 reused" in caplog.text
    svgs = sorted(p.name for p in (tmp_path / "plain").glob("*.svg"))
    assert len(svgs) == 7
    for name in svgs:
        plain = (tmp_path / "plain" / name).read_bytes()
        assert plain == (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name


def test_a_pool_that_cannot_start_falls_back_to_drawing_in_process(tmp_path, monkeypatch):
    """A worker pool that breaks (a sandbox refusing new processes, a killed worker) must not cost
    the run its figures: they are drawn in the run's own process, the same bytes."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    jobs = _jobs(_curves())
    _, want = _run(tmp_path / "serial", jobs, workers=1, cache_dir=None)

    class Broken:
        def __init__(self, *a, **k):
            pass

        def submit(self, *a, **k):
            fut = cf.Future()
            fut.set_exception(BrokenProcessPool("a worker died"))
            return fut

        def shutdown(self):
            pass

    monkeypatch.setattr(figures.cf, "ProcessPoolExecutor", Broken)
    fj, got = _run(tmp_path / "broken", jobs, workers=2, cache_dir=None)
    assert fj.summary()["drawn"] == 2 and fj.summary()["failed"] == 0 and got == want
