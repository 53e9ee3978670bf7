"""`evalkit compare` carries NIST FRTE's demographic table and the comparison-score shifts (issue 12):
compare_nist.csv, compare_score_shifts.csv and compare.md's two sections, checked cell by cell
against the runs' own metrics.json (the golden 1:1 folders and a small real LFW run), with the
formats written out here, independently of compare.py: a rate as a percentage (2 decimals from 1%,
3 significant digits below), max - min in percentage points (2 decimals), ratios with 2 decimals,
Gini and shifts with 3 significant digits; a missing interval is "not estimable [k]" and note k is
metrics.json's reason. Search runs have neither block, so compare writes neither file."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from evalkit.cli import main as cli_main

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MEASURES = ("overall", "min", "max", "max_min_ratio", "max_minus_min", "max_over_mean", "max_over_geomean", "gini")
KIND = {"overall": "pct", "min": "pct", "max": "pct", "max_min_ratio": "x", "max_minus_min": "pp",
        "max_over_mean": "x", "max_over_geomean": "x", "gini": "g"}


def fmt(kind: str, v) -> str:
    if kind == "pct":
        if v == 0:
            return "0%"
        return f"{100 * v:.2f}%" if abs(100 * v) >= 1 else f"{100 * v:#.3g}%"
    if kind == "pp":
        return f"{100 * v:.2f}"
    if kind == "x":
        return f"{v:.2f}"
    return f"{v:.3g}"


def num(cell: str):
    return None if cell == "" else float(cell)


def tables(md: str) -> dict[str, list[list[str]]]:
    """'### heading' -> the rows (cells) of the table under it, and the numbered notes under it as
    {'notes': {k: text}} in a parallel dict."""
    out, notes, head = {}, {}, None
    for line in md.splitlines():
        if line.startswith("### ") or line.startswith("## "):
            head = line.lstrip("#").strip()
            out.setdefault(head, [])
            notes.setdefault(head, {})
        elif head and line.startswith("| ") and not line.startswith("|---"):
            out[head].append([c.strip() for c in line.strip().strip("|").split(" | ")])
        elif head and re.match(r"\d+\. ", line):
            k, text = line.split(". ", 1)
            notes[head][int(k)] = text
    return {h: rows for h, rows in out.items()}, notes


def expected_cell(e: dict, kind: str, notes: dict, name: str | None = None) -> str:
    """The cell written out; a not-estimable note is looked up in the table's own notes."""
    def ref(reason):
        k = [k for k, t in notes.items() if t == reason]
        assert len(k) == 1, (reason, notes)
        return f"[{k[0]}]"
    if e.get("value") is None:
        return "n/a " + ref(e.get("reason"))
    txt = fmt(kind, e["value"]) + (f" {name}" if name else "")
    if not e.get("ci"):
        return txt + f" (not estimable {ref(e['ci_reason'])})"
    return txt + f" [{fmt(kind, e['ci'][0])}, {fmt(kind, e['ci'][1])}]"


def check_compare(out: Path, runs: list[Path]) -> int:
    """Every NIST and score-shift number of every run in compare's outputs equals metrics.json;
    returns how many numbers were checked."""
    ms = {str(r): json.loads((r / "metrics.json").read_text()) for r in runs}
    checked = 0
    nist_rows = list(csv.DictReader((out / "compare_nist.csv").open()))
    shift_rows = list(csv.DictReader((out / "compare_score_shifts.csv").open()))
    labels = {}
    for row in nist_rows + shift_rows:
        labels[str(Path(row["path"]))] = row["run"]
    by_run = {r: [x for x in nist_rows if str(Path(x["path"])) == str(r)] for r in map(str, runs)}
    assert sum(len(v) for v in by_run.values()) == len(nist_rows)   # no row from elsewhere
    md_tables, md_notes = tables((out / "compare.md").read_text())
    for r, m in ms.items():
        rows = {(x["attribute"], x["rate"], x["measure"]): x for x in by_run[r]}
        assert len(rows) == len(by_run[r]) == sum(len(MEASURES) for _ in m["nist"] for _ in ("fnmr", "fmr"))
        for attr, by_rate in m["nist"].items():
            for rate in ("fnmr", "fmr"):
                t = by_rate[rate]
                head = f"{rate.upper()} by {attr}"
                md_row = [c for c in md_tables[head] if c[0] == labels[r]]
                assert len(md_row) == 1, (head, labels[r])
                for i, name in enumerate(MEASURES):
                    e, x = t[name], rows[(attr, rate, name)]
                    assert num(x["value"]) == e["value"], (attr, rate, name)
                    lo, hi = (e["ci"] or [None, None])
                    assert (num(x["ci_low"]), num(x["ci_high"])) == (lo, hi), (attr, rate, name)
                    assert (x["reason"] or None) == e.get("reason")
                    assert (x["ci_reason"] or None) == (None if e["ci"] else e["ci_reason"])
                    assert x["group"] == ((t["worst"] if name == "max" else t["best"] if name == "min" else None) or "")
                    who = t["worst"] if name == "max" else t["best"] if name == "min" else None
                    assert md_row[0][i + 1] == expected_cell(e, KIND[name], md_notes[head], who), (head, name)
                    checked += 1 + (lo is not None) * 2
        srows = {(x["attribute"], x["group"], x["comparisons"]): x for x in shift_rows if str(Path(x["path"])) == r}
        for attr, block in m["score_shifts"].items():
            head = f"Score shifts by {attr}"
            for g, row in block["by_group"].items():
                md_row = [c for c in md_tables[head] if c[0] == g and c[1] == labels[r]]
                assert len(md_row) == 1, (head, g)
                for j, kind in enumerate(("mated", "non_mated")):
                    e, x = row[kind], srows[(attr, g, kind)]
                    for col, key in (("n", "n"), ("subjects", "subjects"), ("mean_shift", "mean_shift"),
                                     ("standardised_shift", "standardised_shift"), ("ks", "ks")):
                        assert num(x[col]) == e[key], (attr, g, kind, col)
                        checked += 1
                    assert (num(x["mean_shift_ci_low"]), num(x["mean_shift_ci_high"])) == tuple(e["ci"] or [None, None])
                    assert (num(x["standardised_ci_low"]), num(x["standardised_ci_high"])) == \
                        tuple(e["standardised_ci"] or [None, None])
                    cells = md_row[0][2 + 4 * j: 6 + 4 * j]
                    assert cells[0] == f"{e['n']} / {e['subjects']}"
                    assert cells[1] == expected_cell({"value": e["mean_shift"], "ci": e["ci"], "ci_reason": e["ci_reason"],
                                                      "reason": e["ci_reason"]}, "g", md_notes[head])
                    assert cells[2] == expected_cell({"value": e["standardised_shift"], "ci": e["standardised_ci"],
                                                      "ci_reason": e["ci_reason"], "reason": e["ci_reason"]},
                                                     "g", md_notes[head])
                    assert cells[3] == fmt("g", e["ks"])
        assert {(a, g, k) for a, b in m["score_shifts"].items() for g in b["by_group"] for k in ("mated", "non_mated")} \
            == set(srows)
    # units once per column: every NIST header names its unit
    md = (out / "compare.md").read_text()
    for unit in ("overall (%)", "max / min (ratio, 1 = equal)", "max − min (percentage points)",
                 "Gini (index 0–1, 0 = equal)", "mean shift (score units)", "standardised shift (SDs)"):
        assert unit in md
    return checked


def test_compare_golden_runs_carry_nist_and_score_shifts(tmp_path):
    runs = [GOLDEN / "verification" / "base", GOLDEN / "verification" / "worse"]
    assert cli_main(["compare", *map(str, runs), "--out", str(tmp_path)]) == 0
    assert check_compare(tmp_path, runs) > 200
    md = (tmp_path / "compare.md").read_text()
    # the worse run's female FNMR rose: the NIST table names the worst group, and the FNMR of 0 in
    # base's female group makes its max/min undefined with the reason, never a number
    m = json.loads((runs[0] / "metrics.json").read_text())
    assert m["nist"]["sex"]["fnmr"]["max_min_ratio"]["value"] is None
    assert m["nist"]["sex"]["fnmr"]["max_min_ratio"]["reason"] in md


def test_compare_a_real_run_carries_nist_and_score_shifts(lfw_run, tmp_path):
    assert cli_main(["compare", str(lfw_run), "--out", str(tmp_path)]) == 0
    assert check_compare(tmp_path, [lfw_run]) > 30


def test_compare_search_runs_write_no_nist_files(tmp_path):
    runs = [GOLDEN / "search" / "base", GOLDEN / "search" / "worse"]
    assert cli_main(["compare", *map(str, runs), "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "compare_nist.csv").exists() and not (tmp_path / "compare_score_shifts.csv").exists()
    assert "NIST FRTE" not in (tmp_path / "compare.md").read_text()


def test_schema_describes_the_nist_and_score_shift_blocks():
    """metrics.schema.json checks the two blocks compare reads: a KS distance above 1 or a NIST
    table without its Gini coefficient does not conform."""
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "evalkit/schema/metrics.schema.json").read_text())
    m = json.loads((GOLDEN / "verification" / "base" / "metrics.json").read_text())
    jsonschema.validate(m, schema)
    bad = json.loads(json.dumps(m))
    bad["score_shifts"]["sex"]["by_group"]["female"]["mated"]["ks"] = 2.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = json.loads(json.dumps(m))
    del bad["nist"]["sex"]["fnmr"]["gini"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
