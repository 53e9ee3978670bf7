"""`evalkit check` on one-to-many search runs (protocol=search): a search run against a search
baseline under conf/check/search.yaml (chosen automatically), from run folders built here out of
seeded synthetic embeddings through the real engine (``evalkit.metrics.search.search``) and
``summarise_search``: no data, no embedding cache, about a second each.

A baseline, and a deliberately worse run: the same people, the same split and gallery, but the
female probes' images are much noisier (a worse camera for one group). Expected verdicts are
recomputed here from the two metrics.json files, independently of the gate's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main as cli_main
from evalkit.metrics.search import search
from evalkit.metrics.search_summary import summarise_search
from evalkit.report import check, record
from tests.report.test_check import junit_cases

LABEL_LESS = ("unlabelled", "conflict", "multiple")
ONE_TO_ONE_BASELINE = Path(check.__file__).resolve().parents[2] / "results" / "baselines" / "lfw-view2-dlib-small"


def search_metrics(seed: int = 11, noise: float = 0.65, group_noise: dict | None = None, sizes=(100, 200, 300),
                   target_fpir: float = 0.05, replicates: int = 100) -> dict:
    """metrics.json of a synthetic search: 300 enrolled subjects (one gallery image each), two probes
    for 240 of them (mated) and two for 240 people enrolled nowhere (non-mated); sex and race per
    subject (a few unlabelled, four "asianindian" subjects: a group too small to judge); one gallery
    image and one probe image without an embedding. The people, labels and split depend on ``seed``
    only; ``group_noise`` ({"female": 1.2}) makes one group's probe images noisier."""
    rng = np.random.default_rng(seed)
    d, n_enrol, n_mated, n_out = 32, 300, 240, 240
    n_sub = n_enrol + n_out
    centre = rng.normal(size=(n_sub, d))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    sex = rng.choice(["female", "male"], size=n_sub).astype(object)
    race = rng.choice(["african", "caucasian", "eastasian"], size=n_sub, p=[0.4, 0.45, 0.15]).astype(object)
    sex[rng.choice(n_sub, 6, replace=False)] = "unlabelled"
    race[rng.choice(n_sub, 20, replace=False)] = "unlabelled"
    race[[5, 6, n_enrol + 5, n_enrol + 6]] = "asianindian"
    subj = np.array([f"s{i:03d}" for i in range(n_sub)])
    probe_sub = np.r_[np.repeat(np.arange(n_mated), 2), np.repeat(np.arange(n_enrol, n_sub), 2)]
    gallery_noise = rng.normal(size=(n_enrol, d))
    probe_noise = rng.normal(size=(len(probe_sub), d))          # drawn before any scaling: same draws for every run
    scale = np.array([(group_noise or {}).get(sex[s], noise) for s in probe_sub])
    gallery = centre[:n_enrol] + noise * gallery_noise / np.sqrt(d)
    probes = centre[probe_sub] + scale[:, None] * probe_noise / np.sqrt(d)
    gallery[7] = np.nan                                          # an enrolled subject whose image failed
    probes[3] = np.nan                                           # a mated probe without an embedding
    mate = np.where(probe_sub < n_enrol, probe_sub, -1)
    res = search(probes, gallery, np.arange(n_enrol), mate, sizes=list(sizes), candidates=10)
    image_sub = np.r_[np.arange(n_enrol), probe_sub]
    failures = ["no_face" if i in (7, n_enrol + 3) else "" for i in range(len(image_sub))]
    header = {
        "experiment": "synthetic-search",
        "dataset": {"name": "synthetic", "n_samples": len(image_sub), "n_subjects": n_sub, "attributes": ["sex", "race"],
                    "label_sources": {"sex": "drawn at random for the test", "race": "drawn at random for the test"}},
        "protocol": {"name": "search", "kind": "search", "gallery_sizes": list(sizes), "n_enrolled_subjects": n_enrol,
                     "n_gallery_images": n_enrol, "gallery_images_per_subject": 1,
                     "n_mated_probes": int((mate >= 0).sum()), "n_nonmated_probes": int((mate < 0).sum()),
                     "n_mated_subjects": n_mated, "n_nonmated_subjects": n_out, "candidates": 10, "seed": seed,
                     "nonmated_fraction": 0.5, "max_probes_per_subject": 2, "n_comparisons": int(len(probes) * n_enrol)},
        "backend": {"name": "synthetic", "family": "synthetic", "distance": "euclidean",
                    "fingerprint": {"model": "gaussian-clusters", "noise": noise, "group_noise": group_noise or {}}},
    }
    return summarise_search(
        res, probe_subjects=subj[probe_sub], probe_groups={"sex": sex[probe_sub], "race": race[probe_sub]},
        column_groups={"sex": sex[:n_enrol], "race": race[:n_enrol]}, threshold_policy="global_fpir",
        target_fpir=target_fpir, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
        image_failures=failures, image_groups={"sex": sex[image_sub], "race": race[image_sub]}, header=header,
        min_count=(10, 30), intersections=[["sex", "race"]], bootstrap={"replicates": replicates, "seed": 0})


def write_run(out: Path, m: dict) -> Path:
    """A run folder as `evalkit check` / `evalkit compare` read it (metrics.json, record.json)."""
    out.mkdir(parents=True, exist_ok=True)
    record.write_json(out / "metrics.json", m)
    record.write_json(out / "record.json", {"evalkit_record": 1, "command": "test", "seed": 0})
    return out


@pytest.fixture(scope="session")
def search_baseline(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("search_check") / "baseline", search_metrics())


@pytest.fixture(scope="session")
def search_worse(tmp_path_factory) -> Path:
    """The baseline's people and split, the female probes' images noisier (0.9 instead of 0.65)."""
    return write_run(tmp_path_factory.mktemp("search_check") / "worse",
                     search_metrics(group_noise={"female": 0.9}))


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ----------------------------------------------------------------- independent expectations


def _enough(g: dict, rate: str, min_subjects=10, min_searches=30) -> bool:
    e = g[rate]
    return not e["small"] and e["n"] >= min_searches and e["subjects"] >= min_subjects


def expected_within_ci_failures(run: dict, base: dict, rate: str, interval: str = "ci") -> set[str]:
    """A group fails <rate>_within_baseline_ci when both sides have enough searches and probe
    subjects and the run's rate is above the upper end of the baseline's interval for that group."""
    rs, bs = run, base
    pairs = [("overall", "all", bs["overall"], rs["overall"])]
    for a in rs["groups"]:
        for g in set(rs["groups"][a]) | set(bs["groups"].get(a, {})):
            pairs.append((a, g, bs["groups"][a].get(g), rs["groups"][a].get(g)))
    out = set()
    for a, g, b, r in pairs:
        if not b or not r or r[rate]["rate"] is None or not b[rate][interval] or b[rate][interval][1] is None:
            continue
        if not (_enough(b, rate) and _enough(r, rate)):
            continue
        if r[rate]["rate"] > b[rate][interval][1]:
            out.add(f"{rate}_within_baseline_ci|{a}/{g}")
    return out


def hand_ratio(m: dict, attr: str, rate: str):
    """Highest over lowest rate among the labelled probe groups with enough data (None when fewer
    than two or the lowest is zero)."""
    rates = [g[rate]["rate"] for name, g in m["groups"][attr].items()
             if name not in LABEL_LESS and _enough(g, rate) and g[rate]["rate"] is not None]
    if len(rates) < 2 or min(rates) == 0:
        return None
    return max(rates) / min(rates)


# ----------------------------------------------------------------- the fixtures are what they claim


def test_synthetic_runs_share_the_split_and_differ_for_female_probes(search_baseline, search_worse):
    b, w = metrics(search_baseline), metrics(search_worse)
    for key in ("gallery_sizes", "n_mated_probes", "n_nonmated_probes", "seed"):
        assert b["protocol"][key] == w["protocol"][key]
    bf, wf = b["groups"]["sex"]["female"], w["groups"]["sex"]["female"]
    assert wf["fnir"]["rate"] > bf["fnir"]["ci"][1] + 0.1          # really worse, far outside the interval
    assert not bf["fnir"]["small"] and not bf["fpir"]["small"] and bf["fnir"]["ci_boot"] is not None
    assert b["groups"]["race"]["asianindian"]["fpir"]["small"]
    assert b["disparity"]["sex"]["fnir_max_min_ratio"]["value"] is not None


# ----------------------------------------------------------------- the gate


def test_search_baseline_against_itself_passes_with_the_search_rules(search_baseline, tmp_path, capsys):
    junit = tmp_path / "j.xml"
    code = cli_main(["check", str(search_baseline), "--baseline", str(search_baseline), "--junit", str(junit),
                     "--report", str(tmp_path / "check.md")])
    out = capsys.readouterr().out
    assert code == 0, out
    cases = junit_cases(junit)
    assert "fail" not in cases.values()
    rules = {k.split("|")[0] for k in cases}
    assert rules == {"comparable", "fpir_max_min_ratio", "fnir_max_min_ratio", "fpir_within_baseline_ci",
                     "fnir_within_baseline_ci", "fte_ceiling"}           # conf/check/search.yaml, not default.yaml
    for case in ("fpir_within_baseline_ci|overall/all", "fnir_within_baseline_ci|sex/female",
                 "fpir_within_baseline_ci|race/caucasian", "fnir_max_min_ratio|sex/female, male",
                 "comparable|protocol.gallery_sizes/-", "comparable|threshold.policy/-", "fte_ceiling|sex/male"):
        assert cases[case] == "pass", case
    assert cases["fpir_within_baseline_ci|race/asianindian"] == "skip"  # flagged small: never judged
    f = metrics(search_baseline)["groups"]["sex"]["female"]["fpir"]
    assert "FPIR for female" in out and f"(run {f['errors']}/{f['n']}, baseline {f['errors']}/{f['n']}" in out
    assert "PASS:" in out and "0 failed" in out
    assert (tmp_path / "check.md").read_text().startswith("# evalkit check")


def test_worse_search_run_fails_with_the_failing_rules_named(search_baseline, search_worse, tmp_path, capsys):
    run_m, base_m = metrics(search_worse), metrics(search_baseline)
    code = cli_main(["check", str(search_worse), "--baseline", str(search_baseline)])
    out = capsys.readouterr().out
    assert code == 1, out
    cases = junit_cases(search_worse / "check-junit.xml")            # default location: RUN/check-junit.xml
    failing = {k for k, v in cases.items() if v == "fail"}
    expected = expected_within_ci_failures(run_m, base_m, "fpir") | expected_within_ci_failures(run_m, base_m, "fnir")
    assert "fnir_within_baseline_ci|sex/female" in expected          # the fixture did what it says
    assert {k for k in failing if "within_baseline_ci" in k} == expected
    for attr in ("sex", "race"):
        for rate, limit in (("fpir", 10.0), ("fnir", 3.0)):
            ratio = hand_ratio(run_m, attr, rate)
            key = next(k for k in cases if k.startswith(f"{rate}_max_min_ratio|{attr}/"))
            assert cases[key] == ("skip" if ratio is None else "fail" if ratio > limit else "pass"), key
    assert not {k for k in failing if k.startswith(("comparable", "fte_ceiling"))}
    assert "Regressions:" in out
    f, bf = run_m["groups"]["sex"]["female"]["fnir"], base_m["groups"]["sex"]["female"]["fnir"]
    assert (f"fnir_within_baseline_ci [sex/female]: FNIR for female {100 * f['rate']:.3g}% above the baseline's upper "
            f"bound {100 * bf['ci'][1]:.3g}% (run {f['errors']}/{f['n']}, baseline {bf['errors']}/{bf['n']}") in out
    assert "FAIL:" in (search_worse / "check.md").read_text()


def test_bootstrap_interval_is_the_probe_subject_ci_boot(search_baseline, search_worse):
    run_m, base_m = metrics(search_worse), metrics(search_baseline)
    cfg = check.load_rules(check.search_rules_path(), ["rules.fnir_within_baseline_ci.interval=bootstrap"])
    cfg.rules = {"fnir_within_baseline_ci": cfg.rules["fnir_within_baseline_ci"]}
    rows = check.evaluate(run_m, base_m, cfg)
    judged = [r for r in rows if r.status != "SKIP"]
    assert len(judged) >= 5
    for r in judged:
        b = base_m["overall"] if r.attribute == "overall" else base_m["groups"][r.attribute][r.group]
        assert r.limit == b["fnir"]["ci_boot"][1] and r.baseline == b["fnir"]["rate"]
        assert "bootstrap CI" in r.message
    assert {f"{r.rule}|{r.attribute}/{r.group}" for r in rows if r.status == "FAIL"} == \
        expected_within_ci_failures(run_m, base_m, "fnir", "ci_boot")


def test_bootstrap_off_in_the_baseline_is_skipped_with_the_reason(tmp_path):
    base = search_metrics(replicates=0)
    cfg = check.load_rules(check.search_rules_path(), ["rules.fpir_within_baseline_ci.interval=bootstrap"])
    cfg.rules = {"r": cfg.rules["fpir_within_baseline_ci"]}
    rows = check.evaluate(base, base, cfg)
    assert rows and all(r.status == "SKIP" for r in rows)
    assert "bootstrap interval of FPIR for female is not available: bootstrap off" in \
        next(r.message for r in rows if r.group == "female")


def test_max_ratio_on_search_matches_a_hand_computation(search_worse):
    m = metrics(search_worse)
    cfg = check.load_rules(check.search_rules_path(), ["rules.fnir_max_min_ratio.max=1.0"])
    cfg.rules = {k: cfg.rules[k] for k in ("fpir_max_min_ratio", "fnir_max_min_ratio")}
    rows = check.evaluate(m, m, cfg)
    for r in rows:
        rate = r.rule.split("_")[0]
        ratio = hand_ratio(m, r.attribute, rate)
        if ratio is None:
            assert r.status == "SKIP" and r.run is None and r.message
            continue
        assert r.run == pytest.approx(ratio)
        assert r.status == ("FAIL" if ratio > r.limit else "PASS")
        d = m["disparity"][r.attribute][f"{rate}_max_min_ratio"]
        assert "source: disparity" in r.message and r.run == d["value"]     # search.disparity used the same groups
    (sex_fnir,) = [r for r in rows if r.rule == "fnir_max_min_ratio" and r.attribute == "sex"]
    assert sex_fnir.status == "FAIL" and sex_fnir.message.startswith("FNIR max/min ratio")
    # groups forced: the same value, computed by the gate from search.groups
    cfg.rules["fnir_max_min_ratio"].source = "groups"
    (again,) = [r for r in check.evaluate(m, m, cfg) if r.rule == "fnir_max_min_ratio" and r.attribute == "sex"]
    assert again.run == pytest.approx(sex_fnir.run) and "source: groups" in again.message


def test_fnir_at_rank_1_and_intersections_can_be_gated(search_baseline, search_worse):
    run_m, base_m = metrics(search_worse), metrics(search_baseline)
    cfg = check.load_rules(check.search_rules_path(), ["rules.fnir_within_baseline_ci.metric=fnir_rank1",
                                                      "rules.fnir_within_baseline_ci.attributes=[sex x race]"])
    cfg.rules = {"r1": cfg.rules["fnir_within_baseline_ci"]}
    rows = check.evaluate(run_m, base_m, cfg)
    inter = base_m["intersections"]["sex x race"]
    assert {r.group for r in rows if r.attribute == "sex x race"} == set(inter) | set(run_m["intersections"]["sex x race"])
    for r in rows:
        if r.status == "SKIP":
            continue
        b = base_m["overall"] if r.attribute == "overall" else inter[r.group]
        rr = run_m["overall"] if r.attribute == "overall" else run_m["intersections"]["sex x race"][r.group]
        assert (r.baseline, r.run, r.limit) == (b["fnir_rank1"]["rate"], rr["fnir_rank1"]["rate"], b["fnir_rank1"]["ci"][1])
        assert r.message.startswith("FNIR at rank 1 for ")
        assert r.status == ("FAIL" if rr["fnir_rank1"]["rate"] > b["fnir_rank1"]["ci"][1] else "PASS")


def test_comparable_fails_on_a_different_split_or_threshold_policy(search_baseline):
    base = metrics(search_baseline)
    other = json.loads(json.dumps(base))
    other["protocol"]["n_mated_probes"] += 2
    other["threshold"]["policy"] = "fixed"
    cfg = check.load_rules(check.search_rules_path())
    cfg.rules = {"comparable": cfg.rules["comparable"]}
    rows = {r.attribute: r for r in check.evaluate(other, base, cfg)}
    assert rows["protocol.n_mated_probes"].status == "FAIL" and rows["threshold.policy"].status == "FAIL"
    assert "not comparable" in rows["threshold.policy"].message
    assert {k for k, r in rows.items() if r.status == "PASS"} == {
        "dataset.name", "protocol.kind", "protocol.gallery_sizes", "protocol.n_nonmated_probes", "failure_policy"}


# ----------------------------------------------------------------- usage errors: exit 2


def test_mixing_search_and_one_to_one_exits_2(search_baseline, tmp_path, capsys):
    for run, base in ((search_baseline, ONE_TO_ONE_BASELINE), (ONE_TO_ONE_BASELINE, search_baseline)):
        junit = tmp_path / "j.xml"
        code = cli_main(["check", str(run), "--baseline", str(base), "--junit", str(junit),
                         "--report", str(tmp_path / "c.md")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "one-to-many search run" in err and "1:1 verification run" in err and "own kind" in err
        assert not junit.exists()


def test_rules_of_the_other_kind_exit_2_naming_the_rule(search_baseline, tmp_path, capsys):
    code = cli_main(["check", str(search_baseline), "--baseline", str(search_baseline),
                     "--rules", str(check.default_rules_path()), "--junit", str(tmp_path / "j.xml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "rules.fnmr_max_min_ratio.metric='fnmr' is not a rate of a one-to-many search run" in err
    assert "search.yaml" in err
    code = cli_main(["check", str(ONE_TO_ONE_BASELINE), "--baseline", str(ONE_TO_ONE_BASELINE),
                     "--rules", str(check.search_rules_path()), "--junit", str(tmp_path / "j.xml")])
    err = capsys.readouterr().err
    assert code == 2 and "rules.fpir_max_min_ratio.metric='fpir' is not a rate of a 1:1 verification run" in err
    assert not (tmp_path / "j.xml").exists()


def test_search_rule_typos_get_a_did_you_mean(search_baseline, tmp_path, capsys):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  r:\n    type: within_baseline_ci\n    metric: fpri\n")
    assert cli_main(["check", str(search_baseline), "--baseline", str(search_baseline), "--rules", str(bad)]) == 2
    assert "Did you mean 'fpir'" in capsys.readouterr().err
    assert cli_main(["check", str(search_baseline), "--baseline", str(search_baseline),
                     "rules.fnir_max_min_ratio.attributes=[sexx]"]) == 2
    assert "Did you mean 'sex'" in capsys.readouterr().err


@pytest.mark.writes_invalid_metrics
def test_a_search_metrics_json_without_its_search_block_exits_2(search_baseline, tmp_path, capsys):
    m = metrics(search_baseline)
    del m["search"]
    broken = write_run(tmp_path / "broken", m)
    assert cli_main(["check", str(broken), "--baseline", str(search_baseline)]) == 2
    assert "has no 'search' block" in capsys.readouterr().err


def test_search_rules_file_is_valid_and_documented():
    cfg = check.load_rules(check.search_rules_path())
    assert {r.metric for r in cfg.rules.values() if hasattr(r, "metric")} == {"fpir", "fnir"}
    assert cfg.rules["comparable"].fields == ["dataset.name", "protocol.kind", "protocol.gallery_sizes",
                                              "protocol.n_mated_probes", "protocol.n_nonmated_probes",
                                              "failure_policy", "threshold.policy"]
    text = check.search_rules_path().read_text()
    assert "no --rules" in text and "conf/check/default.yaml" in text
    assert "search.yaml" in check.__doc__
