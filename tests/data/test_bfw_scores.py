"""BFW's vendor score columns through the score-file backend (``backend=bfw-scores``): the BFW
fixture (real LFW images in BFW's layout, tests/data/fixtures) gets a ``senet50`` column holding
a real backend's scores on its own pairs (dlib's native pipeline, as the similarity 1 - distance),
and a run on that column through BFW's protocol (folds, subgroups, report, check) gives the
per-group FMR/FNMR a hand count of the datatable gives, and the decisions the dlib run itself
makes at the equivalent threshold. Bad columns and cells are errors naming the file and line, or
recorded failures."""

from __future__ import annotations

import csv
import json

import pytest

from evalkit.data.score_files import ScoreFileError
from evalkit.hashing import file_sha256
from evalkit.pipeline import run
from tests.conftest import compose_config
from tests.data.fixtures import BUILDERS, pick_people

BASE = ["dataset=bfw", "protocol=bfw", "progress=false", "bootstrap.replicates=50", "det_plot=false"]
SEX = {"F": "female", "M": "male"}
RACE = {"A": "asian", "B": "black", "I": "indian", "W": "white"}


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_column(datatable, column: str, values: list[str]) -> None:
    """Rewrite ``column`` of the datatable with ``values`` (one per row, in file order)."""
    with open(datatable, newline="") as fh:
        rows = list(csv.reader(fh))
    j = rows[0].index(column)
    assert len(values) == len(rows) - 1
    for r, v in zip(rows[1:], values):
        r[j] = v
    with open(datatable, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.fixture(scope="module")
def bfw(lfw_samples, tmp_path_factory):
    """The BFW fixture whose senet50 column holds 1 - dlib's distance on every datatable pair; a
    similarity threshold ``t`` inside the overlap of the genuine and impostor scores (so errors of
    both kinds occur), and the dlib run at the equivalent distance 1 - t."""
    root = tmp_path_factory.mktemp("bfw_scores") / "bfw"
    fx = BUILDERS["bfw"](pick_people(lfw_samples), root)
    first = root.parent / "dlib-first"
    run(compose_config([*BASE, f"dataset.root={root}"]), first)
    scores = _read(first / "scores.csv")
    table = root / "bfw-v0.1.5-datatable.csv"
    assert len(scores) == len(_read(table)) and all(s["failed"] == "0" for s in scores)   # every face found
    sim = [1.0 - float(s["score"]) for s in scores]
    _write_column(table, "senet50", [repr(v) for v in sim])
    lowest_genuine = min(v for v, s in zip(sim, scores) if s["mated"] == "1")
    highest_impostor = max(v for v, s in zip(sim, scores) if s["mated"] == "0")
    assert lowest_genuine < highest_impostor, "dlib separates the fixture's pairs: no threshold has both errors"
    t = round((lowest_genuine + highest_impostor) / 2, 6)
    dlib_run = root.parent / "dlib"
    run(compose_config([*BASE, f"dataset.root={root}", "threshold=fixed", f"threshold.value={1.0 - t!r}"]), dlib_run)
    return fx, table, dlib_run, t


def _scores_cfg(table, *extra):
    return compose_config([*BASE, f"dataset.root={table.parent}", "backend=bfw-scores",
                           "backend.score_column=senet50", *extra])


def _hand_count(table, threshold: float) -> dict:
    """{(attribute, group): [false matches, impostors, false non-matches, genuine]} from the CSV alone:
    a match when senet50 >= threshold; a comparison is in group g when both sides are g."""
    out: dict = {}
    for r in _read(table):
        match = float(r["senet50"]) >= threshold
        labels = {"sex": (SEX[r["g1"]], SEX[r["g2"]]), "race": (RACE[r["e1"]], RACE[r["e2"]])}
        labels["sex x race"] = tuple(f"{s} x {e}" for s, e in zip(labels["sex"], labels["race"]))
        for attr, (a, b) in labels.items():
            if a != b:
                continue
            c = out.setdefault((attr, a), [0, 0, 0, 0])
            if r["label"] == "1":
                c[2] += not match
                c[3] += 1
            else:
                c[0] += match
                c[1] += 1
    return out


def _counts(m: dict) -> dict:
    out = {}
    for block in ("groups", "intersections"):
        for attr, per in m[block].items():
            for g, e in per.items():
                out[(attr, g)] = [e["fmr"]["errors"], e["fmr"]["n"], e["fnmr"]["errors"], e["fnmr"]["n"]]
    return out


def test_a_vendor_column_runs_through_bfws_protocol_as_a_hand_count_says(bfw, tmp_path):
    fx, table, dlib_run, t = bfw
    out = tmp_path / "senet50"
    m = run(_scores_cfg(table, "threshold=fixed", f"threshold.value={t!r}"), out)
    assert m["threshold"]["value"] == t and m["threshold"]["direction"] == "similarity"
    hand = _hand_count(table, t)
    got = _counts(m)
    assert got == hand and len(hand) == 2 + 4 + 7          # sex, race, the fixture's 7 subgroups
    assert any(c[0] for c in hand.values()) and any(c[2] for c in hand.values())   # errors of both kinds occur
    # the same decisions as the dlib run at the equivalent distance 1 - t
    assert got == _counts(json.loads((dlib_run / "metrics.json").read_text()))
    # BFW's protocol: its folds (5-fold accuracy), its pairs in file order, the file's own numbers in scores.csv
    assert m["protocol"]["n_folds"] == 5 and m["lfw_accuracy"]["n_folds"] == 5
    rows, sc = _read(table), _read(out / "scores.csv")
    assert [r["fold"] for r in sc] == [r["fold"] for r in rows]
    assert [float(r["score"]) for r in sc] == [float(r["senet50"]) for r in rows]
    assert (out / "report.html").is_file() and "similarity" in (out / "summary.md").read_text()
    # the fingerprint names the file (its hash) and the column
    fp = m["backend"]["fingerprint"]
    assert fp["sha256"] == file_sha256(table) and fp["score_column"] == "senet50"
    assert fp["columns"] == {"sample_a": "p1", "sample_b": "p2", "score": "senet50", "failure": None,
                             "strip_extension": True}
    assert m["backend"]["name"] == "bfw-senet50" and "senet50" in fp["model"]
    # evalkit check against the dlib run: the same rates, so every rule passes
    from evalkit.cli import main as cli_main

    assert cli_main(["check", str(out), "--baseline", str(dlib_run), "--junit", str(tmp_path / "j.xml")]) == 0


def test_one_threshold_at_a_target_fmr_and_per_subgroup_thresholds(bfw, tmp_path):
    """global_fmr on the column (in its own units, similarity >= T) and BFW's per-subgroup policy."""
    _, table, _, t = bfw
    m = run(_scores_cfg(table, "threshold.target_fmr=0.1"), tmp_path / "g")
    t = m["threshold"]["value"]
    rows = _read(table)
    fm = sum(r["label"] == "0" and float(r["senet50"]) >= t for r in rows)
    assert m["overall"]["fmr"]["errors"] == fm and m["overall"]["fmr"]["n"] == sum(r["label"] == "0" for r in rows)
    assert m["overall"]["fnmr"]["errors"] == sum(r["label"] == "1" and float(r["senet50"]) < t for r in rows)
    m2 = run(_scores_cfg(table, "threshold=per_group_fmr", "threshold.target_fmr=0.2", "threshold.attribute=race"),
             tmp_path / "pg")
    assert set(m2["threshold"]["per_group"]["race"]) == set(RACE.values())


def test_each_column_is_its_own_system(bfw, tmp_path):
    from evalkit.backends.score_file import ScoreFileBackend

    _, table, _, t = bfw
    kw = dict(path=str(table), direction="similarity", sample_a_column="p1", sample_b_column="p2",
              failure_column=None, strip_extension=True)
    a = ScoreFileBackend(score_column="senet50", **kw).fingerprint()
    b = ScoreFileBackend(score_column="resnet50", **kw).fingerprint()
    assert a["sha256"] == b["sha256"] == file_sha256(table)
    assert a != b and (a["score_column"], b["score_column"]) == ("senet50", "resnet50")


def test_an_unknown_column_stops_the_run_before_the_dataset_is_read(bfw, tmp_path):
    _, table, _, t = bfw
    cfg = compose_config([*BASE, f"dataset.root={tmp_path / 'nowhere'}", "backend=bfw-scores",
                          "backend.score_column=senet5", f"backend.path={table}"])
    with pytest.raises(ScoreFileError, match=r"datatable\.csv:1: no column 'senet5' \(backend\.score_column\); the "
                                             r"header has .*did you mean 'senet50'.*Set backend\.score_column"):
        run(cfg, tmp_path / "run")


@pytest.fixture
def damaged(bfw, tmp_path):
    """A copy of the fixture's datatable (images shared) whose 4th data row (file line 5) is damaged."""
    _, table, _, t = bfw

    def make(value: str):
        copy = tmp_path / "damaged" / table.name
        copy.parent.mkdir(exist_ok=True)
        (copy.parent / "bfw").exists() or (copy.parent / "bfw").symlink_to(table.parent / "bfw")
        copy.write_bytes(table.read_bytes())
        values = [r["senet50"] for r in _read(copy)]
        values[3] = value
        _write_column(copy, "senet50", values)
        return copy

    return make


@pytest.mark.parametrize("value, message", [
    ("", r"datatable\.csv:5: empty score and no failure reason \(column senet50\); fill in the score, or pass "
         r"backend\.missing=failure"),
    ("n/a", r"datatable\.csv:5: score 'n/a' is not a number \(column senet50\); correct it"),
    ("inf", r"datatable\.csv:5: score 'inf' is not finite \(column senet50\)"),
])
def test_bad_score_cells_name_the_file_and_line(damaged, tmp_path, value, message):
    copy = damaged(value)
    with pytest.raises(ScoreFileError, match=message):
        run(_scores_cfg(copy, "threshold=fixed", "threshold.value=0.5"), tmp_path / "run")


def test_an_empty_score_with_missing_failure_is_a_counted_failed_comparison(bfw, damaged, tmp_path):
    _, table, _, t = bfw
    copy = damaged("")
    m = run(_scores_cfg(copy, "threshold=fixed", f"threshold.value={t!r}", "backend.missing=failure"), tmp_path / "run")
    rows = _read(copy)
    sc = _read(tmp_path / "run" / "scores.csv")
    assert [r["failed"] for r in sc].count("1") == 1 and sc[3]["failed"] == "1" and sc[3]["score"] == ""
    rec = json.loads((tmp_path / "run" / "record.json").read_text())
    assert rec["extraction"]["calls"]["empty_scores"] == 1
    assert m["failures"]["comparisons"]["genuine" if rows[3]["label"] == "1" else "impostor"] == 1
    # the failed comparison is a non-match (failure_policy=nonmatch): counted in its subgroup
    hand = _hand_count(table, t)
    g = ("sex x race", f"{SEX[rows[3]['g1']]} x {RACE[rows[3]['e1']]}")
    full = float(_read(table)[3]["senet50"]) >= t
    if rows[3]["label"] == "1":
        hand[g][2] += full          # a match becomes a non-match
    else:
        hand[g][0] -= full
    assert _counts(m)[g] == hand[g]


def test_the_preset_needs_a_score_column(tmp_path):
    from evalkit.backends.score_file import ScoreFileBackend
    from evalkit.config import ConfigError, validate

    cfg = compose_config([*BASE, f"dataset.root={tmp_path}", "backend=bfw-scores"])
    with pytest.raises(ConfigError, match=r"backend\.score_column is required with a column mapping.*senet50"):
        validate(cfg)
    with pytest.raises(ValueError, match="score_column is required"):
        ScoreFileBackend(path="x.csv", direction="similarity", sample_a_column="p1", sample_b_column="p2")
    assert ScoreFileBackend(path="x.csv", direction="similarity").columns.score == "score"   # evalkit's own format
