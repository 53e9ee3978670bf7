"""`evalkit compare` on one-to-many search runs: synthetic search run folders (seeded embeddings
through the real engine and ``summarise_search``, see test_check_search.py) laid out as a sweep;
every number in compare.csv and every cell of compare.md is checked against the runs' own
metrics.json (formats written out here, independently of compare.py). Mixing search and 1:1
runs is a usage error (exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalkit.cli import main as cli_main
from evalkit.report.compare import CSV_COLUMNS, SEARCH_CSV_COLUMNS
from tests.report.test_check_search import ONE_TO_ONE_BASELINE, search_metrics, write_run

RATES = ("fpir", "fnir", "fnir_rank1")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep folder as `evalkit run -m` leaves it: 0-<experiment>/ the baseline-like run, 1-... the
    run with noisier female probes, 2-... the first at a looser FPIR target (backend names differ
    so the labels are the backend names)."""
    root = tmp_path_factory.mktemp("search_sweep") / "multirun"
    runs = [("a", search_metrics()), ("b", search_metrics(group_noise={"female": 0.9})),
            ("c", search_metrics(target_fpir=0.1, replicates=0))]
    for i, (name, m) in enumerate(runs):
        m["backend"]["name"] = f"synthetic-{name}"
        write_run(root / f"{i}-synthetic-search", m)
    return root


@pytest.fixture(scope="module")
def compared(sweep, tmp_path_factory) -> Path:
    """`evalkit compare RUN RUN RUN --out DIR` on the sweep's run folders, once for the module."""
    out = tmp_path_factory.mktemp("search_compare")
    assert cli_main(["compare", *map(str, run_dirs(sweep)), "--out", str(out)]) == 0
    return out


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def run_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("-")[0]))


def expected(run: Path) -> list[tuple[str, str, dict, dict]]:
    """(attribute, probe group, search entry, failure-to-enrol entry), overall first, then every
    attribute's and intersection's groups sorted, straight from metrics.json."""
    m = metrics(run)
    s, f = m["search"], m["failures"]
    img = f["images"]
    out = [("overall", "all", s["overall"], {"n_images": img["n"], "failed": img["failed"], "rate": img["rate"]})]
    for block in (s["groups"], s["intersections"]):
        for attr, groups in block.items():
            out += [(attr, g, e, f["by_group"].get(attr, {}).get(g, {})) for g, e in sorted(groups.items())]
    return out


def num(cell: str):
    return None if cell == "" else float(cell)


def pct(x) -> str:
    return f"{100 * x:.3g}%"


def cell(e: dict, small: bool) -> str:
    """compare.md's rate cell, written out: rate (errors/n), then the bootstrap interval when it has
    a width, else the exact one marked exact; *small* last."""
    if e["rate"] is None:
        return f"n/a ({e['n']} searches)"
    out = f"{pct(e['rate'])} ({e['errors']}/{e['n']})"
    b = e["ci_boot"]
    if b and b[1] > b[0]:
        out += f" [{pct(b[0])}, {pct(b[1])}]"
    elif e["ci"][0] is not None:
        out += f" [{pct(e['ci'][0])}, {pct(e['ci'][1])}] exact"
    return out + (" *small*" if small else "")


def test_search_sweep_compare_through_the_cli(sweep, capsys):
    code = cli_main(["compare", str(sweep)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "compared 3 runs: synthetic-a, synthetic-b, synthetic-c" in out
    for ext in ("csv", "md", "png", "svg", "pdf"):
        assert (sweep / f"compare.{ext}").is_file(), ext       # default --out: the sweep folder
    assert (sweep / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "compare.pdf").read_bytes()[:5] == b"%PDF-"


def test_every_csv_number_equals_metrics_json(sweep, compared):
    with open(compared / "compare.csv") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == SEARCH_CSV_COLUMNS and reader.fieldnames != CSV_COLUMNS
        rows = list(reader)
    runs = run_dirs(sweep)
    assert len(rows) == sum(len(expected(r)) for r in runs)
    checked = 0
    for run in runs:
        m = metrics(run)
        mine = [r for r in rows if Path(r["path"]) == run]
        exp = expected(run)
        assert [(r["attribute"], r["group"]) for r in mine] == [(a, g) for a, g, _, _ in exp]
        for r, (_, _, e, fte) in zip(mine, exp):
            assert r["run"] == m["backend"]["name"]
            assert num(r["threshold_value"]) == m["threshold"]["value"]
            assert num(r["target_fpir"]) == m["threshold"]["target_fpir"]
            assert num(r["achieved_fpir"]) == m["threshold"]["achieved_fpir"]
            assert num(r["gallery_size"]) == m["search"]["gallery_size"]
            assert num(r["n_mated_probes"]) == m["protocol"]["n_mated_probes"]
            for rate in RATES:
                x = e[rate]
                assert num(r[rate]) == x["rate"]
                assert (num(r[f"{rate}_errors"]), num(r[f"{rate}_n"]), num(r[f"{rate}_n_subjects"])) == \
                    (x["errors"], x["n"], x["n_subjects"])
                assert [num(r[f"{rate}_ci_low"]), num(r[f"{rate}_ci_high"])] == x["ci"]
                assert [num(r[f"{rate}_ci_boot_low"]), num(r[f"{rate}_ci_boot_high"])] == (x["ci_boot"] or [None, None])
                assert num(r[f"{rate}_upper_bound"]) == x["upper_bound"]
                checked += 1
            if "small_fpir" in e:
                assert r["small_fpir"] == str(e["small_fpir"]) and r["small_fnir"] == str(e["small_fnir"])
            assert (num(r["fte_n_images"]), num(r["fte_failed"]), num(r["fte_rate"])) == \
                (fte.get("n_images"), fte.get("failed"), fte.get("rate"))
    assert checked > 100


def test_every_markdown_cell_equals_metrics_json(sweep, compared):
    text = (compared / "compare.md").read_text()
    lines = text.splitlines()
    assert text.startswith("# evalkit compare: one-to-many search runs")
    assert "![FPIR, FNIR and FNIR at rank 1 per probe group, one colour per run](compare.png)" in text
    n_cells = 0
    for run in run_dirs(sweep):
        m = metrics(run)
        label = m["backend"]["name"]
        for attr, g, e, fte in expected(run):
            heading = "## overall" if attr == "overall" else f"## By probe {attr}"
            section = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
            (line,) = [ln for ln in section.splitlines() if ln.startswith(f"| {g} | {label} |")]
            sf, sn = e.get("small_fpir", False), e.get("small_fnir", False)
            ft = "-" if fte.get("rate") is None else f"{pct(fte['rate'])} ({fte['failed']}/{fte['n_images']})"
            want = (f"| {g} | {label} | {e['fpir']['n_subjects']} / {e['fnir']['n_subjects']} | {cell(e['fpir'], sf)} | "
                    f"{cell(e['fnir'], sn)} | {cell(e['fnir_rank1'], sn)} | {ft} |")
            assert line == want, (attr, g)
            n_cells += 3
        # the runs table: threshold, split, overall FPIR and FNIR
        (row,) = [ln for ln in lines if ln.startswith(f"| {label} | {label} | synthetic |")]
        th, o = m["threshold"], m["search"]["overall"]
        assert (f"global_fpir {th['value']:.6g} (target FPIR {th['target_fpir']:g}, achieved "
                f"{pct(th['achieved_fpir'])})") in row
        assert f"| {m['search']['gallery_size']} / {m['search']['candidates']} |" in row
        assert f"| {cell(o['fpir'], False)} | {cell(o['fnir'], False)} |" in row
        # the disparity table
        for attr, d in m["search"]["disparity"].items():
            (drow,) = [ln for ln in lines if ln.startswith(f"| {attr} | {label} |")]
            for rate in ("fpir", "fnir"):
                r = d[f"{rate}_max_min_ratio"]
                if r["value"] is None:
                    assert f"undefined ({r['reason']})" in drow
                else:
                    want = f"{r['value']:.3g}" + (f" [{r['ci'][0]:.3g}, {r['ci'][1]:.3g}]" if r["ci"] else "")
                    assert f"{want} ({' / '.join(r['groups'])})" in drow, (attr, rate, drow)
    assert n_cells > 100
    # the run made worse for female probes shows it, side by side with the first
    fem = [ln for ln in lines if ln.startswith("| female | synthetic-")]
    assert len(fem) == 3
    # the zero-error bootstrap interval is a point: the exact interval is shown instead
    assert "exact" in text


def test_figure_has_a_panel_per_search_rate_and_attribute(compared):
    svg = (compared / "compare.svg").read_text()
    for attr in ("sex", "race"):
        for name in ("FPIR", "FNIR", "FNIR at rank 1"):
            assert f"{name} by {attr}" in svg, (name, attr)
    assert "synthetic-b" in svg and "at FPIR 0.05" in svg and "at FPIR 0.1" in svg
    assert "FNMR" not in svg and "FMR " not in svg


def test_mixing_search_and_one_to_one_runs_exits_2(sweep, tmp_path, capsys):
    code = cli_main(["compare", str(run_dirs(sweep)[0]), str(ONE_TO_ONE_BASELINE), "--out", str(tmp_path / "cmp")])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot compare 1:1 verification runs" in err and "one-to-many search runs" in err
    assert str(ONE_TO_ONE_BASELINE) in err and str(run_dirs(sweep)[0]) in err
    assert not (tmp_path / "cmp" / "compare.csv").exists()
