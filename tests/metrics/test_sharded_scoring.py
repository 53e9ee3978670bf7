"""Sharded scoring: the exhaustive block grid and the search probe blocks split into jobs, each
writing a partial file, merged into exactly the one-process result (every array, and the
metrics summary byte for byte). On real LFW embeddings (dlib, a seeded subset, cached) with 2 and
3 shards, and on seeded synthetic embeddings with ties and failures. Plus the GPU block products:
their array-module code with numpy equals the CPU path bit for bit; on CuPy they run only where a
GPU is (skipped with the reason elsewhere)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.metrics import exhaustive as ex
from evalkit.metrics import search as se


def _same_exhaustive(a: ex.ExhaustiveResult, b: ex.ExhaustiveResult) -> None:
    for f in ("thresholds", "genuine_a", "genuine_b", "genuine_scores", "genuine_failed", "impostor_a", "impostor_b",
              "impostor_scores"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f
    assert (a.impostor_complete, a.impostor_cutoff, a.block_rows, a.n_blocks) == \
        (b.impostor_complete, b.impostor_cutoff, b.block_rows, b.n_blocks)
    assert json.dumps(a.overall.as_dict()) == json.dumps(b.overall.as_dict())
    for attr in a.groups:
        ca, cb = a.groups[attr], b.groups[attr]
        for f in ("completed_genuine", "failed_genuine", "completed_impostor", "failed_impostor",
                  "false_nonmatches", "false_matches"):
            assert getattr(ca, f).tobytes() == getattr(cb, f).tobytes(), (attr, f)


def _run_shards(tmp_path, count, shard_fn, tag):
    """Each shard as a job would: compute, write its partial file; then read them all back."""
    paths = []
    for i in range(count):
        p = tmp_path / f"{tag}-{i}-of-{count}.npz"
        ex.save_partial(p, shard_fn(i, count))
        paths.append(p)
    return [ex.load_partial(p) for p in reversed(paths)]     # order of arrival must not matter


def _synthetic(n=400, d=8, seed=0):
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, 90, n).astype(str)
    centres = rng.standard_normal((90, d))
    emb = (centres[subj.astype(int)] + 0.6 * rng.standard_normal((n, d))).astype(np.float32)
    emb = np.round(emb * 4) / 4          # coarse values: many exactly tied scores, at the cut-off too
    ok = rng.random(n) > 0.05
    emb[~ok] = np.nan
    groups = {"sex": rng.choice(["f", "m"], n), "race": rng.choice(["a", "b", "c", "unlabelled"], n)}
    return emb, ok, subj, groups


@pytest.mark.parametrize("settings", [
    dict(memory_budget_mb=0.05, topk=300, thresholds=[1.0, 2.0, 1.5]),     # many blocks, top-k with ties
    dict(memory_budget_mb=0.05, keep_scores=True, thresholds=[2.0]),       # every impostor score kept
    dict(block_rows=7, topk=5000, thresholds=[]),                          # top-k larger than some shards
    dict(block_rows=50, topk=80, thresholds=[1.0], failure_policy="exclude", distance="cosine"),
])
@pytest.mark.parametrize("count", [2, 3, 5])
def test_sharded_exhaustive_equals_one_process(tmp_path, settings, count):
    emb, ok, subj, groups = _synthetic()
    one = ex.exhaustive_counts(emb, ok, subj, groups, **settings)
    parts = _run_shards(tmp_path, count, lambda i, c: ex.exhaustive_shard(emb, ok, subj, groups, shard_index=i,
                                                                           shard_count=c, **settings), "ex")
    merged = ex.exhaustive_merge(parts, ok, subj, groups, **settings)
    _same_exhaustive(one, merged)
    # a partial from other settings, a missing shard and a shard twice are refused
    with pytest.raises(ValueError, match="a shard is missing|do not cover"):
        ex.exhaustive_merge(parts[1:], ok, subj, groups, **settings)
    with pytest.raises(ValueError, match="two shards|do not cover|twice"):
        ex.exhaustive_merge(parts + parts[:1], ok, subj, groups, **settings)
    with pytest.raises(ValueError, match="signature mismatch"):
        ex.exhaustive_merge(parts, ok, subj, groups, **{**settings, "thresholds": [0.123]})


def test_top_k_ties_are_kept_in_one_order_however_the_work_is_split():
    """All scores equal: which K are kept, and in what order, is (score, row, column) order."""
    emb = np.ones((60, 4), np.float32)
    ok = np.ones(60, bool)
    subj = np.arange(60).astype(str)
    one = ex.exhaustive_counts(emb, ok, subj, topk=50, block_rows=3, keep_scores=False)
    parts = [ex.exhaustive_shard(emb, ok, subj, shard_index=i, shard_count=4, topk=50, block_rows=3, keep_scores=False) for i in range(4)]
    _same_exhaustive(one, ex.exhaustive_merge(parts, ok, subj, topk=50, block_rows=3, keep_scores=False))
    assert not one.impostor_complete and len(one.impostor_scores) == 50


def test_shard_ranges_are_balanced_contiguous_and_cover_everything():
    costs = np.array([5, 1, 1, 1, 1, 1, 10, 2, 2, 2, 2, 2], float)
    for count in (1, 2, 3, 4, 20):
        ranges = [ex.shard_range(costs, i, count) for i in range(count)]
        assert ranges[0][0] == 0 and ranges[-1][1] == len(costs)
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    loads = [costs[a:b].sum() for a, b in (ex.shard_range(costs, i, 3) for i in range(3))]
    assert max(loads) <= costs.sum() / 3 + costs.max()
    with pytest.raises(ValueError):
        ex.shard_range(costs, 3, 3)


def _search_inputs(seed=1):
    rng = np.random.default_rng(seed)
    C, G, P, d = 300, 420, 500, 8
    col = np.r_[np.arange(C), rng.integers(0, C, G - C)]
    centres = rng.standard_normal((C + 100, d))
    gal = (centres[col] + 0.5 * rng.standard_normal((G, d))).astype(np.float32)
    subj = rng.integers(0, C + 100, P)
    mate = np.where(subj < C, subj, -1)
    probes = (centres[subj] + 0.5 * rng.standard_normal((P, d))).astype(np.float32)
    probes = np.round(probes * 2) / 2
    probes[rng.random(P) < 0.03] = np.nan
    gal[rng.random(G) < 0.03] = np.nan
    return probes, gal, col, mate


@pytest.mark.parametrize("count", [2, 3, 7])
def test_sharded_search_equals_one_process(tmp_path, count):
    probes, gal, col, mate = _search_inputs()
    kw = dict(sizes=[100, 200, 300], candidates=20, memory_budget_mb=0.3)
    one = se.search(probes, gal, col, mate, **kw)
    parts = _run_shards(tmp_path, count, lambda i, c: se.search_shard(probes, gal, col, mate, shard_index=i,
                                                                       shard_count=c, **kw), "se")
    merged = se.search_merge(parts, probes, gal, col, mate, **kw)
    for f in ("sizes", "probe_mate", "probe_ok", "column_ok", "mate_score", "rank", "best_nonmate", "top_column",
              "top_score"):
        assert getattr(one, f).tobytes() == getattr(merged, f).tobytes(), f
    assert one.block_rows == merged.block_rows and one.candidates == merged.candidates
    with pytest.raises(ValueError, match="missing"):
        se.search_merge(parts[:-1], probes, gal, col, mate, **kw)
    with pytest.raises(ValueError, match="signature mismatch"):
        se.search_merge(parts, probes, gal, col, mate, **{**kw, "candidates": 10})


# ------------------------------------------------------------------------------ real LFW embeddings


@pytest.fixture(scope="module")
def lfw_embedded(lfw_samples, evalkit_home):
    """A seeded LFW subset (every image of 25 subjects with 2 to 8 images, 1 image of 40 others; about
    120 images), embedded with the dlib backend into the session's cache."""
    from evalkit.embeddings import extract

    s = lfw_samples
    rng = np.random.default_rng(16)
    subjects, counts = np.unique(s.subjects, return_counts=True)
    multi = rng.choice(subjects[(counts >= 2) & (counts <= 8)], 25, replace=False)
    single = rng.choice(subjects[counts == 1], 40, replace=False)
    rows = np.flatnonzero(np.isin(s.subjects, multi) | np.isin(s.subjects, single))
    sub = s.subset(rows)
    emb, _, _ = extract(list(sub.paths), "dlib", {}, evalkit_home / "embeddings", workers=2, progress=False)
    return sub, emb


def _exhaustive_summary(res, samples, emb, policy_value):
    from evalkit.metrics.summary import summarise_exhaustive

    return summarise_exhaustive(res, samples, threshold_policy="global_fmr" if policy_value is None else "fixed",
                                target_fmr=0.001, threshold_value=policy_value, confidence=0.95,
                                image_failures=emb.failures, header={"experiment": "sharded"},
                                image_notes=emb.details, min_count=(2, 5))


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("settings", [dict(memory_budget_mb=0.1, topk=2000), dict(memory_budget_mb=0.3, keep_scores=True)])
def test_sharded_exhaustive_on_lfw_gives_identical_metrics(tmp_path, lfw_embedded, count, settings):
    samples, emb = lfw_embedded
    args = (emb.vectors, emb.ok, samples.subjects, dict(samples.attributes))
    kw = dict(thresholds=[0.6], distance="euclidean", **settings)
    one = ex.exhaustive_counts(*args, **kw)
    assert one.n_blocks >= count
    parts = _run_shards(tmp_path, count, lambda i, c: ex.exhaustive_shard(*args, shard_index=i, shard_count=c, **kw),
                        "lfw-ex")
    merged = ex.exhaustive_merge(parts, *args[1:], **kw)
    _same_exhaustive(one, merged)
    for value in (None, 0.6):
        a = json.dumps(_exhaustive_summary(one, samples, emb, value), sort_keys=True)
        b = json.dumps(_exhaustive_summary(merged, samples, emb, value), sort_keys=True)
        assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
def test_sharded_search_on_lfw_gives_identical_metrics(tmp_path, lfw_embedded, count):
    from evalkit.data.protocols import search_split
    from evalkit.metrics.search_summary import summarise_search

    samples, emb = lfw_embedded
    split = search_split(samples, gallery_images_per_subject=1, max_probes_per_subject=3, nonmated_fraction=0.5,
                         gallery_sizes=[10, None], seed=3)
    pos = np.searchsorted(np.arange(len(samples)), np.arange(len(samples)))
    gi, pi = pos[split.gallery], pos[split.probes]
    v = emb.vectors
    args = (v[pi], v[gi], split.gallery_column, split.probe_mate)
    kw = dict(sizes=split.sizes, candidates=5, distance="euclidean", probe_ok=emb.ok[pi], gallery_ok=emb.ok[gi],
              memory_budget_mb=0.002)
    one = se.search(*args, **kw)
    parts = _run_shards(tmp_path, count, lambda i, c: se.search_shard(*args, shard_index=i, shard_count=c, **kw),
                        "lfw-se")
    merged = se.search_merge(parts, *args, **kw)
    first = np.r_[True, split.gallery_column[1:] != split.gallery_column[:-1]]

    def summary(res):
        return summarise_search(
            res, probe_subjects=samples.subjects[split.probes],
            probe_groups={a: samples.attributes[a][split.probes] for a in samples.attribute_names},
            column_groups={a: samples.attributes[a][split.gallery[first]] for a in samples.attribute_names},
            threshold_policy="global_fpir", target_fpir=0.1, threshold_value=None, failure_policy="nonmatch",
            confidence=0.95, image_failures=emb.failures, image_groups=dict(samples.attributes),
            header={"experiment": "sharded"}, bootstrap={"replicates": 50, "seed": 0}, min_count=(2, 5))

    assert json.dumps(summary(one), sort_keys=True) == json.dumps(summary(merged), sort_keys=True)
    assert one.block_rows < len(split.probes) / count      # the shards really split the probes


# ------------------------------------------------------------------------------ GPU block products


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "euclidean_l2"])
def test_array_module_blocks_with_numpy_equal_the_cpu_blocks(distance):
    """The GPU path's code, run with numpy as the array module, is the CPU computation bit for bit
    (so on a GPU the only difference is cuBLAS's summation order)."""
    from evalkit.accel import ArrayModuleBlocks
    from evalkit.scoring import BlockDistance

    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((50, 16)).astype(np.float32), rng.standard_normal((70, 16)).astype(np.float32)
    bd = BlockDistance(X, Y, distance, dtype=np.float32)
    am = ArrayModuleBlocks(bd, np)
    for r0, r1, c0, c1 in ((0, 50, 0, 70), (3, 17, 20, 69)):
        assert am.block(r0, r1, c0, c1).tobytes() == bd.block(r0, r1, c0, c1).tobytes()
    with pytest.raises(ValueError, match="chi2"):
        ArrayModuleBlocks(BlockDistance(np.abs(X), None, "chi2"), np)


def test_cuda_device_without_a_gpu_says_why():
    from evalkit.accel import gpu_unavailable_reason

    why = gpu_unavailable_reason()
    if why is None:
        pytest.skip("a GPU is present: the refusal cannot be shown here")
    emb, ok, subj, groups = _synthetic(60)
    with pytest.raises(RuntimeError, match="device=cuda: "):
        ex.exhaustive_counts(emb, ok, subj, groups, device="cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        ex.exhaustive_counts(emb, ok, subj, groups, device="tpu")


def _gpu_reason():
    from evalkit.accel import gpu_unavailable_reason

    return gpu_unavailable_reason()


@pytest.mark.skipif(_gpu_reason() is not None, reason=f"GPU path not testable here: {_gpu_reason()}")
def test_gpu_exhaustive_and_search_match_the_cpu_counts_and_shard_exactly(tmp_path):
    """On a GPU: counts equal the CPU path's except for scores within float32 rounding of a
    threshold (none in this data, checked), and a sharded GPU run equals the one-process GPU run."""
    emb, ok, subj, groups = _synthetic(800, 32)
    kw = dict(thresholds=[1.0, 2.0], memory_budget_mb=0.5, topk=2000)
    cpu = ex.exhaustive_counts(emb, ok, subj, groups, **kw)
    gpu = ex.exhaustive_counts(emb, ok, subj, groups, device="cuda", **kw)
    np.testing.assert_allclose(gpu.impostor_scores, cpu.impostor_scores, rtol=1e-5, atol=1e-5)
    near = np.abs(cpu.genuine_scores[:, None] - np.array([1.0, 2.0])[None, :]).min() < 1e-4
    if not near:
        assert json.dumps(gpu.overall.as_dict()) == json.dumps(cpu.overall.as_dict())
    parts = [ex.exhaustive_shard(emb, ok, subj, groups, shard_index=i, shard_count=3, device="cuda", **kw)
             for i in range(3)]
    _same_exhaustive(gpu, ex.exhaustive_merge(parts, ok, subj, groups, **kw))
    probes, gal, col, mate = _search_inputs()
    s_cpu = se.search(probes, gal, col, mate, candidates=20)
    s_gpu = se.search(probes, gal, col, mate, candidates=20, device="cuda")
    np.testing.assert_allclose(s_gpu.mate_score, s_cpu.mate_score, rtol=1e-5, atol=1e-5)
