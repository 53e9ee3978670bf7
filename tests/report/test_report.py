"""The report layer reads metrics only: Markdown summary and DET plots."""

from __future__ import annotations

import numpy as np

from evalkit.metrics.summary import summarise
from evalkit.report import markdown, plots
from tests.metrics.test_summary import COMMON, T, table


def metrics():
    m = summarise(table(**T), failure_policy="nonmatch", **COMMON)
    m.update({"dataset": {"name": "synthetic", "n_samples": 3, "n_subjects": 4, "label_sources": {"sex": "hand-made"},
                          "label_coverage": {"sex": {"f": {"subjects": 2, "samples": 1}}}},
              "protocol": {"name": "p", "n_comparisons": 8, "n_genuine": 4, "n_impostor": 4},
              "backend": {"name": "b", "family": "dlib", "distance": "euclidean", "fingerprint": {"model": "x"}}})
    return m


def test_markdown_summary_states_counts_rates_and_label_source():
    text = markdown.render_summary(metrics())
    assert "| f (small† for FNMR and FMR) | 2 | 50.00% (1/2) [" in text   # subjects, FNMR (errors/n) [interval]; 2 subjects: flagged
    assert "mixed (sex differs)" in text and "hand-made" in text
    assert "no_face: 1" in text


def test_det_plot_writes_png_and_svg_and_flags_sparse_groups(tmp_path):
    rng = np.random.default_rng(1)
    curves = {"a": (rng.normal(0.4, 0.1, 300), rng.normal(0.9, 0.1, 3000)), "tiny": (np.array([0.3]), np.array([]))}
    files = plots.det_plot(curves, tmp_path / "det_x", "test", threshold=0.6, min_count=2, formats=plots.FORMATS)
    assert [f.suffix for f in files] == [".png", ".svg", ".pdf"] and all(f.stat().st_size > 1000 for f in files)
    assert "too few" in (tmp_path / "det_x.svg").read_text()
