"""`evalkit check`, the CI gate, on real small LFW/dlib runs: the baseline's own run passes (exit 0),
a run made worse on purpose fails (exit 1), bad input exits 2 with a clear message. Expected
verdicts are recomputed here from the two metrics.json files, independently of the gate's code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evalkit.cli import main as cli_main
from evalkit.metrics.results import SCHEMA, estimate
from evalkit.report import check
from tests.conftest import compose_config

WORSE_THRESHOLD = 0.75   # a distance well above the lfw_run's threshold (about 0.6): many more false matches
BASELINE = Path(check.__file__).resolve().parents[2] / "results" / "baselines" / "lfw-view2-dlib-small"


def make_run(out: Path, lfw_root: Path, extra: list[str]) -> Path:
    """A real run on the lfw_run's comparisons (embeddings come from the session cache)."""
    from evalkit.pipeline import run

    cfg = compose_config(["protocol.pairs_per_fold=10", "progress=false", "det_plot=false",
                          f"data_dir={lfw_root.parent}", *extra])
    run(cfg, out)
    return out


@pytest.fixture(scope="session")
def worse_run(tmp_path_factory, lfw_run, lfw_root):
    """The lfw_run's comparisons with a fixed threshold far too permissive: FMR rises for every group."""
    return make_run(tmp_path_factory.mktemp("worse") / "run", lfw_root,
                    ["threshold=fixed", f"threshold.value={WORSE_THRESHOLD}"])


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def junit_cases(path: Path) -> dict:
    """name 'rule|attribute/group' -> 'pass' | 'fail' | 'skip' (and the failure message)."""
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    out = {}
    for tc in suite.findall("testcase"):
        rule = tc.get("classname").removeprefix("evalkit.check.")
        state = "fail" if tc.find("failure") is not None else "skip" if tc.find("skipped") is not None else "pass"
        out[f"{rule}|{tc.get('name')}"] = state
    assert int(suite.get("tests")) == len(out)
    assert int(suite.get("failures")) == sum(v == "fail" for v in out.values())
    assert int(suite.get("skipped")) == sum(v == "skip" for v in out.values())
    return out


def expected_fmr_failures(run: dict, base: dict, min_subjects=10, min_comparisons=30) -> set[str]:
    """Independent: a group fails fmr_within_baseline_ci when both sides have enough data and the
    run's FMR exceeds the baseline's Clopper-Pearson upper bound."""
    def enough(g):
        return g["n"] >= min_comparisons and g["subjects"] >= min_subjects and not g["small"]

    out = set()
    pairs = [("overall", "all", base["overall"], run["overall"])]
    pairs += [(a, g, base["groups"][a].get(g), run["groups"][a][g]) for a in run["groups"] for g in run["groups"][a]]
    for a, g, b, r in pairs:
        b, r = (b or {}).get("fmr"), r["fmr"]
        if b and r and r["rate"] is not None and b["ci"] is not None and enough(b) and enough(r):
            if r["rate"] > b["ci"][1]:
                out.add(f"fmr_within_baseline_ci|{a}/{g}")
    return out


def test_baseline_own_run_passes(lfw_run, tmp_path, capsys):
    junit = tmp_path / "j.xml"
    code = cli_main(["check", str(lfw_run), "--baseline", str(lfw_run), "--junit", str(junit),
                     "--report", str(tmp_path / "check.md")])
    out = capsys.readouterr().out
    assert code == 0, out
    cases = junit_cases(junit)
    assert "fail" not in cases.values()
    # the gate really compared something: the overall FMR and FNMR rows were judged
    assert cases["fmr_within_baseline_ci|overall/all"] == "pass"
    assert cases["fnmr_within_baseline_ci|overall/all"] == "pass"
    assert "PASS:" in out and "0 failed" in out
    assert (tmp_path / "check.md").read_text().startswith("# evalkit check")


def test_worse_run_fails_with_the_groups_whose_fmr_left_the_baseline_interval(lfw_run, worse_run, tmp_path):
    run_m, base_m = metrics(worse_run), metrics(lfw_run)
    assert run_m["threshold"]["policy"] == "fixed" and run_m["threshold"]["value"] == WORSE_THRESHOLD
    expected = expected_fmr_failures(run_m, base_m)
    assert "fmr_within_baseline_ci|overall/all" in expected      # the threshold really made it worse
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "evalkit.cli", "check", str(worse_run), "--baseline", str(lfw_run)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = junit_cases(worse_run / "check-junit.xml")   # default location: RUN/check-junit.xml
    failing = {k for k, v in cases.items() if v == "fail"}
    assert {k for k in failing if k.startswith("fmr_within_baseline_ci")} == expected
    assert "Regressions:" in proc.stdout and "above the baseline's upper bound" in proc.stdout
    # the readable diff names the group, the baseline value, the run value and the limit
    o = run_m["overall"]
    assert f"run {o['fmr']['errors']}/{o['fmr']['n']}" in proc.stdout
    assert (worse_run / "check.md").is_file()


def test_failure_message_in_junit_carries_the_numbers(lfw_run, worse_run, tmp_path):
    junit = tmp_path / "j.xml"
    assert cli_main(["check", str(worse_run), "--baseline", str(lfw_run / "metrics.json"), "--junit", str(junit),
                     "--report", str(tmp_path / "c.md")]) == 1
    root = ET.parse(junit).getroot()
    tc = next(t for t in root.iter("testcase") if t.get("name") == "overall/all"
              and t.get("classname") == "evalkit.check.fmr_within_baseline_ci")
    f = tc.find("failure")
    upper = metrics(lfw_run)["overall"]["fmr"]["ci"][1]
    assert f is not None and f"{100 * upper:.3g}%" in f.get("message")


def test_max_ratio_matches_a_hand_computation(lfw_run):
    cfg = check.load_rules(None, ["rules.fnmr_max_min_ratio.min_comparisons=1", "rules.fnmr_max_min_ratio.min_subjects=1",
                                  "rules.fnmr_max_min_ratio.max=1.0"])
    cfg.rules = {"fnmr_max_min_ratio": cfg.rules["fnmr_max_min_ratio"]}
    computed = []
    # the small lfw_run (its female FNMR rests on 19 pairs and is flagged small) and the committed
    # baseline (600 pairs: both sex groups judged, so the ratio itself is checked)
    for m in (metrics(lfw_run), metrics(BASELINE)):
        rows = {r.attribute: r for r in check.evaluate(m, m, cfg)}
        # by hand: sex groups not flagged small for FNMR, with at least one genuine comparison
        g = {k: v["fnmr"] for k, v in m["groups"]["sex"].items()
             if k not in ("unlabelled", "conflict", "multiple") and v["fnmr"]["rate"] is not None
             and not v["fnmr"]["small"]}
        rates = [v["rate"] for v in g.values()]
        row = rows["sex"]
        if len(rates) >= 2 and min(rates) > 0:
            assert row.run == pytest.approx(max(rates) / min(rates))
            assert row.status == ("FAIL" if max(rates) / min(rates) > 1.0 else "PASS")
            computed.append(m["experiment"])
        else:
            assert row.status == "SKIP" and row.run is None and row.message
    assert computed, "no run had two sex groups to take a ratio of: the hand computation was never compared"


def test_max_ratio_reads_the_disparity_block_when_it_used_the_same_groups():
    groups = {"f": {"fnmr": estimate(20, 100, 50, 0.95, "fnmr")},
              "m": {"fnmr": estimate(5, 100, 50, 0.95, "fnmr")},
              "unlabelled": {"fnmr": estimate(90, 100, 50, 0.95, "fnmr")}}
    m = {"groups": {"sex": groups}, "threshold": {"policy": "fixed", "value": 0.5}}
    cfg = check.load_rules(None, ["rules.fnmr_max_min_ratio.max=3"])
    cfg.rules = {"r": cfg.rules["fnmr_max_min_ratio"]}
    (row,) = check.evaluate(m, m, cfg)
    assert row.run == pytest.approx(4.0) and row.status == "FAIL"      # 0.2 / 0.05; unlabelled left out
    m["disparity"] = {"sex": {"fnmr_max_min_ratio": {"value": 2.5, "ci": [1, 5], "reason": None,
                                                     "groups": ["f", "m"]}}}
    (row,) = check.evaluate(m, m, cfg)
    assert row.run == 2.5 and row.status == "PASS" and "source: disparity" in row.message
    m["disparity"]["sex"]["fnmr_max_min_ratio"] = {"value": None, "ci": None, "reason": "zero rate", "groups": ["f", "m"]}
    (row,) = check.evaluate(m, m, cfg)
    assert row.status == "SKIP" and "zero rate" in row.message


@pytest.mark.writes_invalid_metrics
def test_nulls_are_skipped_with_a_reason_never_a_crash(tmp_path, capsys):
    g = {"fmr": estimate(0, 0, 0, 0.95, "fmr"), "fnmr": estimate(0, 0, 0, 0.95, "fnmr")}
    fte = {"fte": estimate(0, 0, 0, 0.95, "fte"), "fallbacks": 0}
    m = {"schema": SCHEMA, "kind": "verification", "groups": {"sex": {"f": dict(g)}}, "overall": dict(g),
         "threshold": {"policy": "global_fmr", "value": None},
         "failures": {"images": {"fte": fte["fte"]}, "by_group": {"sex": {"f": fte}}}}
    for side in ("run", "base"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "metrics.json").write_text(json.dumps(m))
    code = cli_main(["check", str(tmp_path / "run"), "--baseline", str(tmp_path / "base")])
    out = capsys.readouterr().out
    assert code == 0
    cases = junit_cases(tmp_path / "run" / "check-junit.xml")
    assert set(cases.values()) <= {"skip", "pass"} and "skip" in cases.values()
    assert "no FMR in the run" in out
    # fail_on_skip turns the same into a failure
    assert cli_main(["check", str(tmp_path / "run"), "--baseline", str(tmp_path / "base"), "fail_on_skip=true"]) == 1


def test_fte_ceiling_flags_exactly_the_groups_above_it(lfw_run):
    m = metrics(lfw_run)
    cfg = check.load_rules(None, ["rules.fte_ceiling.max=0.0", "rules.fte_ceiling.min_images=1"])
    cfg.rules = {"fte_ceiling": cfg.rules["fte_ceiling"]}
    rows = check.evaluate(m, m, cfg)
    failing = {(r.attribute, r.group) for r in rows if r.status == "FAIL"}
    expected = {(a, g) for a, gs in m["failures"]["by_group"].items() if a in m["groups"]
                for g, f in gs.items() if f["fte"]["errors"] > 0}
    if m["failures"]["images"]["fte"]["errors"]:
        expected.add(("overall", "all"))
    assert failing == expected


def test_usage_and_config_errors_exit_2_with_clear_messages(lfw_run, tmp_path, capsys):
    assert cli_main(["check", str(lfw_run), "--baseline", str(tmp_path / "nowhere")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
    assert cli_main(["check", str(lfw_run)]) == 2                     # --baseline is required
    capsys.readouterr()
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  r:\n    type: max_ratio\n    metric: fnmr\n    maxx: 2\n")
    assert cli_main(["check", str(lfw_run), "--baseline", str(lfw_run), "--rules", str(bad)]) == 2
    assert "Did you mean 'max'" in capsys.readouterr().err
    bad.write_text("rules:\n  r:\n    type: max_ration\n    max: 2\n")
    assert cli_main(["check", str(lfw_run), "--baseline", str(lfw_run), "--rules", str(bad)]) == 2
    assert "Did you mean 'max_ratio'" in capsys.readouterr().err
    bad.write_text("min_cont:\n  subjects: 1\nrules:\n  r:\n    type: fte_ceiling\n    max: 0.1\n")
    assert cli_main(["check", str(lfw_run), "--baseline", str(lfw_run), "--rules", str(bad)]) == 2
    assert "Did you mean 'min_count'" in capsys.readouterr().err
    assert cli_main(["check", str(lfw_run), "--baseline", str(lfw_run), "rules.fte_ceiling.attributes=[sexx]"]) == 2
    assert "Did you mean 'sex'" in capsys.readouterr().err
    assert cli_main(["check", str(lfw_run), "--baseline", str(lfw_run), "rules.fte_ceiling.max=lots"]) == 2
    assert "rules.fte_ceiling.max" in capsys.readouterr().err


def test_committed_baseline_is_a_complete_run_record_and_passes_against_itself(tmp_path):
    base = BASELINE
    for name in ("metrics.json", "config.yaml", "record.json"):
        assert (base / name).is_file(), name
    assert cli_main(["check", str(base), "--baseline", str(base), "--junit", str(tmp_path / "j.xml"),
                     "--report", str(tmp_path / "c.md")]) == 0
