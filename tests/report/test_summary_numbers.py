"""Every number in summary.md is checked against metrics.json (issue 12), the Markdown twin of the
browser test's tagged numbers: the summary is rendered with each number tagged by its metrics.json
path and format (``markdown.render_summary_traced``), and

- the tagged rendering with its tags removed is exactly summary.md (the tags describe the real file);
- every tagged number's text is its metrics.json value formatted by the rule its tag names
  (formats written out here, independently of the renderer: a rate as report.html shows it, 2
  decimals from 1% up and 3 significant digits below; counts as integers; thresholds to 6
  significant digits; ...), interval ends, counts, ratios, thresholds and p-values alike;
- once the tagged numbers and the text copied from metrics.json (labels, reasons, group names)
  are removed, no digit is left but those of a short list of fixed phrases of the renderer
  (standard names such as "ISO/IEC 19795-1"), each of which must occur in the renderer's source.

So an untagged number, a wrong path or a number formatted against its rule fails (the last two
tests show it does). Run on the golden 1:1 and search folders and on small real LFW runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evalkit.report import markdown, mdtag
from tests.report.test_html import resolve

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
TAG = re.compile("\x01([^\x1f]*)\x1f([^\x02]*)\x02([^\x03]*)\x03")


def _pct(v):
    if v == 0:
        return "0%"
    return f"{100 * v:.2f}%" if abs(100 * v) >= 1 else f"{100 * v:#.3g}%"


FORMATS = {
    "pct": _pct, "stat_pct": _pct,
    "pct0": lambda v: f"{round(100 * v):d}%" if abs(100 * v - round(100 * v)) != 0.5 else f"{100 * v:.0f}%",
    "pct1": lambda v: f"{100 * v:.1f}%", "pct2": lambda v: f"{100 * v:.2f}%", "pct3": lambda v: f"{100 * v:.3f}%",
    "pts2": lambda v: f"{100 * v:.2f}", "stat_pp": lambda v: f"{100 * v:.2f}",
    "pp3": lambda v: f"{100 * v:.3g}",
    "int": lambda v: str(int(v)) if isinstance(v, int) and not isinstance(v, bool) else pytest.fail(f"not a count: {v!r}"),
    "g": lambda v: f"{v:g}", "g3": lambda v: f"{v:.3g}", "stat_g": lambda v: f"{v:.3g}", "g6": lambda v: f"{v:.6g}",
    "stat_x": lambda v: f"{v:.2f}",
    "level": lambda v: f"{100 * v:g}%",
    "sha16": lambda v: v[:16],
}

#: digits a summary may show that are no number from metrics.json: names of standards and
#: definitions, and scale descriptions. Each must be in the renderer's source.
FIXED = ("ISO/IEC 19795-10", "ISO/IEC 19795-1", "NISTIR 8271", "FRVT/FRTE 1:N", "FNIR at rank 1", "rank-k",
         "index 0-1 (1 = fair)", "index 0-1 (0 = fair)", "ratio (1 = equal)", "index 0–1 (0 = equal)", "KS (0-1)")
SOURCES = [REPO / "evalkit" / "report" / f for f in ("markdown.py", "stats_sections.py")] + [
    REPO / "evalkit" / "metrics" / "results.py"]


def value_of(m: dict, key: str):
    if mdtag.OVER in key:
        a, b = key.split(mdtag.OVER)
        return sum(resolve(m, k) for k in a.split(mdtag.SUM)) / sum(resolve(m, k) for k in b.split(mdtag.SUM))
    return resolve(m, key)


def _key_number(m: dict, key: str, text: str) -> bool:
    """Format "key": the number is the path's last component (a target FMR used as a key)."""
    resolve(m, key)   # the path exists
    parts = key.split(".")
    return any(key.endswith("." + ".".join(parts[i:])) and _float_g(".".join(parts[i:])) == text
               for i in range(1, len(parts)))


def _float_g(s: str):
    try:
        return f"{float(s):g}"
    except ValueError:
        return None


def metrics_strings(m) -> list[str]:
    """Every string of metrics.json that contains a digit and is not itself a number (values and keys):
    text a summary copies (labels, reasons, group names, sources), longest first."""
    out = set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if re.search(r"\d", str(k)) and _float_g(str(k)) is None:
                    out.add(str(k))
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        elif isinstance(o, str) and re.search(r"\d", o) and _float_g(o) is None:   # never a bare number
            out.add(o)
    walk(m)
    return sorted(out, key=len, reverse=True)


def check_summary(m: dict, traced: str) -> int:
    """Assert every number of the traced summary against metrics.json ``m``; returns the count."""
    tags = TAG.findall(traced)
    for key, kind, text in tags:
        if kind == "key":
            assert _key_number(m, key, text), (key, text)
            continue
        v = value_of(m, key)
        want = "n/a" if v is None else FORMATS[kind](v)
        assert text == want, f"{key}: shown {text!r}, metrics.json {v!r} formatted {kind} is {want!r}"
    rest = TAG.sub(" ", traced)
    for s in metrics_strings(m):
        rest = rest.replace(s, " ")
    for phrase in FIXED:
        rest = rest.replace(phrase, " ")
    left = [rest[max(0, x.start() - 40): x.end() + 40] for x in re.finditer(r"\d", rest)]
    assert not left, f"{len(left)} untagged digit(s) in summary.md, e.g. {left[:3]}"
    return len(tags)


def test_fixed_phrases_are_the_renderers_own():
    src = "".join(p.read_text() for p in SOURCES)
    for phrase in FIXED:
        assert phrase in src, phrase


@pytest.mark.parametrize("run", ["verification/base", "verification/worse", "search/base", "search/worse"])
def test_golden_summary_numbers_equal_metrics_json(run):
    m = json.loads((GOLDEN / run / "metrics.json").read_text())
    traced = markdown.render_summary_traced(m)
    assert mdtag.strip(traced) == markdown.render_summary(m)
    if run.endswith("base"):   # the committed expected file is this rendering
        kind = run.split("/")[0]
        assert mdtag.strip(traced) == (GOLDEN / "expected" / f"{kind}.summary.md").read_text()
    n = check_summary(m, traced)
    keys = {k for k, _, _ in TAG.findall(traced)}
    for attr, groups in m["groups"].items():   # the headline numbers are all there
        for g, e in groups.items():
            for rate in m["rates"]:
                for field in ("rate", "errors", "n"):
                    if (e.get(rate) or {}).get("rate") is not None or field == "n":
                        assert f"groups.{attr}.{g}.{rate}.{field}" in keys, (attr, g, rate, field)
            # subjects: each distinct count once per row, tagged by the first rate that has it
            assert any(f"groups.{attr}.{g}.{rate}.subjects" in keys for rate in m["rates"]), (attr, g)
    assert n > 300


def test_real_run_summary_numbers_equal_metrics_json(lfw_run):
    m = json.loads((lfw_run / "metrics.json").read_text())
    traced = markdown.render_summary_traced(m)
    assert mdtag.strip(traced) == (lfw_run / "summary.md").read_text()
    assert check_summary(m, traced) > 150


def test_real_search_run_summary_numbers_equal_metrics_json(lfw_search_run):
    m = json.loads((lfw_search_run / "metrics.json").read_text())
    traced = markdown.render_summary_traced(m)
    assert mdtag.strip(traced) == (lfw_search_run / "summary.md").read_text()
    assert check_summary(m, traced) > 150


def test_the_check_fails_on_an_untagged_or_wrong_number():
    m = json.loads((GOLDEN / "verification/base/metrics.json").read_text())
    traced = markdown.render_summary_traced(m)
    with pytest.raises(AssertionError, match="untagged digit"):
        check_summary(m, traced.replace("## Overall", "## Overall (42 runs)"))
    wrong = json.loads(json.dumps(m))
    wrong["groups"]["sex"]["male"]["fnmr"]["errors"] += 1   # the summary no longer matches metrics.json
    with pytest.raises(AssertionError, match="groups.sex.male.fnmr.errors"):
        check_summary(wrong, traced)
    # a number shown against its own format rule
    bad = traced.replace(f"\x1fpct\x02{_pct(m['overall']['fmr']['rate'])}\x03", "\x1fpct\x025%\x03", 1)
    assert bad != traced
    with pytest.raises(AssertionError, match="overall.fmr"):
        check_summary(m, bad)
