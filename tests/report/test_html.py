"""The HTML report and the publication plots, on a real small LFW/dlib run folder (``lfw_run``).

The browser-side checks (rendering, console, screenshot) are in test_browser.py; here the HTML is
parsed with the standard library: self-containment, tagged numbers equal to metrics.json, every
section present, v2 blocks rendered with their plain-language readings, graceful degradation.
"""

from __future__ import annotations

import copy
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from evalkit.metrics.results import estimate
from evalkit.report import html as report_html
from evalkit.report import plots


def resolve(obj, key: str):
    """Follow a dotted data-key into metrics.json; keys may themselves contain dots ("0.001")."""
    parts = key.split(".")
    node, i = obj, 0
    while i < len(parts):
        if isinstance(node, list):
            node, i = node[int(parts[i])], i + 1
            continue
        for j in range(len(parts), i, -1):   # longest key first
            k = ".".join(parts[i:j])
            if isinstance(node, dict) and k in node:
                node, i = node[k], j
                break
        else:
            raise KeyError(f"{key}: no {parts[i]!r} under {'.'.join(parts[:i]) or 'metrics.json'}")
    return node


class Page(HTMLParser):
    """Collects tags, attributes, tagged numbers, table captions and text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.nums: list[tuple[str, str]] = []
        self.tables = self.captions = 0
        self.style = ""
        self._in_style = False
        self.text_parts: list[str] = []
        self.feed(text)
        self.text = " ".join(self.text_parts)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "data-key" in a:
            self.nums.append((a["data-key"], a["data-value"]))
        self.tables += tag == "table"
        self.captions += tag == "caption"
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data
        else:
            self.text_parts.append(data)


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    (dest / "report.html").unlink(missing_ok=True)
    return dest


def assert_self_contained(page: Page):
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "base", "audio", "video"), tag
        for name, value in attrs.items():
            v = (value or "").strip().lower()
            assert "://" not in v, (tag, name, value)            # no network reference in any attribute
            if name in ("src", "href", "xlink:href", "srcset", "action", "poster"):
                assert v.startswith("#") or v.startswith("data:"), (tag, name, value)
    assert "@import" not in page.style and "url(" not in page.style.replace("url(#", "")


def test_report_of_lfw_run_is_self_contained_and_shows_every_item(lfw_run):
    out = report_html.write_report(lfw_run)
    assert out == lfw_run / "report.html"
    text = out.read_text()
    page = Page(text)
    assert_self_contained(page)
    assert page.tables >= 5 and page.captions == page.tables           # every table has a caption
    ids = {a.get("id") for t, a in page.tags if t == "section"}
    assert {"headline", "disparity", "tests", "operating", "intersections", "figures", "fte", "provenance",
            "caveats"} <= ids
    m = json.loads((lfw_run / "metrics.json").read_text())
    labels = [a.get("aria-label") for t, a in page.tags if t == "svg"]
    for attr in m["groups"]:
        assert f"DET curves by {attr}" in labels and f"Score distributions by {attr}" in labels
        assert f"Cross-group FMR heatmap by {attr}" in labels
    assert "Failure to enrol by group" in labels
    # provenance and caveats name what produced the run
    rec = json.loads((lfw_run / "record.json").read_text())
    for needle in (m["backend"]["fingerprint"]["model"], rec["images_sha256"], rec["packages"]["numpy"],
                   m["dataset"]["label_sources"]["sex"][:40], "Label coverage", m["failure_policy"],
                   "Intervals:", "Failures to enrol:"):
        assert needle in page.text, needle
    # each attribute's unlabelled/conflict share is stated
    for attr, cov in m["dataset"]["label_coverage"].items():
        for g in ("unlabelled", "conflict", "multiple"):
            if g in cov:
                tot = sum(c["subjects"] for c in cov.values())
                assert f"{g} {cov[g]['subjects']} of {tot} subjects" in page.text
    assert m["schema"] == "evalkit.metrics/3" and "evalkit.metrics/3" in page.text


def test_tagged_numbers_equal_metrics_json(lfw_run):
    page = Page(report_html.render_report(lfw_run))
    m = json.loads((lfw_run / "metrics.json").read_text())
    keys = {k for k, _ in page.nums}
    for attr, groups in m["groups"].items():
        for g in groups:
            for rate in ("fnmr", "fmr"):
                for f in ("rate", "errors", "n", "subjects"):
                    assert f"groups.{attr}.{g}.{rate}.{f}" in keys
        for g in m["failures"]["by_group"][attr]:
            assert f"failures.by_group.{attr}.{g}.fte.rate" in keys
    for k, v in page.nums:
        assert json.loads(v) == resolve(m, k), k
    # a null rate reads "n/a (not estimable)", never 0
    nulls = [(a, g) for a, gs in m["groups"].items() for g, e in gs.items() if e["fmr"]["rate"] is None]
    if nulls:
        a, g = nulls[0]
        assert (f'data-key="groups.{a}.{g}.fmr.rate" data-value="null">n/a (not estimable)<'
                in report_html.render_report(lfw_run))


def test_percent_format():
    assert report_html.pct(None) == "n/a" and report_html.pct(0) == "0%"
    assert report_html.pct(0.0914) == "9.14%" and report_html.pct(0.001) == "0.100%"
    assert report_html.pct(0.000206) == "0.0206%"


def test_report_is_deterministic(lfw_run, tmp_path):
    run = copy_run(lfw_run, tmp_path / "run")
    a = report_html.write_report(run).read_bytes()
    b = report_html.write_report(run).read_bytes()
    assert a == b


def test_cross_counts_match_the_group_rates_metrics_computed(lfw_run):
    """The report's fallback cross-group table (counted from scores.csv) against metrics.json: its
    diagonal is each group's within-group impostor count and false matches (computed by
    metrics/groups.py from the score table), its off-diagonal upper triangle sums to the mixed row."""
    m = json.loads((lfw_run / "metrics.json").read_text())
    assert m["threshold"]["policy"] == "global_fmr" and m["threshold"]["value"] is not None   # one threshold
    scores = report_html.read_scores(lfw_run / "scores.csv", m["failure_policy"])
    for attr, groups in m["groups"].items():
        cx = report_html.cross_counts(scores, attr, m["threshold"]["value"])
        n, fm = np.array(cx["n_impostor"]), np.array(cx["false_matches"])
        assert (n == n.T).all() and (fm == fm.T).all()
        for i, g in enumerate(cx["labels"]):
            if g in groups:
                assert n[i, i] == groups[g]["fmr"]["n"] and fm[i, i] == groups[g]["fmr"]["errors"]
            else:
                assert n[i, i] == 0
        upper = np.triu(np.ones_like(n, dtype=bool), 1)
        assert n[upper].sum() == m["mixed"][attr]["fmr"]["n"]
        assert fm[upper].sum() == m["mixed"][attr]["fmr"]["errors"]
        if "cross_fmr" in m:        # metrics' own matrix, cell for cell
            assert cx["labels"] == m["cross_fmr"][attr]["labels"]
            assert cx["n_impostor"] == m["cross_fmr"][attr]["n_impostor"]
            assert cx["false_matches"] == m["cross_fmr"][attr]["false_matches"]


def _rich(m: dict) -> dict:
    """metrics.json with every optional block filled by hand (values chosen here, not computed), to
    check the renderer; the real numbers come from summary.py."""
    m = copy.deepcopy(m)
    m["min_count"] = {"subjects": 10, "comparisons": 30}
    m["bootstrap"] = {"replicates": 200, "seed": 0, "confidence": 0.95, "unit": "subject"}
    sex = m["groups"]["sex"]
    sex["female"]["fnmr"] = estimate(12, 100, 40, 0.95, "fnmr", ci_boot=[0.08, 0.17])
    sex["female"]["fmr"] = sex["female"]["fmr"] | {"ci_boot": None, "ci_boot_reason": "one replicate only"}
    sex["male"]["fnmr"] = estimate(8, 100, 9, 0.95, "fnmr", (10, 30), ci_boot=[0.05, 0.11])
    sex["male"]["fmr"] = sex["male"]["fmr"] | {"ci_boot": [0.0, 0.01], "ci_boot_reason": None, "small": False,
                                               "small_reason": None}
    sex["female"].update(eer=0.05, accuracy=0.9,
                         fnmr_at_fmr={"0.1": {"fnmr": 0.04, "threshold": 0.6, "achieved_fmr": 0.1, "resolvable": True},
                                      "0.001": {"fnmr": None, "threshold": None, "achieved_fmr": None,
                                                "resolvable": False, "reason": "12 impostors < 1/0.001"}})
    sex["male"].update(eer=0.04, accuracy=0.93,
                       fnmr_at_fmr={"0.1": {"fnmr": 0.03, "threshold": 0.62, "achieved_fmr": 0.1, "resolvable": True},
                                    "0.001": {"fnmr": 0.2, "threshold": 0.4, "achieved_fmr": 0.001, "resolvable": True}})
    m["disparity"] = {"sex": {
        "fnmr_max_min_ratio": {"value": 1.5, "ci": [1.05, 1.62], "reason": None, "definition": "max/min FNMR",
                               "source": "NISTIR 8280", "groups": ["female", "male"]},
        "fmr_max_min_ratio": {"value": None, "ci": None, "reason": "the lowest group FMR is zero",
                              "definition": "max/min FMR", "source": "NISTIR 8280", "groups": ["female", "male"]},
        "garbe": {"value": 0.1234, "ci": [0.05, 0.2], "reason": None, "definition": "Gini", "source": "Howard 2022",
                  "groups": ["female", "male"]},
        "fnmr_ratio_to_reference": {"reference": "male", "definition": "FNMR(g)/FNMR(ref)", "source": "",
                                    "by_group": {"female": {"value": 1.31, "ci": [1.05, 1.62], "reason": None},
                                                 "male": {"value": 1.0, "ci": None, "reason": None}}}}}
    m["tests"] = {"sex": {"fnmr": [{"a": "female", "b": "male", "rate_a": 0.12, "rate_b": 0.08, "difference": 0.04,
                                    "p_value": 0.0123, "method": "subject-clustered permutation"}], "fmr": []}}
    m["intersections"] = {"sex x race": {"female x caucasian": dict(sex["female"])}}
    labels = sorted(sex)
    k = len(labels)
    m["cross_fmr"] = {"sex": {"labels": labels, "false_matches": [[1 if i == j else 0 for j in range(k)] for i in range(k)],
                              "n_impostor": [[50] * k for _ in range(k)],
                              "fmr": [[0.02 if i == j else 0.0 for j in range(k)] for i in range(k)]}}
    return m


def test_every_block_renders_with_plain_language_readings(lfw_run, tmp_path):
    run = copy_run(lfw_run, tmp_path / "run")
    m = _rich(json.loads((run / "metrics.json").read_text()))
    (run / "metrics.json").write_text(json.dumps(m))
    text = report_html.write_report(run).read_text()
    page = Page(text)
    assert_self_contained(page)
    for k, v in page.nums:
        assert json.loads(v) == resolve(m, k), k
    t = " ".join(page.text.split())   # text nodes are joined with spaces
    assert "FNMR for female is 1.31x that for male (95% CI 1.05–1.62)" in t
    assert "the highest group FNMR (female) is 1.50x the lowest (male) (95% CI 1.05–1.62)" in t
    assert "FMR max/min ratio not defined: the lowest group FMR is zero" in t
    assert "GARBE 0.123" in t and "Howard 2022" in t
    assert "subject-clustered permutation" in t and "0.0123" in t
    assert "bootstrap 8.00% – 17.00%" in t and "200 replicates" in t
    assert "not resolvable" in t and "12 impostors < 1/0.001" in t
    assert "female x caucasian" in t and "Intersections" in t
    assert "9 subjects < 10" in t                                    # the small flag's reason, in the caveats
    assert 'class="badge" title="9 subjects &lt; 10"' in text
    assert "Source: metrics.json cross_fmr" in t
    assert 'has no "disparity" block' not in t and 'has no "tests" block' not in t
    for key in ("disparity.sex.fnmr_ratio_to_reference.by_group.female.value", "groups.sex.male.fnmr_at_fmr.0.001.fnmr",
                "tests.sex.fnmr.0.p_value", "intersections.sex x race.female x caucasian.fnmr.rate"):
        assert key in {k for k, _ in page.nums}, key


def test_report_degrades_when_files_are_missing(lfw_run, tmp_path):
    run = copy_run(lfw_run, tmp_path / "run")
    for p in [run / "record.json", run / "scores.csv", *run.glob("det_*"), *run.glob("scores_*")]:
        p.unlink()
    text = report_html.write_report(run).read_text()
    page = Page(text)
    assert_self_contained(page)
    assert "record.json not found" in page.text
    assert "Score distributions: not available (no scores.csv" in page.text
    assert "DET by sex: not available" in page.text
    assert "Failure to enrol by group" in [a.get("aria-label") for t, a in page.tags if t == "svg"]
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        report_html.write_report(tmp_path / "nothing")


def test_det_is_drawn_from_scores_when_the_pipeline_wrote_none(lfw_run, tmp_path):
    run = copy_run(lfw_run, tmp_path / "run")
    for p in run.glob("det_*"):
        p.unlink()
    page = Page(report_html.render_report(run))
    assert "DET curves by sex" in [a.get("aria-label") for t, a in page.tags if t == "svg"]
    assert "(drawn from scores.csv)" in page.text


def test_pipeline_figures_are_inlined_not_redrawn(lfw_run, monkeypatch):
    """With every figure in the run folder, the report draws nothing and never reads scores.csv."""
    def refuse(*a, **k):
        raise AssertionError("the report redrew a figure the pipeline wrote")

    monkeypatch.setattr(report_html, "read_scores", refuse)
    monkeypatch.setattr(report_html.plots, "figure_svg", refuse)
    page = Page(report_html.render_report(lfw_run))
    labels = [a.get("aria-label") for t, a in page.tags if t == "svg"]
    for attr in json.loads((lfw_run / "metrics.json").read_text())["groups"]:
        assert {f"DET curves by {attr}", f"Score distributions by {attr}", f"Cross-group FMR heatmap by {attr}"} <= set(labels)
    assert "Failure to enrol by group" in labels


def test_figures_are_drawn_when_the_run_folder_has_none(lfw_run, tmp_path):
    run = copy_run(lfw_run, tmp_path / "run")
    for p in run.glob("*.svg"):
        p.unlink()
    page = Page(report_html.render_report(run))
    labels = [a.get("aria-label") for t, a in page.tags if t == "svg"]
    for attr in json.loads((run / "metrics.json").read_text())["groups"]:
        assert {f"DET curves by {attr}", f"Score distributions by {attr}", f"Cross-group FMR heatmap by {attr}"} <= set(labels)
    assert "Failure to enrol by group" in labels and "(drawn from scores.csv)" in page.text


def test_cli_report(lfw_run, tmp_path, capsys):
    from evalkit.cli import main

    run = copy_run(lfw_run, tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file() and str(run / "report.html") in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "metrics.json" in capsys.readouterr().err


# --------------------------------------------------------------------------- publication plots


def _svg_text(path: Path) -> str:
    return path.read_text()


def test_save_figure_writes_png_svg_pdf_without_dates(tmp_path):
    fig = plots.score_distribution_plot({"a": (np.array([0.3, 0.4]), np.array([0.8, 0.9, 1.0]))}, "t", threshold=0.6)
    files = plots.save_figure(fig, tmp_path / "x")
    assert [f.suffix for f in files] == [".png", ".svg", ".pdf"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[2].read_bytes()[:5] == b"%PDF-"
    assert all(f.stat().st_size > 1000 for f in files)
    svg = files[1].read_text()
    assert "<dc:date>" not in svg and "Share of class (linear)" in svg and "threshold" in svg
    again = plots.save_figure(plots.score_distribution_plot(
        {"a": (np.array([0.3, 0.4]), np.array([0.8, 0.9, 1.0]))}, "t", threshold=0.6), tmp_path / "y", formats=("svg",))
    assert again[0].read_text() == svg                       # deterministic output


def test_det_plot_keeps_its_signature_and_names_the_scales(tmp_path):
    rng = np.random.default_rng(0)
    curves = {"a": (rng.normal(0.4, 0.1, 200), rng.normal(0.9, 0.1, 2000))}
    files = plots.det_plot(curves, tmp_path / "det", "title", threshold=0.6, min_count=2)
    assert [f.suffix for f in files] == [".png", ".svg"]
    svg = files[1].read_text()
    assert "False match rate (FMR, log scale" in svg and "False non-match rate (FNMR, log scale)" in svg
    assert [f.suffix for f in plots.det_plot(curves, tmp_path / "d2", "t", formats=plots.FORMATS)] == [".png", ".svg", ".pdf"]


def test_cross_fmr_heatmap_log_scale_and_distinct_zero_cells(tmp_path):
    cross = {"labels": ["a", "b", "c"], "false_matches": [[3, 0, 1], [0, 0, 0], [1, 0, 10]],
             "n_impostor": [[1000, 50, 100], [50, 0, 20], [100, 20, 1000]], "fmr": None}
    fig = plots.cross_fmr_heatmap(cross, "heat")
    norm = fig.axes[0].images[0].norm
    from matplotlib.colors import LogNorm

    assert isinstance(norm, LogNorm) and norm.vmin == pytest.approx(0.003) and norm.vmax == pytest.approx(0.01)
    svg = plots.save_figure(fig, tmp_path / "h", formats=("svg",))[0].read_text()
    assert "log colour scale" in svg and "<pattern" in svg       # hatched zero cells
    assert "0/50" in svg and "none" in svg and "3/1000" in svg


def test_failure_to_enrol_plot(tmp_path):
    by_group = {"sex": {"female": {"fte": estimate(3, 100, 50, 0.95, "fte"), "fallbacks": 0},
                        "male": {"fte": estimate(0, 400, 200, 0.95, "fte"), "fallbacks": 0}}}
    svg = plots.save_figure(plots.failure_to_enrol_plot(by_group, "fte"), tmp_path / "f", formats=("svg",))[0].read_text()
    assert "Failure-to-enrol rate" in svg and "linear scale" in svg and "3/100" in svg and "0/400" in svg


def test_compare_groups_plot_several_runs(lfw_run, tmp_path):
    m = json.loads((lfw_run / "metrics.json").read_text())
    other = copy.deepcopy(m)
    for e in other["groups"]["sex"].values():
        if e["fnmr"]["rate"]:
            e["fnmr"]["rate"] = min(1.0, e["fnmr"]["rate"] * 3)
    fig = plots.compare_groups_plot({"dlib": m, "other": other}, "sex", "fnmr")
    ax = fig.axes[0]
    assert "log scale" in ax.get_xlabel() and "FNMR" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == list(m["groups"]["sex"])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("dlib (thr ") and legend[1].startswith("other")
    files = plots.save_figure(fig, tmp_path / "cmp")
    assert all(f.stat().st_size > 1000 for f in files)
    with pytest.raises(ValueError, match="rate must be"):
        plots.compare_groups_plot({"dlib": m}, "sex", "eer")
    with pytest.raises(ValueError, match="no run has groups"):
        plots.compare_groups_plot({"dlib": m}, "age", "fnmr")
