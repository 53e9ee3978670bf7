"""Protocols, datasets and backends as plug-ins: registry lookups with did-you-mean, a
``target: package.module:Class`` key, entry points of another (temporary) distribution."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from evalkit import config as config_mod
from evalkit.registry import BACKENDS, DATASETS, PROTOCOLS, RegistryError
from tests.conftest import compose_config


@pytest.mark.parametrize("override, needle", [
    ("protocol.kind=serach", "protocol.kind='serach' is not allowed.*Did you mean 'search'"),
    ("dataset.kind=lwf", "dataset.kind='lwf' is not allowed.*Did you mean 'lfw'"),
    ("backend.family=dlb", "backend.family='dlb' is not allowed.*Did you mean 'dlib'"),
])
def test_unknown_names_fail_validation_with_a_hint(override, needle):
    with pytest.raises(config_mod.ConfigError, match=needle):
        config_mod.validate(compose_config([override]))


def test_registries_name_their_builtins_and_hint_on_lookup():
    assert PROTOCOLS.names() == ["exhaustive", "generated", "lfw", "search"]
    assert {"lfw", "csv"} <= set(DATASETS.names()) and {"dlib", "deepface", "lbph"} <= set(BACKENDS.names())
    with pytest.raises(RegistryError, match="did you mean 'exhaustive'"):
        PROTOCOLS.get("exhaustiv")
    from evalkit.protocols.search import SearchProtocol, SearchProtocolConfig

    assert PROTOCOLS.get("search") is SearchProtocol and PROTOCOLS.schema("search") is SearchProtocolConfig


def test_a_bad_target_is_a_config_error():
    with pytest.raises(config_mod.ConfigError, match="protocol.target.*no attribute 'Nope'"):
        config_mod.validate(compose_config(["protocol.target=tests.plugins.example:Nope"]))
    with pytest.raises(config_mod.ConfigError, match="backend.target.*cannot import 'no_such_pkg.mod'"):
        config_mod.validate(compose_config(["backend.target=no_such_pkg.mod:Thing"]))


def _plugin_conf(tmp_path: Path) -> Path:
    """conf/ plus a third-party protocol yaml that names its class with target: and uses its own keys."""
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(config_mod.conf_dir(), conf)
    (conf / "protocol" / "one_fold.yaml").write_text(
        "name: one_fold\nkind: one_fold\ntarget: tests.plugins.example:OneFold\nfold: 3\n")
    return conf


def test_a_target_yaml_without_schema_is_checked_and_completed_by_the_class_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CONF", str(_plugin_conf(tmp_path)))
    cfg = compose_config(["protocol=one_fold"])
    config_mod.validate(cfg)
    assert cfg.protocol.fold == 3 and cfg.protocol.pairs == 5          # the schema's default filled in
    bad = compose_config(["protocol=one_fold", "+protocol.fodl=2"])
    with pytest.raises(config_mod.ConfigError, match="fodl"):
        config_mod.validate(bad)


def test_target_protocol_runs_end_to_end_on_real_lfw(tmp_path, monkeypatch, lfw_root):
    """protocol.target names a class outside evalkit: the pipeline runs it like a built-in."""
    from evalkit.pipeline import run

    monkeypatch.setenv("EVALKIT_CONF", str(_plugin_conf(tmp_path)))
    cfg = compose_config(["protocol=one_fold", "+protocol.pairs=4", "progress=false", "det_plot=false",
                          "bootstrap.replicates=0", f"data_dir={lfw_root.parent}"])
    m = run(cfg, tmp_path / "run")
    assert (m["protocol"]["n_genuine"], m["protocol"]["n_impostor"]) == (4, 4)
    rows = list(csv.DictReader((tmp_path / "run" / "scores.csv").open()))
    assert len(rows) == 8 and {r["fold"] for r in rows} == {"3"}
    # the same pairs as the first 4 + 4 of fold 3 in pairs.txt
    from evalkit.data.lfw import load_lfw, lfw_protocol

    p = lfw_protocol(load_lfw(lfw_root), lfw_root, "view2")
    s = load_lfw(lfw_root)
    want = {(s.ids[a], s.ids[b]) for f, mt, a, b in zip(p.fold, p.mated, p.a, p.b) if f == 3}
    got = {(r["sample_a"], r["sample_b"]) for r in rows}
    assert got <= want


def _fake_distribution(root: Path, entry_points: str) -> Path:
    dist = root / "evalkit_example_plugins-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evalkit-example-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    return root


@pytest.fixture
def plugin_distribution(tmp_path, monkeypatch):
    """A temporary installed distribution declaring one plug-in of each kind by entry point."""
    site = _fake_distribution(tmp_path / "site", "[evalkit.protocols]\none_fold = tests.plugins.example:OneFold\n\n"
                              "[evalkit.datasets]\nlfw_initial = tests.plugins.example:LFWInitial\n\n"
                              "[evalkit.backends]\nthumbnail = tests.plugins.example:Thumbnail\n")
    monkeypatch.syspath_prepend(str(site))
    for r in (PROTOCOLS, DATASETS, BACKENDS):
        r.refresh()
    yield site
    monkeypatch.undo()
    for r in (PROTOCOLS, DATASETS, BACKENDS):
        r.refresh()


def test_entry_points_register_protocols_datasets_and_backends(plugin_distribution, tmp_path, monkeypatch):
    from tests.plugins.example import LFWInitial, OneFold, Thumbnail

    assert PROTOCOLS.get("one_fold") is OneFold and DATASETS.get("lfw_initial") is LFWInitial
    assert BACKENDS.get("thumbnail") is Thumbnail
    assert "one_fold" in PROTOCOLS.names()
    # their schemas are stored in Hydra's ConfigStore, so plain yaml files can use them
    conf = tmp_path / "conf"
    import shutil

    shutil.copytree(config_mod.conf_dir(), conf)
    (conf / "protocol" / "one_fold.yaml").write_text("defaults:\n  - base_one_fold\n  - _self_\nfold: 2\n")
    (conf / "dataset" / "lfw_initial.yaml").write_text("defaults:\n  - base_lfw_initial\n  - _self_\n")
    (conf / "backend" / "thumbnail.yaml").write_text("defaults:\n  - base_thumbnail\n  - _self_\nside: 6\n")
    monkeypatch.setenv("EVALKIT_CONF", str(conf))
    cfg = compose_config(["protocol=one_fold", "dataset=lfw_initial", "backend=thumbnail", "intersections=[]"])
    config_mod.validate(cfg)
    assert (cfg.protocol.fold, cfg.protocol.pairs, cfg.backend.side, cfg.dataset.initial) == (2, 5, 6, "A")
    with pytest.raises(Exception, match="protocol.foldd"):   # typed by the plug-in's schema: typos fail
        compose_config(["protocol=one_fold", "protocol.foldd=1"])


def test_an_entry_point_clashing_with_a_builtin_name_is_refused(tmp_path, monkeypatch):
    site = _fake_distribution(tmp_path / "site", "[evalkit.protocols]\nsearch = tests.plugins.example:OneFold\n")
    monkeypatch.syspath_prepend(str(site))
    PROTOCOLS.refresh()
    try:
        with pytest.raises(RegistryError, match="clashes with evalkit's own"):
            PROTOCOLS.names()
    finally:
        monkeypatch.undo()
        PROTOCOLS.refresh()
    assert "search" in PROTOCOLS.names()


def test_entry_point_dataset_and_backend_run_end_to_end(plugin_distribution, tmp_path, lfw_root):
    """dataset.kind and backend.family of entry-point plug-ins, the pipeline unchanged: the
    thumbnail backend embeds real LFW images of the subjects starting with 'Z'."""
    from evalkit.pipeline import run

    cfg = compose_config(["protocol=generated", "protocol.nonmated=200", "protocol.max_images_per_subject=3",
                          "progress=false", "det_plot=false", "bootstrap.replicates=0", "intersections=[]",
                          f"data_dir={lfw_root.parent}"])
    cfg.dataset = OmegaConf.create({"name": "lfw_initial", "kind": "lfw_initial", "initial": "Z"})
    cfg.backend = OmegaConf.create({"name": "thumbnail", "family": "thumbnail", "side": 8})
    m = run(cfg, tmp_path / "run")
    assert m["dataset"]["name"] == "lfw" and m["backend"]["fingerprint"] == {"backend": "thumbnail", "side": 8, "version": 1}
    rows = list(csv.DictReader((tmp_path / "run" / "scores.csv").open()))
    assert rows and all(r["subject_a"].startswith("Z") and r["subject_b"].startswith("Z") for r in rows)
    assert sum(r["mated"] == "0" for r in rows) == 200
    rec = json.loads((tmp_path / "run" / "record.json").read_text())
    assert any(k.endswith("people.txt") for k in rec["dataset_files_sha256"])
