"""The partial audits end to end on real LFW images through dlib: an impostor-only set (one LFW
image per person) and an enrolment-only set (LFW images with labels, identities withheld: the
FairFace layout), each with report.html, summary.md, check and compare; and a threshold carried
from another run."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest

from tests.conftest import compose_config
from tests.data.fixtures import build_csv, build_fairface, one_per_person, pick_people


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def impostor_run(lfw_samples, tmp_path_factory):
    from evalkit.pipeline import run

    root = tmp_path_factory.mktemp("impostor")
    fx = build_csv(one_per_person(lfw_samples), root / "data")
    out = root / "run"
    m = run(compose_config(["dataset=csv", f"dataset.path={fx.root / 'faces.csv'}", "dataset.name=oneshot",
                            "protocol=impostor", "progress=false", "det_plot=true"]), out)
    return fx, out, m


def test_impostor_only_run(impostor_run, lfw_samples):
    fx, out, m = impostor_run
    n = len(fx.people)                       # 24 people, one image each
    assert m["protocol"]["kind"] == "impostor" and m["protocol"]["n_genuine"] == 0
    assert m["protocol"]["n_impostor"] == n * (n - 1) // 2
    rows = _rows(out / "scores.csv")
    assert len(rows) == n * (n - 1) // 2 and not any(int(r["mated"]) for r in rows)
    # FMR per group against a count by hand from scores.csv and the LFW labels
    t = m["threshold"]["value"]
    sex = {p.name: p.sex for p in fx.people}
    for g in ("female", "male"):
        sel = [r for r in rows if sex[r["subject_a"]] == sex[r["subject_b"]] == g]
        e = m["groups"]["sex"][g]
        assert e["fmr"]["n"] == len(sel) == 66
        assert e["fmr"]["errors"] == sum(float(r["score"]) <= t for r in sel)
        assert e["fmr"]["ci"][1] > 0
        assert e["fnmr"]["rate"] is None and e["fnmr"]["estimable"] is False and "not measurable" in e["fnmr"]["reason"]
        # the subject-clustered bootstrap beside the exact interval (or why it is not estimable)
        assert (e["fmr"]["ci_boot"] is not None) != (e["fmr"]["ci_boot_reason"] is not None)
        assert "not computed" not in (e["fmr"]["ci_boot_reason"] or "")
    assert m["bootstrap"]["replicates"] > 0 and "conservative" in m["bootstrap"]["note"]
    assert m["cross_fmr"]["sex"]["n_impostor"] == [[66, 144], [144, 66]]
    assert m["threshold"]["policy"] == "global_fmr" and m["threshold"]["n"] == n * (n - 1) // 2
    assert m["schema"] == "evalkit.metrics/3" and m["rates"] == ["fnmr", "fmr"]
    md = (out / "summary.md").read_text()
    assert "What this data can and cannot show" in md and "FNMR is reported as not measurable" in md
    html = (out / "report.html").read_text()
    assert 'id="scope"' in html and "Cannot show" in html and "not measurable" in html
    assert (out / "cross_fmr_sex.svg").is_file()   # figures are SVG unless report.formats asks for more


def test_impostor_only_check_and_compare(impostor_run, tmp_path, capsys):
    from evalkit.cli import main

    _, out, m = impostor_run
    assert main(["check", str(out), "--baseline", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fmr_within_baseline_ci" in text and "PASS" in text
    assert "FNMR max/min not judged" in text            # no genuine comparisons: skipped, never 0
    assert main(["compare", str(out), "--out", str(tmp_path / "cmp")]) == 0
    table = _rows(tmp_path / "cmp" / "compare.csv")
    female = [r for r in table if r["attribute"] == "sex" and r["group"] == "female"][0]
    assert int(female["fmr_n"]) == 66 and female["fnmr"] == ""


def test_impostor_refuses_calibrated_threshold(tmp_path):
    from evalkit.config import ConfigError, validate

    cfg = compose_config(["dataset=csv", "dataset.path=x.csv", "dataset.name=x", "protocol=impostor",
                          "threshold=per_group_fmr"])
    with pytest.raises(ConfigError, match="not available with protocol=impostor"):
        validate(cfg)


@pytest.fixture(scope="module")
def enrolment_run(lfw_samples, tmp_path_factory):
    from evalkit.pipeline import run

    root = tmp_path_factory.mktemp("enrolment")
    people = pick_people(lfw_samples)
    fx = build_fairface(people, root / "fairface")
    (fx.root / "val" / "3.jpg").unlink()                 # a listed image missing: a recorded failure
    out = root / "run"
    m = run(compose_config(["dataset=fairface", f"dataset.root={fx.root}", "protocol=enrolment", "progress=false"]), out)
    return fx, out, m


def test_enrolment_only_run(enrolment_run):
    fx, out, m = enrolment_run
    en = m["enrolment"]
    assert m["protocol"]["kind"] == "enrolment" and m["protocol"]["n_images"] == len(fx.source) == 42
    fails = _rows(out / "failures.csv")
    assert {f["sample"]: f["reason"] for f in fails}.get("val/3.jpg") == "missing_file"
    for attr in ("sex", "race", "age"):
        total = sum(e["fte"]["n"] for e in en["groups"][attr].values())
        assert total == 42
        for g, e in en["groups"][attr].items():
            by_hand = [f for f in fails if f[attr] == g]
            assert e["fte"]["errors"] == len(by_hand), (attr, g)
            assert sum(e["by_reason"].values()) == len(by_hand)
    assert en["overall"]["fte"]["errors"] == len(fails) >= 1
    assert "sex x race" in en["intersections"]
    assert sum(e["fte"]["n"] for e in en["intersections"]["sex x race"].values()) == 42
    assert m["groups"]["sex"]["female"]["fnmr"]["estimable"] is False and m["groups"]["sex"]["female"]["fmr"]["rate"] is None
    assert m["failures"]["by_group"]["sex"]["female"]["fte"]["errors"] == en["groups"]["sex"]["female"]["fte"]["errors"]
    md = (out / "summary.md").read_text()
    assert "## By sex x race" in md and "missing_file 1" in md and "Cannot show" in md
    html = (out / "report.html").read_text()
    assert 'data-metric="enrolment.sex.female.fte"' in html and 'id="scope"' in html
    assert "2 value(s) a spreadsheet had turned into dates" in m["dataset"]["label_sources"]["age"]


def test_enrolment_only_bootstrap_intervals(enrolment_run):
    """FTE per group with the clustered bootstrap (no identities: each image its own cluster), the
    same estimates in failures.by_group, and both intervals in summary.md and report.html."""
    from evalkit.metrics.impostor_only import fte_bootstrap

    fx, out, m = enrolment_run
    b = m["bootstrap"]
    assert b["unit"] == "image" and b["replicates"] == 1000 and "its own cluster" in b["note"]
    fails = _rows(out / "failures.csv")
    for attr in ("sex", "race", "age"):
        for g, e in m["enrolment"]["groups"][attr].items():
            f = e["fte"]
            assert (f["ci_boot"] is None) != (f["ci_boot_reason"] is None), (attr, g)
            assert m["failures"]["by_group"][attr][g]["fte"] == f            # one estimate, two places
    # the intervals are those of fte_bootstrap on the run's own images (seed = bootstrap.seed)
    from evalkit.data import load_dataset

    cfg = compose_config(["dataset=fairface", f"dataset.root={fx.root}", "protocol=enrolment"])
    s = load_dataset(cfg.dataset)
    failed = np.isin(s.ids, [f["sample"] for f in fails])
    want = fte_bootstrap(failed, s.subjects, s.attributes["sex"], 0.95, {"replicates": 1000, "seed": b["seed"]})
    assert {g: {k: e["fte"][k] for k in want[g]} for g, e in m["enrolment"]["groups"]["sex"].items()} == want
    assert m["enrolment"]["overall"]["fte"]["ci_boot"] == m["failures"]["images"]["fte"]["ci_boot"]
    md = (out / "summary.md").read_text()
    assert "| group | images | FTE [exact 95% CI] | bootstrap 95% CI | reasons |" in md and "clustered by image" in md
    html = (out / "report.html").read_text()
    assert "<th>bootstrap 95% CI</th>" in html and "clustered by image" in html


def test_enrolment_only_check_and_compare(enrolment_run, tmp_path, capsys):
    from evalkit.cli import main

    _, out, _ = enrolment_run
    assert main(["check", str(out), "--baseline", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fte_ceiling" in text and "fnmr" not in text          # conf/check/enrolment.yaml: FTE rules only
    assert main(["compare", str(out), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "compare.csv").is_file()
    assert "failure to enrol" in (tmp_path / "cmp" / "compare.md").read_text()


def test_pair_protocol_refused_without_identities():
    from evalkit.config import ConfigError, validate

    for proto in ("generated", "impostor", "search"):
        cfg = compose_config(["dataset=utkface", f"protocol={proto}"] + (["threshold=global_fpir"] if proto == "search" else []))
        with pytest.raises(ConfigError, match="has no identities"):
            validate(cfg)


def test_threshold_from_run(impostor_run, lfw_run, tmp_path):
    """The LFW View 2 run's threshold, applied unchanged to the impostor-only set; recorded with
    the source's id, metrics hash and fingerprint; refused for another backend's run."""
    from evalkit.metrics.carried import CarriedThresholdError
    from evalkit.pipeline import run

    fx, _, _ = impostor_run
    src = json.loads((lfw_run / "metrics.json").read_text())
    base = ["dataset=csv", f"dataset.path={fx.root / 'faces.csv'}", "dataset.name=oneshot", "protocol=impostor",
            "progress=false", "det_plot=false", "threshold=from_run", f"threshold.run={lfw_run}",
            "backend.multiple_faces=central"]   # the source LFW run used LFW's own face rule (the centred face)
    m = run(compose_config(base), tmp_path / "run")
    th = m["threshold"]
    assert th["policy"] == "from_run" and th["value"] == src["threshold"]["value"]
    assert th["source"]["metrics_sha256"] == hashlib.sha256((lfw_run / "metrics.json").read_bytes()).hexdigest()
    assert th["source"]["run_id"].endswith(lfw_run.name) and th["source"]["target_fmr"] == src["threshold"]["target"]
    d = np.array([float(r["score"]) for r in _rows(tmp_path / "run" / "scores.csv")])
    assert m["overall"]["fmr"]["errors"] == int((d <= th["value"]).sum())
    assert th["achieved"] == pytest.approx(float(np.mean(d <= th["value"])))
    # a pair protocol too (generated pairs over the one-image set would have no genuine: use View 2's own)
    # a run made by another backend is refused
    other = tmp_path / "other"
    shutil.copytree(lfw_run, other)
    tampered = json.loads((other / "metrics.json").read_text())
    tampered["backend"]["fingerprint"] = {**tampered["backend"]["fingerprint"], "detector": "cnn"}
    (other / "metrics.json").write_text(json.dumps(tampered))
    with pytest.raises(CarriedThresholdError, match="different backend.*detector"):
        run(compose_config(base[:-1] + [f"threshold.run={other}"]), tmp_path / "run2")
    from evalkit.config import ConfigError, validate

    with pytest.raises(ConfigError, match="no metrics.json"):
        validate(compose_config(base[:-1] + [f"threshold.run={tmp_path / 'nowhere'}"]))


def test_threshold_from_run_on_itself_gives_the_same_rates(lfw_run, lfw_root, tmp_path):
    """Carrying a run's own threshold back onto the same comparisons reproduces its rates exactly."""
    from evalkit.pipeline import run

    src = json.loads((lfw_run / "metrics.json").read_text())
    m = run(compose_config(["protocol.pairs_per_fold=10", "progress=false", "det_plot=false", f"data_dir={lfw_root.parent}",
                            "threshold=from_run", f"threshold.run={lfw_run}"]), tmp_path / "again")
    assert m["threshold"]["value"] == src["threshold"]["value"] and m["threshold"]["policy"] == "from_run"
    for attr, groups in src["groups"].items():
        for g, e in groups.items():
            got = m["groups"][attr][g]
            assert (got["fmr"]["errors"], got["fnmr"]["errors"]) == (e["fmr"]["errors"], e["fnmr"]["errors"])
    assert (tmp_path / "again" / "report.html").is_file()
    md = (tmp_path / "again" / "summary.md").read_text()
    assert "carried unchanged from run" in md and m["threshold"]["source"]["metrics_sha256"][:16] in md


def test_partial_audit_summaries_have_every_number_checked_against_metrics_json(impostor_run, enrolment_run):
    """Issue 12's summary.md check, on the two partial audits: every number of the impostor-only
    and the enrolment-only summary is tagged with its metrics.json path and equals that value."""
    from evalkit.report import markdown, mdtag
    from tests.report.test_summary_numbers import TAG, check_summary

    for out, least in ((impostor_run[1], 40), (enrolment_run[1], 25)):
        m = json.loads((out / "metrics.json").read_text())
        traced = markdown.render_summary_traced(m)
        assert mdtag.strip(traced) == (out / "summary.md").read_text()
        assert check_summary(m, traced) >= least
    m = json.loads((enrolment_run[1] / "metrics.json").read_text())
    keys = {k for k, _, _ in TAG.findall(markdown.render_summary_traced(m))}
    for attr, per in m["enrolment"]["groups"].items():
        for g in per:
            assert {f"enrolment.groups.{attr}.{g}.fte.n", f"enrolment.groups.{attr}.{g}.fte.rate"} <= keys, (attr, g)
    assert "enrolment.confidence" in keys
