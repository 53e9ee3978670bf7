"""Every named dataset adapter on its official layout, built in a tmp folder from real LFW images
and LFW's own labels (tests/data/fixtures), then run end to end through the dlib backend."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from evalkit.data import load_dataset
from tests.conftest import compose_config
from tests.data.fixtures import BUILDERS, RACES, pick_people
from tests.metrics.test_partial_intervals import vertex_reps

#: adapter -> attribute -> LFW (race, sex) -> the label the adapter must give
RACE_LABEL = {"rfw": {"african": "african", "eastasian": "asian", "caucasian": "caucasian", "asianindian": "indian"},
              "bfw": {"african": "black", "eastasian": "asian", "caucasian": "white", "asianindian": "indian"},
              "utkface": {r: RACES[r][2] if r != "latino" else "others" for r in RACES},
              "fairface": {"african": "black", "eastasian": "east_asian", "caucasian": "white", "asianindian": "indian"},
              "diveface": {"african": "subsaharan_southindian", "asianindian": "subsaharan_southindian",
                           "eastasian": "east_asian", "caucasian": "caucasian"},
              "morph": {"african": "black", "eastasian": "asian", "caucasian": "white", "asianindian": "indian"}}
HAS_SEX = {"bfw", "vggface2", "celeba", "adience", "utkface", "fairface", "diveface", "morph"}
NO_IDENTITIES = {"utkface", "fairface"}


@pytest.fixture(scope="module")
def people(lfw_samples):
    return pick_people(lfw_samples)


def _overrides(name, root):
    return [f"dataset={name}", f"dataset.root={root}", "progress=false", "bootstrap.replicates=50",
            "det_plot=false", "intersections=[]"]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_adapter_reads_its_layout_with_lfw_labels(name, people, lfw_samples, tmp_path):
    fx = BUILDERS[name](people, tmp_path / name)
    s = load_dataset(compose_config(_overrides(name, fx.root)).dataset)
    assert sorted(s.ids) == sorted(fx.source)
    lfw_index = {p: i for i, p in enumerate(lfw_samples.paths)}
    person_of = {img: p for p in people for img in p.images}
    n_subjects = len({person_of[fx.source[i]].name for i in s.ids})
    for k, sid in enumerate(s.ids):
        src = fx.source[sid]
        assert os.path.realpath(s.paths[k]) == os.path.realpath(src)       # the real LFW image
        p = person_of[src]
        assert (p.sex, p.race) == (lfw_samples.attributes["sex"][lfw_index[src]], lfw_samples.attributes["race"][lfw_index[src]])
        if name in RACE_LABEL:
            assert s.attributes["race"][k] == RACE_LABEL[name][p.race], (sid, p)
        if name in HAS_SEX:
            assert s.attributes["sex"][k] == p.sex, (sid, p)
    # identities: one subject per LFW person, or (no identities) one per image
    assert len(np.unique(s.subjects)) == (len(s) if name in NO_IDENTITIES else n_subjects)
    assert all(s.label_sources[a] for a in s.attribute_names)
    # the registrable class (dataset plug-in contract) gives the same table and its annotation files
    from evalkit.data.adapters import adapter

    mod = adapter(name)
    from evalkit.registry import DATASETS

    cls = DATASETS.get(name)                 # registered in evalkit.registry
    assert DATASETS.schema(name) is mod.CONFIG
    cfg = compose_config(_overrides(name, fx.root)).dataset
    assert cls.name == name and cls.config_schema is mod.CONFIG and cls.identities == (name not in NO_IDENTITIES)
    assert cls().load(cfg).ids.tolist() == load_dataset(cfg).ids.tolist()
    assert all(p.is_file() for p in cls().files(cfg)) and (name == "utkface" or cls().files(cfg))


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def rfw_run(people, tmp_path_factory):
    """protocol=rfw on the RFW fixture, one image deleted so that its pairs name an absent file."""
    from evalkit.pipeline import run

    root = tmp_path_factory.mktemp("rfw") / "rfw"
    fx = BUILDERS["rfw"](people, root)
    gone = root / "test" / "data" / "Caucasian" / "Adam_Sandler" / "Adam_Sandler_0001.jpg"
    assert gone.is_symlink()
    gone.unlink()
    out = root.parent / "run"
    metrics = run(compose_config(_overrides("rfw", root) + ["protocol=rfw", "protocol.cross_race_impostors=20"]), out)
    return fx, out, metrics


def test_rfw_official_protocol_end_to_end(rfw_run):
    fx, out, m = rfw_run
    assert (out / "report.html").is_file() and (out / "summary.md").is_file()
    rows = _rows(out / "scores.csv")
    # 4 races x 10 folds x (1 genuine + 1 impostor) from the pairs files, + 20 cross-race impostors (fold -1)
    assert len(rows) == 4 * 20 + 20
    folds = [int(r["fold"]) for r in rows]
    assert sorted(set(folds)) == [-1, *range(10)] and folds.count(-1) == 20
    assert m["protocol"]["n_genuine"] == 40 and m["protocol"]["n_impostor"] == 60
    assert set(m["groups"]["race"]) >= {"african", "asian", "caucasian", "indian"}
    # the 10-fold accuracy is the official protocol's alone: with cross-race pairs (fold -1) it is not computed
    assert "lfw_accuracy" not in m
    # the cross-race impostors (mixed race) get the per-race rates' subject-clustered bootstrap:
    # an interval, or (e.g. no false match among 20) null with the bootstrap's own reason
    x = m["mixed"]["race"]["fmr"]
    assert x["n"] == 20 and x["ci"] is not None
    assert (x["ci_boot"] is not None) != (x["ci_boot_reason"] is not None)
    if x["ci_boot"] is None:
        assert x["ci_boot_reason"].startswith(f"group mixed has no FMR errors (0 of 20)") or "do not vary" in x["ci_boot_reason"]
    assert "group mixed has no genuine comparisons" in m["mixed"]["race"]["fnmr"]["ci_boot_reason"]
    md = (out / "summary.md").read_text()
    assert "| mixed (race differs) |" in md
    # the image the pairs name but the disk lacks: a recorded missing-file failure, in its race
    fails = _rows(out / "failures.csv")
    missing = [f for f in fails if f["sample"] == "Caucasian/Adam_Sandler/Adam_Sandler_0001"]
    assert len(missing) == 1 and missing[0]["reason"] == "missing_file" and missing[0]["race"] == "caucasian"
    rec = json.loads((out / "record.json").read_text())
    assert any(k.endswith("Caucasian_pairs.txt") for k in rec["dataset_files_sha256"])


def test_rfw_cross_race_impostors(people, tmp_path):
    from evalkit.protocols.rfw import RFWProtocol

    def build_pairs(protocol_cfg, samples, dataset_cfg):
        return RFWProtocol().pairs(compose_config(_overrides("rfw", fx.root) + ["protocol=rfw"] + extra), samples)

    extra = ["protocol.cross_race_impostors=30"]
    fx = BUILDERS["rfw"](people, tmp_path / "rfw")
    cfg = compose_config(_overrides("rfw", fx.root) + ["protocol=rfw", "protocol.cross_race_impostors=30"])
    s = load_dataset(cfg.dataset)
    p = build_pairs(cfg.protocol, s, cfg.dataset)
    cross = p.fold == -1
    assert cross.sum() == 30 and not p.mated[cross].any()
    race = s.attributes["race"]
    assert (race[p.a[cross]] != race[p.b[cross]]).all()
    assert len({(a, b) for a, b in zip(p.a[cross], p.b[cross])}) == 30
    again = build_pairs(cfg.protocol, s, cfg.dataset)
    assert (again.a == p.a).all() and (again.b == p.b).all()          # seeded
    extra = []
    official = build_pairs(None, s, cfg.dataset)
    assert len(official) == 80 and (official.fold >= 0).all()


def test_bfw_official_protocol_end_to_end(people, tmp_path):
    from evalkit.pipeline import run

    fx = BUILDERS["bfw"](people, tmp_path / "bfw")
    out = tmp_path / "run"
    m = run(compose_config(_overrides("bfw", fx.root)[:-1] + ["protocol=bfw"]), out)
    table = _rows(fx.root / "bfw-v0.1.5-datatable.csv")
    rows = _rows(out / "scores.csv")
    assert len(rows) == len(table)
    assert [int(r["fold"]) for r in rows] == [int(r["fold"]) for r in table]
    assert [int(r["mated"]) for r in rows] == [int(r["label"]) for r in table]
    assert set(m["groups"]["sex"]) == {"female", "male"} and set(m["groups"]["race"]) == {"asian", "black", "indian", "white"}
    assert "sex x race" in m["intersections"]
    assert (out / "report.html").is_file()
    # protocol.folds keeps those folds only
    m2 = run(compose_config(_overrides("bfw", fx.root) + ["protocol=bfw", "protocol.folds=[1,2]"]), tmp_path / "run2")
    assert m2["protocol"]["n_comparisons"] == sum(1 for r in table if r["fold"] in ("1", "2"))


@pytest.mark.parametrize("name", ["vggface2", "celeba", "adience", "diveface", "morph"])
def test_adapter_end_to_end_generated_pairs(name, people, tmp_path):
    """The adapters without an official pair list: every mated pair and every non-mated pair of
    their fixture, through the dlib backend into a run folder."""
    from evalkit.pipeline import run

    fx = BUILDERS[name](people, tmp_path / name)
    out = tmp_path / "run"
    m = run(compose_config(_overrides(name, fx.root) + ["protocol=generated", "protocol.nonmated=null"]), out)
    n = sum(len(p.images) for p in fx.people if any(fx.source[s] in p.images for s in fx.source))
    assert m["dataset"]["n_samples"] == len(fx.source) <= n
    n_gen = sum(len(p.images) * (len(p.images) - 1) // 2 for p in fx.people
                if any(fx.source[s] in p.images for s in fx.source))
    assert m["protocol"]["n_genuine"] == n_gen
    assert m["groups"]["sex"]["female"]["fnmr"]["n"] > 0 and m["groups"]["sex"]["male"]["fnmr"]["n"] > 0
    assert m["dataset"]["label_sources"]["sex"]
    assert (out / "report.html").is_file()


def test_rfw_cross_race_fmr_bootstrap_on_real_scores(rfw_run, tmp_path):
    """protocol.cross_race_impostors on real dlib scores, at a threshold inside the cross-race
    scores (so some of them match falsely): the cross-race FMR's subject-clustered interval equals
    a vertex bootstrap written out here from scores.csv alone (subjects resampled within their
    race, a pair weighing the product of its subjects' multiplicities; Korn-Graubard interval)."""
    from scipy import stats

    from evalkit.pipeline import run

    fx, first, _ = rfw_run
    cross = [float(r["score"]) for r in _rows(first / "scores.csv") if r["fold"] == "-1" and r["failed"] == "0"]
    t = float(np.median(cross))
    R = 4000
    over = [o for o in _overrides("rfw", fx.root) if not o.startswith("bootstrap.")]
    m = run(compose_config(over + ["protocol=rfw", "protocol.cross_race_impostors=20", "threshold=fixed",
                                   f"threshold.value={t!r}", f"bootstrap.replicates={R}", "bootstrap.seed=3"]),
            tmp_path / "run")
    rows = _rows(tmp_path / "run" / "scores.csv")
    race = {}
    for r in rows:
        race[r["subject_a"]], race[r["subject_b"]] = r["race_a"], r["race_b"]
    mix = [r for r in rows if r["race_a"] != r["race_b"]]
    assert len(mix) == 20 and all(r["mated"] == "0" for r in mix)
    err = np.array([r["failed"] == "0" and float(r["score"]) <= t for r in mix], float)
    x = m["mixed"]["race"]["fmr"]
    assert (x["errors"], x["n"]) == (int(err.sum()), 20) and 0 < x["errors"] < 20
    reps = vertex_reps(race, [r["subject_a"] for r in mix], [r["subject_b"] for r in mix], err, seed=2024, replicates=R)
    assert np.isnan(reps).mean() <= 0.05        # evalkit's rule: at most 5% undefined replicates
    k, n = x["errors"], x["n"]
    p = k / n
    deff = max(1.0, float(np.nanvar(reps, ddof=1)) / (p * (1 - p) / n))
    ne, ke = n / deff, p * n / deff
    lo, hi = stats.beta.ppf(0.025, ke, ne - ke + 1), stats.beta.ppf(0.975, ke + 1, ne - ke)
    assert x["ci_boot_reason"] is None
    assert abs(x["ci_boot"][0] - lo) < 0.05 * (hi - lo) and abs(x["ci_boot"][1] - hi) < 0.05 * (hi - lo), \
        (x["ci_boot"], (lo, hi))
    assert m["bootstrap"]["replicates"] == R and m["bootstrap"]["seed"] == 3
    assert "| mixed (race differs) |" in (tmp_path / "run" / "summary.md").read_text()
