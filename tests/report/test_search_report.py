"""Search runs made readable: summary.md, report.html and the figures of a one-to-many run, and
`evalkit check` / `evalkit compare` taking search runs.

Most tests use a synthetic run folder built in the test (seeded embeddings with labelled subjects
through the real engine, ``evalkit.metrics.search.search``, and ``summarise_search``): no data, no
embedding cache, about a second. One test runs the real pipeline on a small LFW search
(``lfw_search_run`` from conftest: needs $EVALKIT_DATA_DIR, fails in CI without it).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main as cli_main
from evalkit.metrics.search import search
from evalkit.metrics.search_summary import summarise_search
from evalkit.report import html as report_html
from evalkit.report import markdown, plots, record
from tests.report.test_html import Page, assert_self_contained, resolve

ATTRS = ("sex", "race")
STEMS = ("cmc", "search_size", "false_candidates", "audit")


def _synthetic_metrics(seed: int = 3) -> dict:
    """A small search: 60 enrolled subjects (one gallery image each), 2 probes for 45 of them and
    1-2 probes for 50 people enrolled nowhere; sex and race labels per subject (one race group
    deliberately small, some subjects unlabelled); one probe and one gallery image without an
    embedding. Scores come from the real engine."""
    rng = np.random.default_rng(seed)
    d, n_enrol, n_out = 16, 60, 50
    n_sub = n_enrol + n_out
    centre = rng.normal(size=(n_sub, d))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    sex = rng.choice(["female", "male"], size=n_sub, p=[0.4, 0.6]).astype(object)
    race = rng.choice(["african", "caucasian", "eastasian"], size=n_sub, p=[0.45, 0.5, 0.05]).astype(object)
    sex[rng.choice(n_sub, 3, replace=False)] = "unlabelled"
    race[rng.choice(n_sub, 8, replace=False)] = "unlabelled"
    subj = np.array([f"s{i:03d}" for i in range(n_sub)])

    def image(s):
        return centre[s] + rng.normal(scale=0.35, size=d) / np.sqrt(d)

    gallery = np.array([image(s) for s in range(n_enrol)])
    gallery[7] = np.nan                                    # an enrolled subject whose image failed
    probe_sub = [s for s in range(45) for _ in range(2)] + [s for s in range(n_enrol, n_sub) for _ in range(1 + s % 2)]
    probe_sub = np.array(probe_sub)
    probes = np.array([image(s) for s in probe_sub])
    probes[3] = np.nan                                     # a mated probe without an embedding
    mate = np.where(probe_sub < n_enrol, probe_sub, -1)
    res = search(probes, gallery, np.arange(n_enrol), mate, sizes=[15, 30, 60], candidates=8)

    image_sub = np.r_[np.arange(n_enrol), probe_sub]
    failures = ["no_face" if i in (7, n_enrol + 3) else "" for i in range(len(image_sub))]
    cov = {a: {g: {"samples": int((lab[image_sub] == g).sum()), "subjects": int(len(np.unique(image_sub[lab[image_sub] == g])))}
               for g in sorted(set(lab[image_sub]))} for a, lab in (("sex", sex), ("race", race))}
    header = {
        "experiment": "synthetic-search",
        "dataset": {"name": "synthetic", "n_samples": len(image_sub), "n_subjects": n_sub, "attributes": list(ATTRS),
                    "label_sources": {"sex": "drawn at random for the test", "race": "drawn at random for the test"},
                    "label_coverage": cov},
        "protocol": {"name": "search", "kind": "search", "gallery_sizes": [15, 30, 60], "n_enrolled_subjects": n_enrol,
                     "n_gallery_images": n_enrol, "gallery_images_per_subject": 1, "n_mated_probes": int((mate >= 0).sum()),
                     "n_nonmated_probes": int((mate < 0).sum()), "n_mated_subjects": 45, "n_nonmated_subjects": n_out,
                     "candidates": 8, "seed": seed, "nonmated_fraction": 0.45, "max_probes_per_subject": 2,
                     "n_comparisons": int(len(probes) * n_enrol)},
        "backend": {"name": "synthetic", "family": "synthetic", "distance": "euclidean",
                    "fingerprint": {"model": "gaussian-clusters", "detector": "none"}},
    }
    return summarise_search(
        res, probe_subjects=subj[probe_sub], probe_groups={"sex": sex[probe_sub], "race": race[probe_sub]},
        column_groups={"sex": sex[:n_enrol], "race": race[:n_enrol]}, threshold_policy="global_fpir", target_fpir=0.05,
        threshold_value=None, failure_policy="nonmatch", confidence=0.95, image_failures=failures,
        image_groups={"sex": sex[image_sub], "race": race[image_sub]}, header=header, min_count=(10, 20),
        intersections=[["sex", "race"]], bootstrap={"replicates": 200, "seed": 0},
        audit=[{"threshold": 0.5, "source": "a vendor's default (test)"}, {"threshold": 0.9, "source": "a looser one"}])


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    """A search run folder as the pipeline leaves it, minus the embedding work: metrics.json,
    record.json, the figures (drawn by the pipeline's own ``_metric_plots``), summary.md."""
    from evalkit.pipeline import _metric_plots

    out = tmp_path_factory.mktemp("search_report") / "run"
    out.mkdir()
    m = _synthetic_metrics()
    record.write_json(out / "metrics.json", m)
    record.write_json(out / "record.json", {"evalkit_record": 1, "command": "test", "seed": 0, "packages": {"numpy": np.__version__},
                                            "images_sha256": "0" * 64})
    _metric_plots(out, json.loads((out / "metrics.json").read_text()))
    (out / "summary.md").write_text(markdown.render_summary(json.loads((out / "metrics.json").read_text())))
    return out


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_synthetic_run_has_what_the_report_needs(synthetic_run):
    """Guards the fixture: small and not-small groups, zero and non-zero rates, failures, two audits."""
    m = _metrics(synthetic_run)
    s = m["search"]
    assert m["groups"]["race"]["eastasian"]["fpir"]["small"] and not m["groups"]["race"]["caucasian"]["fpir"]["small"]
    assert s["failed_searches"]["mated_probe_failed"] == 1 and s["failed_searches"]["mate_not_enrolled"] >= 1
    assert len(s["audit"]) == 2 and m["overall"]["fpir"]["errors"] > 0
    assert m["groups"]["race"]["caucasian"]["fpir"]["ci_boot"] is not None


def _is_svg(p: Path) -> bool:
    t = p.read_text()
    return p.stat().st_size > 2000 and "<svg" in t and t.rstrip().endswith("</svg>")


def test_pipeline_writes_every_search_figure(synthetic_run):
    for attr in ATTRS:
        for stem in STEMS:
            svg, png, pdf = (synthetic_run / f"{stem}_{attr}.{ext}" for ext in ("svg", "png", "pdf"))
            assert _is_svg(svg), svg
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, png
            assert pdf.read_bytes()[:5] == b"%PDF-", pdf
    assert (synthetic_run / "fte.svg").is_file()
    assert not list(synthetic_run.glob("cross_fmr_*"))      # no 1:1 figures in a search run


def test_figures_show_groups_counts_and_flags(synthetic_run):
    m = _metrics(synthetic_run)
    s = m["search"]
    cmc = (synthetic_run / "cmc_race.svg").read_text()
    for g, e in s["cmc"]["groups"]["race"].items():
        if e["n"]:
            assert f"{g} ({e['n']} searches / {e['subjects']} subjects" in cmc
    assert "eastasian" in cmc and re.search(r"eastasian \(\d+ searches / \d+ subjects\), small", cmc)
    assert f"all mated probes ({s['cmc']['overall']['n']} searches" in cmc
    size = (synthetic_run / "search_size_sex.svg").read_text()
    assert "Gallery size (enrolled subjects" in size
    for n in s["by_gallery_size"]["sizes"]:
        assert f">{n}<" in size
    fc = (synthetic_run / "false_candidates_race.svg").read_text()
    for c, share in s["false_candidates"]["race"]["gallery_share"].items():
        assert f"{100 * share:.1f}% of gallery" in fc, c
    total = np.asarray(s["false_candidates"]["race"]["nonmated"]["false_candidates"])
    assert total.sum() > 0
    audit = (synthetic_run / "audit_sex.svg").read_text()
    for a in s["audit"]:
        o = a["overall"]["fpir"]
        assert f"{o['errors']} of {o['n']} non-mated probes falsely matched" in audit


def test_figure_functions_handle_zero_and_empty_groups():
    m = _synthetic_metrics()
    s = m["search"]
    by = json.loads(json.dumps(s["by_gallery_size"]))
    g = by["groups"]["sex"]["female"]["fpir"]
    for e in g:                                 # a group with no false positive at any size
        e.update(rate=0.0, errors=0, upper=0.05, ci=[0.0, 0.05], ci_boot=[0.0, 0.0])
    by["groups"]["sex"]["male"]["fnir"] = [dict(e, rate=None, errors=0, n=0, subjects=0, ci=None, ci_boot=None)
                                           for e in by["groups"]["sex"]["male"]["fnir"]]
    text = plots.figure_svg(plots.gallery_size_figure(by, "sex", "zeros"))
    assert "male: no mated searches" in text and "0 observed: 95% upper bound" in text
    cmc = json.loads(json.dumps(s["cmc"]))
    cmc["groups"]["sex"]["female"].update(n=0, subjects=0, rate=[None] * len(cmc["ranks"]), ci_boot=None)
    assert "no mated searches: female" in plots.figure_svg(plots.cmc_figure(cmc, "sex", "empty"))
    fc = json.loads(json.dumps(s["false_candidates"]["sex"]))
    fc["nonmated"]["false_candidates"] = [[0] * len(fc["candidate_labels"]) for _ in fc["probe_labels"]]
    assert "row without false candidates" in plots.figure_svg(plots.false_candidates_heatmap(fc, "none"))


# --------------------------------------------------------------------------- summary.md


def _md_pct(x) -> str:
    """The summary's percentage format, written out independently: 2 decimals from 1% up, 3
    significant digits below, 0 as 0%."""
    if x == 0:
        return "0%"
    return f"{100 * x:.2f}%" if 100 * x >= 1 else f"{100 * x:#.3g}%"


def _md_rate(e) -> str:
    if e["rate"] is None:
        return f"n/a ({e['n']} trials)"
    out = f"{_md_pct(e['rate'])} ({e['errors']}/{e['n']})"
    if e["ci_boot"]:
        out += f" [{_md_pct(e['ci_boot'][0])}, {_md_pct(e['ci_boot'][1])}]"
    elif e["ci"] is not None:
        out += f" [{_md_pct(e['ci'][0])}, {_md_pct(e['ci'][1])}] exact"
    return out


def test_summary_has_every_group_rate_with_its_interval(synthetic_run):
    m = _metrics(synthetic_run)
    s = m["search"]
    text = (synthetic_run / "summary.md").read_text()
    assert text == markdown.render_summary(m)
    rows = {line.split(" | ")[0].lstrip("| ").split(" (small")[0]: line for line in text.splitlines() if line.startswith("| ")}
    for attr in ATTRS:
        assert f"## By probe {attr}" in text
        for g, e in m["groups"][attr].items():
            line = next(ln for ln in text.split(f"## By probe {attr}\n", 1)[1].splitlines() if ln.startswith(f"| {g}"))
            for r in ("fpir", "fnir", "fnir_rank1"):
                assert _md_rate(e[r]) in line, (attr, g, r, line)
            if e["fpir"]["small"] or e["fnir"]["small"]:
                assert "small†" in line
            if e["fpir"]["rate"] == 0:
                assert f"95% upper bound {_md_pct(e['fpir']['upper'])}" in line
    assert _md_rate(m["overall"]["fpir"]) in rows["**all**"]
    # the header, the threshold and the split counts
    pr, th = m["protocol"], m["threshold"]
    for needle in (f"{pr['n_enrolled_subjects']} enrolled subjects", f"{pr['n_mated_probes']} mated probes",
                   f"{pr['n_nonmated_probes']} non-mated probes", f"L = {s['candidates']}", f"**{th['value']:.6g}**",
                   "gallery sizes 15, 30, 60", "drawn at random for the test", "unlabelled"):
        assert needle in text, needle
    # CMC at ranks 1, 5 and L, gallery sizes, false candidates, audits, caveats
    assert "| probe group | mated searches / subjects | CMC(1) | CMC(5) | CMC(8) |" in text
    f_cmc1 = s["cmc"]["groups"]["sex"]["female"]["rate"][0]
    assert f"{100 * f_cmc1:.1f}%" in text
    assert "| probe group | 15 | 30 | 60 |" in text
    for a in s["audit"]:
        fp = a["overall"]["fpir"]
        assert (f"Of {fp['n']} people not in the database" in text
                and f"**{fp['errors']} ({_md_pct(fp['rate'])}) got at least one false candidate** at threshold "
                    f"{a['threshold']:.6g}" in text)
        for attr in ATTRS:
            for g, e in a["groups"][attr].items():
                if fp["errors"] == 0:     # nobody falsely matched: no share of them, said so
                    assert e["share_of_falsely_matched"] is None
                    assert (f"- {g}: makes up {100 * e['share_of_nonmated_probes']:.1f}% of the non-mated probes "
                            "(nobody was falsely matched)") in text
                    continue
                assert (f"- {g}: makes up {100 * e['share_of_falsely_matched']:.1f}% of those falsely matched and "
                        f"{100 * e['share_of_nonmated_probes']:.1f}% of the non-mated probes") in text
    for needle in ("resample probe subjects", "not gallery subjects", "Failed searches: 1 mated"):
        assert needle in text, needle


def test_summary_disparity_reads_value_interval_or_reason(synthetic_run):
    m = _metrics(synthetic_run)
    text = (synthetic_run / "summary.md").read_text()
    for attr in ATTRS:
        for rate in ("fpir", "fnir"):
            name = f"{rate}_max_min_ratio"
            d = m["disparity"][attr][name]
            section = text.split("## Disparity summaries\n", 1)[1].split(f"### {attr}\n", 1)[1].split("\n### ", 1)[0]
            if d["value"] is None:
                assert f"| {name} | n/a |  | {d['reason']} |" in section
            elif d["ci"]:
                assert f"| {name} | {d['value']:.3g} | {d['ci'][0]:.3g}–{d['ci'][1]:.3g} |" in section
            else:
                assert f"| {name} | {d['value']:.3g} |  | no interval: " in section


# --------------------------------------------------------------------------- report.html


def test_search_report_numbers_equal_metrics_json(synthetic_run):
    page = Page(report_html.render_report(synthetic_run))
    m = _metrics(synthetic_run)
    s = m["search"]
    keys = {k for k, _ in page.nums}
    assert len(page.nums) > 300
    for k, v in page.nums:
        assert json.loads(v) == resolve(m, k), k
    for attr in ATTRS:
        for g in m["groups"][attr]:
            for r in ("fpir", "fnir", "fnir_rank1"):
                for f in ("rate", "errors", "n", "subjects"):
                    assert f"groups.{attr}.{g}.{r}.{f}" in keys
        for g, e in m["groups"][attr].items():
            if e["fpir"]["ci_boot"]:
                assert f"groups.{attr}.{g}.fpir.ci_boot" in keys
        for j in range(len(s["by_gallery_size"]["sizes"])):
            assert f"search.by_gallery_size.groups.{attr}.female.fpir.{j}.rate" in keys or attr != "sex"
    for j in range(len(s["by_gallery_size"]["sizes"])):
        assert f"search.by_gallery_size.overall.fpir.{j}.rate" in keys
        assert f"search.by_gallery_size.overall.fnir.{j}.rate" in keys
    for i in range(len(s["audit"])):
        assert f"search.audit.{i}.overall.fpir.rate" in keys and f"search.audit.{i}.threshold" in keys
    for k in ("overall.fpir.rate", "overall.fnir.rate", "threshold.value", "threshold.achieved",
              "search.cmc.overall.rate.0", "failures.images.fte.rate", "search.failed_searches.mated_probe_failed"):
        assert k in keys, k


def test_search_report_sections_figures_and_self_containment(synthetic_run):
    out = report_html.write_report(synthetic_run)
    page = Page(out.read_text())
    assert_self_contained(page)
    assert page.captions == page.tables >= 10
    ids = {a.get("id") for t, a in page.tags if t == "section"}
    assert {"headline", "disparity", "cmc", "gallery-size", "false-candidates", "audit", "intersections", "fte",
            "provenance", "caveats"} <= ids
    labels = [a.get("aria-label") for t, a in page.tags if t == "svg"]
    for attr in ATTRS:
        for what in ("CMC by", "FPIR and FNIR against gallery size by", "False candidates by", "Audit at fixed thresholds by"):
            assert f"{what} {attr}" in labels, (what, attr)
    assert "Failure to enrol by group" in labels
    assert "drawn from metrics.json" not in page.text          # the pipeline's own SVGs were inlined
    m = _metrics(synthetic_run)
    for needle in ("one-to-many", "gaussian-clusters", "resample probe subjects", "drawn at random for the test",
                   "people not in the database", "makes up", m["threshold"]["label"]):
        assert needle in page.text, needle


def test_search_report_draws_missing_figures_from_metrics(synthetic_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(synthetic_run, run)
    for p in run.glob("*.svg"):
        p.unlink()
    page = Page(report_html.render_report(run))
    labels = [a.get("aria-label") for t, a in page.tags if t == "svg"]
    assert "CMC by sex" in labels and "Audit at fixed thresholds by race" in labels
    assert "drawn from metrics.json" in page.text
    m = _metrics(run)
    for k, v in page.nums:
        assert json.loads(v) == resolve(m, k), k


def test_one_to_one_report_keeps_its_protocol_line():
    """The provenance line adapts to search runs without touching 1:1 runs."""
    m = {"protocol": {"name": "lfw_view2", "n_comparisons": 6000, "n_genuine": 3000, "n_impostor": 3000, "n_folds": 10}}
    text = report_html._provenance_section(m, {})
    assert "lfw_view2: 6000 comparisons (3000 genuine, 3000 impostor), 10 folds" in text
    m["protocol"] = {"name": "search", "kind": "search", "n_enrolled_subjects": 60, "n_gallery_images": 60,
                     "n_mated_probes": 90, "n_nonmated_probes": 75, "n_comparisons": 9900, "seed": 3}
    assert "search (one-to-many): 60 enrolled subjects (60 gallery images), 90 mated" in report_html._provenance_section(m, {})


# --------------------------------------------------------------------------- check / compare


def test_check_and_compare_take_search_runs(synthetic_run, tmp_path, capsys):
    """Search runs are gated and compared (tests/report/test_check_search.py and
    test_compare_search.py test them in depth): the search rules are chosen by themselves, and a
    search run against the committed 1:1 baseline is a usage error."""
    code = cli_main(["check", str(synthetic_run), "--baseline", str(synthetic_run), "--junit", str(tmp_path / "j.xml"),
                     "--report", str(tmp_path / "c.md")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fnir_within_baseline_ci" in out and "FPIR for all probes" in (tmp_path / "c.md").read_text()
    one_to_one = Path(__file__).resolve().parents[2] / "results" / "baselines" / "lfw-view2-dlib-small"
    code = cli_main(["check", str(synthetic_run), "--baseline", str(one_to_one), "--junit", str(tmp_path / "j2.xml")])
    assert code == 2 and "one-to-many search run" in capsys.readouterr().err
    assert not (tmp_path / "j2.xml").exists()
    code = cli_main(["compare", str(synthetic_run), "--out", str(tmp_path / "cmp")])
    capsys.readouterr()
    assert code == 0
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("# evalkit compare: one-to-many search runs")


# --------------------------------------------------------------------------- the real pipeline


@pytest.mark.slow
def test_real_search_run_folder_is_readable(lfw_search_run):
    """`evalkit run protocol=search` on LFW (small, dlib) finishes with summary, figures and report."""
    m = _metrics(lfw_search_run)
    assert m["protocol"]["kind"] == "search"
    text = (lfw_search_run / "summary.md").read_text()
    for attr in m["groups"]:
        for g, e in m["groups"][attr].items():
            assert _md_rate(e["fpir"]) in text and _md_rate(e["fnir"]) in text, (attr, g)
        for stem in STEMS:
            assert _is_svg(lfw_search_run / f"{stem}_{attr}.svg"), (stem, attr)
    page = Page((lfw_search_run / "report.html").read_text())
    assert_self_contained(page)
    assert "drawn from metrics.json" not in page.text
    for k, v in page.nums:
        assert json.loads(v) == resolve(m, k), k


@pytest.mark.slow
def test_search_report_in_chromium(synthetic_run, tmp_path):
    """The search report in headless chromium (test_browser.py's driver): loads offline without
    errors, every tagged number equals metrics.json and shows it, every figure is drawn."""
    from tests.report.test_browser import open_page

    report = report_html.write_report(synthetic_run)
    m = _metrics(synthetic_run)
    page = open_page(report, tmp_path / "chromium-profile")
    assert page["console"] == [] and page["exceptions"] == [] and page["log_errors"] == [] and page["failed"] == []
    assert [u for u in page["requests"] if not u.startswith("data:")] == [report.resolve().as_uri()]
    dom = page["dom"]
    assert len(dom["nums"]) > 300
    for key, value, text in dom["nums"]:
        expected = resolve(m, key)
        assert json.loads(value) == expected, key
        if key.endswith(".rate") and isinstance(expected, float):
            assert text == report_html.pct(expected), (key, text)
        if isinstance(expected, int) and not isinstance(expected, bool):
            assert text == str(expected), (key, text)
    for section in ("headline", "disparity", "cmc", "gallery-size", "false-candidates", "audit", "fte", "provenance",
                    "caveats"):
        assert section in dom["sections"]
    labels = [f[0] for f in dom["figures"]]
    assert len(labels) == 4 * len(ATTRS) + 1 and "CMC by race" in labels
    assert all(w > 300 and h > 150 for _, w, h in dom["figures"]), dom["figures"]
    assert dom["captions"] == 0
    assert page["png"][:8] == b"\x89PNG\r\n\x1a\n" and page["height"] > 3000
