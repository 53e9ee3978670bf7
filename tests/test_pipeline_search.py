"""protocol=search end to end on real LFW images with the dlib backend: metrics.json agrees with
a hand count over the per-probe table the run wrote, reruns are byte-identical, bad input is
counted per group, and config mistakes fail before any work."""

from __future__ import annotations

import csv
import json
import math

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from evalkit.config import ConfigError, validate
from evalkit.pipeline import run

from .conftest import SEARCH_RUN_OVERRIDES, compose_config


def _probes(run_dir):
    with open(run_dir / "search.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _hand_rates(rows, t: float, L: int, attr: str, group: str | None):
    """FPIR, FNIR at the threshold (rank <= L) and FNIR at rank 1 over the full gallery, counted
    row by row from search.csv."""
    fp = nm = miss = miss1 = m = 0
    for r in rows:
        if group is not None and r[attr] != group:
            continue
        if r["mated"] == "1":
            m += 1
            rank = math.inf if r["mate_rank"] == "inf" else int(r["mate_rank"])
            found = rank <= L and float(r["mate_score"]) <= t
            miss += not found
            miss1 += rank != 1
        else:
            nm += 1
            fp += float(r["best_nonmate_score"]) <= t
    return (fp, nm), (miss, m), (miss1, m)


def test_search_metrics_match_a_hand_count_of_the_probe_table(lfw_search_run):
    m = json.loads((lfw_search_run / "metrics.json").read_text())
    s = m["search"]
    assert m["protocol"]["kind"] == "search" and m["kind"] == "search" and m["threshold"]["policy"] == "global_fpir"
    t, L = m["threshold"]["value"], s["candidates"]
    rows = _probes(lfw_search_run)
    assert len(rows) == m["protocol"]["n_mated_probes"] + m["protocol"]["n_nonmated_probes"]
    # the threshold keeps FPIR at or under its 5% target on the full gallery
    (fp, nm), _, _ = _hand_rates(rows, t, L, "sex", None)
    assert fp / nm <= 0.05 and fp == m["overall"]["fpir"]["errors"] and nm == m["overall"]["fpir"]["n"]
    for attr in ("sex", "race"):
        labels = {r[attr] for r in rows}
        assert set(m["groups"][attr]) == labels   # every probe group, "unlabelled" included
        for g in labels:
            e = m["groups"][attr][g]
            for name, (k, n) in zip(("fpir", "fnir", "fnir_rank1"), _hand_rates(rows, t, L, attr, g)):
                assert (e[name]["errors"], e[name]["n"]) == (k, n), (attr, g, name)
                if n:
                    assert e[name]["rate"] == pytest.approx(k / n)
                    lo, hi = e[name]["ci"]
                    assert lo <= k / n <= hi
                    if e[name]["ci_boot"] is not None:   # the interval that respects subjects
                        assert 0 <= e[name]["ci_boot"][0] <= e[name]["ci_boot"][1] <= 1
    # both sexes have mated and non-mated searches with intervals: the acceptance's per-group rates
    for g in ("female", "male"):
        for name in ("fpir", "fnir"):
            assert m["groups"]["sex"][g][name]["n"] > 0 and m["groups"]["sex"][g][name]["ci_boot"] is not None


def test_search_curves_and_sizes_are_consistent(lfw_search_run):
    m = json.loads((lfw_search_run / "metrics.json").read_text())
    s = m["search"]
    assert s["by_gallery_size"]["sizes"] == [20, 40, 60] == m["protocol"]["gallery_sizes"]
    fpir = [e["rate"] for e in s["by_gallery_size"]["overall"]["fpir"]]
    assert fpir == sorted(fpir)   # nested galleries at one threshold: FPIR can only grow
    assert s["by_gallery_size"]["overall"]["fpir"][-1]["errors"] == m["overall"]["fpir"]["errors"]
    cmc = s["cmc"]["overall"]["rate"]
    assert len(cmc) == s["candidates"] and cmc == sorted(cmc)
    assert cmc[0] == pytest.approx(1 - m["overall"]["fnir_rank1"]["rate"])
    # the audit is at DeepFace's own Dlib threshold, and says so
    (audit,) = s["audit"]
    assert audit["threshold"] == 0.6 and "DeepFace" in audit["source"]
    shares = [e["share_of_nonmated_probes"] for e in audit["groups"]["sex"].values()]
    assert sum(shares) == pytest.approx(1.0)


def test_search_rerun_is_byte_identical(lfw_search_run, tmp_path, lfw_root):
    out = tmp_path / "again"
    run(compose_config([*SEARCH_RUN_OVERRIDES, f"data_dir={lfw_root.parent}"]), out)
    assert (out / "metrics.json").read_bytes() == (lfw_search_run / "metrics.json").read_bytes()
    assert (out / "search.csv").read_bytes() == (lfw_search_run / "search.csv").read_bytes()


def test_search_counts_unreadable_images_per_group(tmp_path, lfw_root, corrupt_image):
    """A subject whose every image is corrupt: its searches fail, are counted as failed searches,
    and its group's failure to enrol shows them; nothing crashes, nothing is dropped silently."""
    people = ["Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Al_Gore", "Alejandro_Toledo", "Ali_Naimi",
              "Amelie_Mauresmo", "Andre_Agassi", "Angelina_Jolie", "Ann_Veneman"]
    lines = ["path,subject,sex"]
    for name in people:
        folder = lfw_root / "lfw-deepfunneled" / name
        sex = "female" if name in ("Amelie_Mauresmo", "Angelina_Jolie", "Ann_Veneman") else "male"
        for p in sorted(folder.glob("*.jpg"))[:3]:
            lines.append(f"{p},{name},{sex}")
    for i in range(2):
        broken = tmp_path / f"broken_{i}.jpg"
        broken.write_bytes(corrupt_image.read_bytes())
        lines.append(f"{broken},Broken_Person,female")
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    cfg = compose_config(["dataset=csv", f"dataset.path={tmp_path / 'table.csv'}", "dataset.name=mini",
                          "protocol=search", "threshold=global_fpir", "threshold.target_fpir=0.2",
                          "protocol.nonmated_fraction=0.4", "protocol.gallery_sizes=[null]", "bootstrap.replicates=50", "progress=false",
                          "intersections=[]"])
    m = run(cfg, tmp_path / "run")
    f = m["failures"]
    assert f["by_group"]["sex"]["female"]["fte"]["errors"] >= 2
    fs = m["search"]["failed_searches"]
    assert fs["mated_probe_failed"] + fs["mate_not_enrolled"] + fs["nonmated_probe_failed"] >= 1
    with open(tmp_path / "run" / "failures.csv", newline="") as fh:
        assert sum(r["subject"] == "Broken_Person" for r in csv.DictReader(fh)) == 2


def _cfg(extra):
    return compose_config(["progress=false", *extra])


def test_search_config_mistakes_fail_before_work():
    with pytest.raises(ConfigError, match="global_fpir"):
        validate(_cfg(["protocol=search"]))            # a 1:1 threshold policy on a 1:N protocol
    with pytest.raises(ConfigError, match="needs protocol=search"):
        validate(_cfg(["threshold=global_fpir"]))      # and the other way round
    with pytest.raises(ConfigError, match="nonmated_fraction"):
        validate(_cfg(["+experiment=lfw_search", "protocol.nonmated_fraction=1.5"]))
    with pytest.raises(ConfigError, match="gallery_sizes"):
        validate(_cfg(["+experiment=lfw_search", "protocol.gallery_sizes=[0,null]"]))
    with pytest.raises(Exception, match="gallery_size"):
        _cfg(["+experiment=lfw_search", "protocol.gallery_size=[10]"])   # typo of a key: the schema refuses it
    cfg = _cfg(["+experiment=lfw_search"])
    validate(cfg)
    assert OmegaConf.select(cfg, "protocol.kind") == "search" and cfg.backend.name == "dlib"


def test_search_gallery_size_above_enrolled_is_refused(tmp_path, lfw_root):
    cfg = compose_config([*SEARCH_RUN_OVERRIDES, f"data_dir={lfw_root.parent}", "protocol.gallery_sizes=[5000]"])
    with pytest.raises(ValueError, match="gallery size 5000"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_fixed_threshold_search(lfw_search_run, tmp_path, lfw_root):
    """threshold=fixed in a search run: the rates are at that distance (cache is warm)."""
    cfg = compose_config([*SEARCH_RUN_OVERRIDES, f"data_dir={lfw_root.parent}", "threshold=fixed",
                          "threshold.value=0.45"])
    m = run(cfg, tmp_path / "run")
    rows = _probes(tmp_path / "run")
    (fp, nm), (miss, n), _ = _hand_rates(rows, 0.45, m["search"]["candidates"], "sex", None)
    assert m["threshold"]["value"] == 0.45
    assert (m["overall"]["fpir"]["errors"], m["overall"]["fnir"]["errors"]) == (fp, miss)
    assert np.isclose(m["threshold"]["achieved"], fp / nm)


def test_search_failures_counted_per_group_and_intersection(lfw_search_run):
    """Failure to enrol per group and per sex x race intersection equals a count of failures.csv."""
    m = json.loads((lfw_search_run / "metrics.json").read_text())
    with open(lfw_search_run / "failures.csv", newline="") as fh:
        failed = list(csv.DictReader(fh))
    by = m["failures"]["by_group"]
    assert m["failures"]["images"]["fte"]["errors"] == len(failed)
    for attr in ("sex", "race"):
        for g, e in by[attr].items():
            assert e["fte"]["errors"] == sum(r[attr] == g for r in failed), (attr, g)
    inter = by["sex x race"]
    assert sum(e["fte"]["n"] for e in inter.values()) == m["failures"]["images"]["fte"]["n"]
    for g, e in inter.items():
        assert e["fte"]["errors"] == sum(f"{r['sex']} x {r['race']}" == g for r in failed), g


def test_fresh_search_run_passes_the_committed_search_baseline(lfw_search_run, tmp_path):
    """The fixture is the committed search baseline's config: a fresh run reproduces its numbers
    and passes `evalkit check` under conf/check/search.yaml (chosen by itself)."""
    from evalkit.cli import main as cli_main

    base = Path(__file__).resolve().parents[1] / "results" / "baselines" / "lfw-search-dlib-small"
    got = json.loads((lfw_search_run / "metrics.json").read_text())
    want = json.loads((base / "metrics.json").read_text())
    assert got["protocol"] == want["protocol"]
    # float32 matrix products may differ in the last bits on another CPU: the threshold to 1e-5,
    # the counts behind every headline rate exactly
    assert got["threshold"]["value"] == pytest.approx(want["threshold"]["value"], rel=1e-5)
    for rate in ("fpir", "fnir", "fnir_rank1"):
        g, w = got["overall"][rate], want["overall"][rate]
        assert (g["errors"], g["n"]) == (w["errors"], w["n"]), rate
    assert cli_main(["check", str(lfw_search_run), "--baseline", str(base), "--junit", str(tmp_path / "j.xml")]) == 0
