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
    """(attribute, group, entry, failure-to-enrol estimate), overall first, then every attribute's
    and intersection's groups sorted, straight from metrics.json (1:1 and search runs alike)."""
    m = metrics(run)
    f = m["failures"]
    out = [("overall", "all", m["overall"], f["images"]["fte"])]
    for block in (m["groups"], m["intersections"]):
        for attr, groups in block.items():
            out += [(attr, g, e, f["by_group"].get(attr, {}).get(g, {}).get("fte", {})) for g, e in sorted(groups.items())]
    return out


def num(cell: str):
    return None if cell == "" else float(cell)


def pct(x) -> str:
    return f"{100 * x:.3g}%"


def cell(e: dict) -> str:
    """compare.md's rate cell, written out: rate (errors/n), then the bootstrap interval when it has
    a width, else the exact one marked exact; *small* last."""
    if e["rate"] is None:
        return f"n/a ({e['n']} trials)"
    out = f"{pct(e['rate'])} ({e['errors']}/{e['n']})"
    b = e["ci_boot"]
    if b and b[1] > b[0]:
        out += f" [{pct(b[0])}, {pct(b[1])}]"
    elif e["ci"] is not None:
        out += f" [{pct(e['ci'][0])}, {pct(e['ci'][1])}] exact"
    return out + (" *small*" if e["small"] else "")


def assert_csv_matches(rows: list[dict], runs: list[Path]) -> int:
    """Every number of compare.csv equals its run's metrics.json; returns how many estimates were checked."""
    assert len(rows) == sum(len(expected(r)) for r in runs)
    checked = 0
    for run in runs:
        m = metrics(run)
        mine = [r for r in rows if Path(r["path"]) == run]
        exp = expected(run)
        assert [(r["attribute"], r["group"]) for r in mine] == [(a, g) for a, g, _, _ in exp]
        for r, (_, _, e, fte) in zip(mine, exp):
            assert num(r["threshold_value"]) == m["threshold"]["value"]
            assert num(r["threshold_target"]) == m["threshold"]["target"]
            assert num(r["threshold_achieved"]) == m["threshold"]["achieved"]
            assert r["threshold_rate"] == m["threshold"]["rate"]
            for rate in m["rates"]:
                x = e[rate]
                assert num(r[rate]) == x["rate"]
                assert (num(r[f"{rate}_errors"]), num(r[f"{rate}_n"]), num(r[f"{rate}_subjects"])) == \
                    (x["errors"], x["n"], x["subjects"])
                assert [num(r[f"{rate}_ci_low"]), num(r[f"{rate}_ci_high"])] == (x["ci"] or [None, None])
                assert [num(r[f"{rate}_boot_low"]), num(r[f"{rate}_boot_high"])] == (x["ci_boot"] or [None, None])
                assert num(r[f"{rate}_upper"]) == x["upper"]
                assert r[f"{rate}_small"] == str(x["small"])
                checked += 1
            assert (num(r["fte_n"]), num(r["fte_errors"]), num(r["fte"])) == \
                (fte.get("n"), fte.get("errors"), fte.get("rate"))
    return checked


def assert_markdown_matches(text: str, runs: list[Path], who: str, labels: dict | None = None) -> int:
    """Every per-group row of compare.md equals its run's metrics.json; returns the cells checked.
    ``labels``: run folder -> its label in compare (default: the backend name)."""
    n_cells = 0
    for run in runs:
        m = metrics(run)
        label = (labels or {}).get(run) or m["backend"]["name"]
        for attr, g, e, fte in expected(run):
            heading = "## overall" if attr == "overall" else f"## By {who}{attr}"
            section = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
            (line,) = [ln for ln in section.splitlines() if ln.startswith(f"| {g} | {label} |")]
            ft = "-" if fte.get("rate") is None else f"{pct(fte['rate'])} ({fte['errors']}/{fte['n']})"
            subj = " / ".join(dict.fromkeys(str(e[r]["subjects"]) for r in m["rates"]))
            want = f"| {g} | {label} | {subj} | " + " | ".join(cell(e[r]) for r in m["rates"]) + f" | {ft} |"
            assert line == want, (attr, g)
            n_cells += len(m["rates"])
        for attr, d in m["disparity"].items():   # the disparity table
            (drow,) = [ln for ln in text.splitlines() if ln.startswith(f"| {attr} | {label} |")]
            for rate in m["rates"]:
                r = d.get(f"{rate}_max_min_ratio")
                if r is None:
                    continue
                if r["value"] is None:
                    assert f"undefined ({r['reason']})" in drow
                else:
                    want = f"{r['value']:.3g}" + (f" [{r['ci'][0]:.3g}, {r['ci'][1]:.3g}]" if r["ci"] else "")
                    assert f"{want} ({' / '.join(r['groups'])})" in drow, (attr, rate, drow)
    return n_cells


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
    for run in runs:
        m = metrics(run)
        for r in (x for x in rows if Path(x["path"]) == run):
            assert r["run"] == m["backend"]["name"]
            assert num(r["gallery_size"]) == m["search"]["gallery_size"]
            assert num(r["n_mated_probes"]) == m["protocol"]["n_mated_probes"]
    assert assert_csv_matches(rows, runs) > 100


def test_every_markdown_cell_equals_metrics_json(sweep, compared):
    text = (compared / "compare.md").read_text()
    lines = text.splitlines()
    assert text.startswith("# evalkit compare: one-to-many search runs")
    assert "![FNIR, FPIR, FNIR at rank 1 per group, one colour per run](compare.png)" in text
    assert assert_markdown_matches(text, run_dirs(sweep), "probe ") > 100
    for run in run_dirs(sweep):
        m = metrics(run)
        label = m["backend"]["name"]
        # the runs table: threshold, split, overall rates
        (row,) = [ln for ln in lines if ln.startswith(f"| {label} | {label} | synthetic /")]
        th, o = m["threshold"], m["overall"]
        assert f"(achieved FPIR {pct(th['achieved'])})" in row and th["label"] in row
        assert f"gallery {m['search']['gallery_size']} subjects / {m['search']['candidates']} candidates" in row
        assert f"| {cell(o['fnir'])} | {cell(o['fpir'])} | {cell(o['fnir_rank1'])} |" in row
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
