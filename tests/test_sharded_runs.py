"""Sharded runs through Hydra's submitit launcher (hydra/launcher=submitit_local: each shard a
separate process, as on SLURM): `evalkit embed` fills the cache shard by shard and the run that
follows embeds nothing; a shard that did not run is named and its images listed instead of being
embedded silently; `stage=score` + `stage=merge` give the one-process metrics.json byte for byte,
for protocol=exhaustive and protocol=search. Real LFW images, the dlib backend, kept small."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import copy_images
from tests.test_cli import evalkit

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder",
          "Serena_Williams", "Jennifer_Lopez", "Junichiro_Koizumi", "Hugo_Chavez", "Ariel_Sharon"]
FEMALE = {"Serena_Williams", "Jennifer_Lopez"}


@pytest.fixture(scope="module")
def faces(tmp_path_factory, lfw_root) -> Path:
    """A CSV over 30 real LFW images (10 subjects x 3)."""
    d = tmp_path_factory.mktemp("shard_faces")
    imgs = copy_images(lfw_root, d, [(p, i) for p in PEOPLE for i in (1, 2, 3)])
    with open(d / "faces.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject", "sex"])
        for p in imgs:
            w.writerow([p.relative_to(d), p.parent.name, "female" if p.parent.name in FEMALE else "male"])
    return d / "faces.csv"


def _base(faces, cache, protocol="exhaustive"):
    common = ["dataset=csv", f"dataset.path={faces}", "dataset.name=shards", "progress=false", "det_plot=false",
              f"cache_dir={cache}", "backend.workers=1"]
    if protocol == "exhaustive":
        return common + ["protocol=exhaustive", "threshold=fixed", "threshold.value=0.6",
                         "protocol.memory_budget_mb=0.002"]        # 4-row blocks: many to split
    return common + ["protocol=search", "threshold=global_fpir", "threshold.target_fpir=0.2",
                     "protocol.memory_budget_mb=0.0005", "protocol.candidates=3", "bootstrap.replicates=50"]


def _relocated(faces: Path, small: Path) -> Path:
    """``small`` (rows of ``faces``) with paths made absolute, so it may live in another folder."""
    rows = list(csv.reader(small.read_text().splitlines()))
    with open(small, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        for r in rows[1:]:
            w.writerow([str(faces.parent / r[0]), *r[1:]])
    return small


def _manifests(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(cache.glob("shards/embed-*/shard-*.json"))]


@pytest.mark.slow
def test_sharded_embed_fills_the_cache_and_a_missing_shard_is_named(faces, tmp_path):
    from evalkit import pipeline
    from evalkit.embeddings import MissingEmbeddings
    from tests.conftest import compose_config

    cache = tmp_path / "cache"
    small = tmp_path / "small.csv"
    small.write_text("\n".join(faces.read_text().splitlines()[:13]) + "\n")    # 12 images, 4 subjects
    base = _base(_relocated(faces, small), cache)
    # shards 0 and 2 of 3 only: as if shard 1's job never ran
    evalkit(["embed", "-m", "hydra/launcher=submitit_local", "shard.index=0,2", "shard.count=3", *base], tmp_path)
    recs = _manifests(cache)
    assert [(r["index"], r["status"], r["n_images"]) for r in recs] == [(0, "done", 4), (2, "done", 4)]
    assert recs[0]["images"] == [0, 4] and recs[1]["images"] == [8, 12]
    assert recs[0]["extraction"]["computed"] == 4
    # the run stops before scoring, names the shard and lists its images
    with pytest.raises(MissingEmbeddings, match="4 of 12 images are not in the embedding cache") as exc:
        pipeline.run(compose_config(base), tmp_path / "stopped")
    assert "2 of 3 embed shards finished; never started: 1" in str(exc.value)
    with open(tmp_path / "stopped" / "missing.csv") as fh:
        missing = [r["path"] for r in csv.DictReader(fh)]
    assert len(missing) == 4 and not (tmp_path / "stopped" / "metrics.json").exists()
    # the missing shard's job (in this process), then the run: everything from the cache
    pipeline.run(compose_config(base + ["stage=embed", "shard.index=1", "shard.count=3"]), tmp_path / "job1")
    pipeline.run(compose_config(base), tmp_path / "after")
    rec = json.loads((tmp_path / "after" / "record.json").read_text())
    assert rec["extraction"]["computed"] == 0 and rec["extraction"]["from_cache"] == 12


def test_shard_status_names_failed_and_killed_shards(faces, tmp_path):
    """Manifests say which shard finished, failed (with its error) or started and never finished;
    their folder does not depend on the number of workers."""
    from evalkit.shard import describe_status, embed_key, manifests_dir, shard_status, write_manifest
    from tests.conftest import compose_config

    cache = tmp_path / "cache"
    cfg = compose_config(_base(faces, cache))
    folder = manifests_dir(cfg, "embed", "x")
    write_manifest(folder, 0, 3, {"status": "done"})
    write_manifest(folder, 1, 3, {"status": "failed", "error": "RuntimeError: node lost"})
    write_manifest(folder, 2, 3, {"status": "running"})
    st = shard_status(folder)
    assert describe_status(st) == ("1 of 3 embed shards finished; failed: shard 1 (RuntimeError: node lost); "
                                   "started but never finished (killed?): 2")
    assert embed_key(cfg, ["a"]) == embed_key(compose_config(_base(faces, cache) + ["backend.workers=2"]), ["a"])


@pytest.mark.slow
def test_failed_embed_shard_is_recorded_and_reported(faces, tmp_path, monkeypatch):
    """A shard whose extraction raises leaves a 'failed' manifest with the error; the run then names it."""
    from evalkit import embeddings, pipeline
    from evalkit.embeddings import MissingEmbeddings
    from tests.conftest import compose_config

    cache = tmp_path / "cache"
    small = tmp_path / "small.csv"
    lines = faces.read_text().splitlines()
    small.write_text("\n".join(lines[:7]) + "\n")
    faces = _relocated(faces, small)
    real = embeddings.extract

    def boom(paths, **kw):
        raise RuntimeError("disk quota exceeded")

    monkeypatch.setattr(embeddings, "extract", boom)
    cfg = compose_config(_base(faces, cache) + ["stage=embed", "shard.index=1", "shard.count=2"])
    with pytest.raises(RuntimeError, match="disk quota"):
        pipeline.run(cfg, tmp_path / "job1")
    monkeypatch.setattr(embeddings, "extract", real)
    pipeline.run(compose_config(_base(faces, cache) + ["stage=embed", "shard.index=0", "shard.count=2"]),
                 tmp_path / "job0")
    with pytest.raises(MissingEmbeddings, match=r"1 of 2 embed shards finished; failed: shard 1 \(RuntimeError: "
                                                r"disk quota exceeded\)") as exc:
        pipeline.run(compose_config(_base(faces, cache)), tmp_path / "run")
    assert len(exc.value.paths) == 3
    metrics = pipeline.run(compose_config(_base(faces, cache) + ["embed_missing=true"]), tmp_path / "run2")
    assert metrics["protocol"]["n_comparisons"] == 6 * 5 // 2


@pytest.mark.slow
@pytest.mark.parametrize("protocol,count", [("exhaustive", 3), ("search", 2)])
def test_sharded_scoring_through_submitit_gives_byte_identical_metrics(faces, tmp_path, protocol, count, evalkit_home):
    """Score shards as submitit_local jobs, merge here: metrics.json (and search.csv) byte for byte
    the one-process run's. The session cache is shared, so the images are embedded once."""
    from evalkit import pipeline
    from evalkit.shard import load_partials
    from tests.conftest import compose_config

    cache = evalkit_home / "embeddings"
    base = _base(faces, cache, protocol) + [f"shard.dir={tmp_path / 'shards'}"]
    pipeline.run(compose_config(base), tmp_path / "one")
    evalkit(["run", "-m", "hydra/launcher=submitit_local", "stage=score", f"shard.index=range(0,{count})",
             f"shard.count={count}", *base], tmp_path)
    parts = sorted(tmp_path.glob("shards/score-*/partial-*.npz"))
    assert len(parts) == count
    # each shard did a part of the work: different, non-empty block ranges
    blocks = [tuple(np.load(p)["blocks"]) for p in parts]
    assert len(set(blocks)) == count and all(b1 > b0 for b0, b1 in blocks)
    pipeline.run(compose_config(base + ["stage=merge", f"shard.count={count}"]), tmp_path / "merged")
    one = (tmp_path / "one" / "metrics.json").read_bytes()
    assert one == (tmp_path / "merged" / "metrics.json").read_bytes()
    if protocol == "search":
        assert (tmp_path / "one" / "search.csv").read_bytes() == (tmp_path / "merged" / "search.csv").read_bytes()
    # a merge with a shard missing says which
    parts[-1].unlink()
    with pytest.raises(RuntimeError, match=rf"1 of {count} score shards have no partial .*\(shards {count - 1}\)"):
        load_partials(compose_config(base + ["stage=merge", f"shard.count={count}"]))


def test_stage_and_shard_settings_are_checked_before_any_work(faces, tmp_path):
    from evalkit import pipeline
    from evalkit.config import ConfigError
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match="shard.index must be in 0..shard.count-1"):
        pipeline.run(compose_config(_base(faces, tmp_path) + ["stage=embed", "shard.index=3", "shard.count=3"]), tmp_path)
    with pytest.raises(ConfigError, match="stage='scor' is not allowed.*Did you mean 'score'"):
        pipeline.run(compose_config(_base(faces, tmp_path) + ["stage=scor"]), tmp_path)
    with pytest.raises(ValueError, match="cannot be scored in shards"):
        pipeline.run(compose_config(["dataset=csv", f"dataset.path={faces}", "dataset.name=shards", "progress=false",
                                     f"cache_dir={tmp_path}", "protocol=generated", "stage=score"]), tmp_path / "g")
