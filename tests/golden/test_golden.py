"""The golden run folders (tests/golden/README.md): reproducible from their seeds, valid against the
schema, and rendered by html, markdown, compare and check to exactly the committed outputs. No
data needed."""

from __future__ import annotations

import json
import math

import pytest

from evalkit.schema import validate_metrics
from tests.golden import make_golden

KINDS = ("verification", "search")


def close(a, b, path="") -> list[str]:
    """Differences between two JSON values: floats to 1e-12 relative, everything else equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in close(x, y, f"{path}.{i}")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    return make_golden.build_runs(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", ["verification/base", "verification/worse", "search/base", "search/worse"])
def test_the_seeded_tables_give_the_committed_metrics(rebuilt, name):
    committed = json.loads((make_golden.HERE / name / "metrics.json").read_text())
    validate_metrics(committed)
    again = json.loads((rebuilt[name] / "metrics.json").read_text())
    assert close(again, committed) == []


def test_the_worse_runs_are_worse_where_they_were_made_worse():
    """Guards the fixtures: the golden check has something to find."""
    def m(name):
        return json.loads((make_golden.HERE / name / "metrics.json").read_text())

    vb, vw = m("verification/base"), m("verification/worse")
    assert vw["groups"]["sex"]["female"]["fnmr"]["errors"] > vb["groups"]["sex"]["female"]["fnmr"]["errors"]
    male = [(x["groups"]["sex"]["male"]["fnmr"]["errors"], x["groups"]["sex"]["male"]["fnmr"]["n"]) for x in (vb, vw)]
    assert male[0] == male[1]
    sb, sw = m("search/base"), m("search/worse")
    assert sw["groups"]["sex"]["female"]["fnir"]["errors"] > sb["groups"]["sex"]["female"]["fnir"]["errors"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden_render")
    texts = {}
    for kind in KINDS:
        texts.update(make_golden.render(kind, out))
    return texts


def test_every_writer_renders_the_expected_output(rendered):
    expected = sorted(p.name for p in (make_golden.HERE / "expected").iterdir())
    assert sorted(rendered) == expected
    for name, text in rendered.items():
        want = (make_golden.HERE / "expected" / name).read_text()
        assert text == want, f"{name} differs from tests/golden/expected/{name}; rerun tests/golden/make_golden.py " \
                             "if the change is deliberate"


def test_the_golden_outputs_show_the_numbers(rendered):
    """The expected files are not empty shells: the check finds the regression, the summary and the
    comparison carry the counts behind the rates."""
    m = json.loads((make_golden.HERE / "verification/worse/metrics.json").read_text())
    f = m["groups"]["sex"]["female"]["fnmr"]
    assert "FAIL" in rendered["verification.check.txt"] and "fnmr_within_baseline_ci  sex" in rendered[
        "verification.check.txt"]
    assert f"({f['errors']}/{f['n']})" in rendered["verification.compare.md"]
    assert "FAIL" in rendered["search.check.txt"] or "PASS" in rendered["search.check.txt"]
    s = json.loads((make_golden.HERE / "search/base/metrics.json").read_text())
    o = s["overall"]["fpir"]
    assert f"({o['errors']}/{o['n']})" in rendered["search.summary.md"]
    assert 'data-key="overall.fpir.rate"' in rendered["search.report.html"]
