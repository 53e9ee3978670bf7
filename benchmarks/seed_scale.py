"""The seed's scale: 1:N search of a 300,000-subject gallery, a 100,000-image exhaustive 1:1 run,
and the 1:N run sharded into submitit_local jobs, on seeded synthetic embeddings.

    python benchmarks/seed_scale.py search --probes 100000 --gallery 300000 --dim 128
    python benchmarks/seed_scale.py exhaustive --images 100000
    python benchmarks/seed_scale.py sharded --probes 100000 --gallery 300000 --jobs 4

Data: ``benchmarks/search_scale.py``'s generator (identities in a 16-d subspace, noisy images,
half the probes mated, half non-mated outside subjects; sex 30/70 and four race groups
60/20/15/5 drawn per subject). For ``exhaustive``: ``--images`` images of subjects with
``--per-subject`` images each, the same group labels per subject.

Printed per run: wall time (engine, metric step, end to end), peak memory (ru_maxrss of the
process: inputs, interpreter and libraries included, and tracemalloc's peak of numpy allocations
in the engine), and throughput: multiply-adds done by the block products (probes x gallery x d;
n (n - 1) / 2 x d for exhaustive... counted as the products really computed: the exhaustive grid
computes each block row against all later rows, about n^2 / 2 x d) per second, as a fraction of
this machine's own float32 GEMM throughput measured by this script on the same block shapes
right before (``np.matmul`` of a block of rows against the gallery / the rest of the rows, best
of 3). That fraction is how much of the machine's matrix-product speed the whole engine keeps:
the per-score work after the GEMM (selection of the candidate list, ranks, counting) is the rest.

``sharded`` runs the same 1:N search as ``--jobs`` submitit LocalExecutor jobs (one process
each, as ``hydra/launcher=submitit_local`` would start them), each regenerating the seeded data,
searching its shard of the probe blocks and writing a partial npz; then merges them and checks
the merged result is byte-identical to a one-process run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_scale import blas_threads  # noqa: E402

SEX, SEX_P = ["female", "male"], [0.3, 0.7]
RACE, RACE_P = ["a", "b", "c", "d"], [0.6, 0.2, 0.15, 0.05]


def make_data(n_probes: int, n_gallery: int, dim: int, seed: int, chunk: int = 50_000):
    """``search_scale.make_data``'s model, built in float32 chunks so that generating 400,000
    512-d vectors does not dominate the peak memory: identities in a 16-d subspace, gallery
    images with noise 0.3, probes with noise drawn per probe in [0.3, 1.0]; half the probes mated
    (their mate drawn uniformly), half non-mated outside subjects; sex and race per subject."""
    rng = np.random.default_rng(seed)
    k = min(16, dim)
    basis = np.linalg.qr(rng.normal(size=(dim, k)))[0].astype(np.float32)

    def images(ids, scale):
        out = np.empty((len(ids), dim), np.float32)
        for s in range(0, len(ids), chunk):
            ident = _identity(ids[s:s + chunk], k, seed) @ basis.T
            noise = rng.standard_normal((len(ident), dim), dtype=np.float32)
            noise *= (np.broadcast_to(scale, (len(ids),))[s:s + chunk, None] / np.float32(np.sqrt(dim))).astype(np.float32)
            out[s:s + chunk] = ident + noise
        return out

    gallery = images(np.arange(n_gallery), np.float32(0.3))
    n_mated = n_probes // 2
    mate = rng.integers(0, n_gallery, size=n_mated)
    scale = rng.uniform(0.3, 1.0, size=n_probes).astype(np.float32)
    probes = images(np.r_[mate, n_gallery + np.arange(n_probes - n_mated)], scale)
    probe_mate = np.r_[mate, np.full(n_probes - n_mated, -1)]
    probe_subjects = np.r_[[f"g{c}" for c in mate], [f"o{i}" for i in range(n_probes - n_mated)]]
    col_sex = rng.choice(SEX, size=n_gallery, p=SEX_P)
    col_race = rng.choice(RACE, size=n_gallery, p=RACE_P)
    out_sex = rng.choice(SEX, size=n_probes - n_mated, p=SEX_P)
    out_race = rng.choice(RACE, size=n_probes - n_mated, p=RACE_P)
    probe_groups = {"sex": np.r_[col_sex[mate], out_sex], "race": np.r_[col_race[mate], out_race]}
    column_groups = {"sex": col_sex, "race": col_race}
    return probes, gallery, probe_mate, probe_subjects, probe_groups, column_groups


def _identity(ids, k: int, seed: int) -> np.ndarray:
    """The k-d identity of each subject id, the same wherever the id appears (gallery or probe):
    each id's vector from its own seeded stream would be slow, so ids are hashed into a fixed
    table of 2**20 seeded vectors mixed from two entries (distinct for distinct ids in practice)."""
    table = _TABLE.get((k, seed))
    if table is None:
        table = np.random.default_rng([seed, 7]).standard_normal((2 ** 20, k), dtype=np.float32) / np.float32(np.sqrt(k))
        _TABLE[(k, seed)] = table
    ids = np.asarray(ids, dtype=np.int64)
    a = table[(ids * 2654435761) % 2 ** 20]
    b = table[(ids * 40503 + 12345) % 2 ** 20]
    return (a + b) / np.float32(np.sqrt(2))


_TABLE: dict = {}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_rate(rows: int, cols: int, dim: int, reps: int = 3, seed: int = 0) -> float:
    """Best-of-``reps`` float32 multiply-adds per second of one (rows x dim) @ (dim x cols) product."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, dim), dtype=np.float32)
    b = rng.standard_normal((cols, dim), dtype=np.float32)
    out = np.empty((rows, cols), np.float32)
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b.T, out=out)
        best = min(best, time.perf_counter() - t)
    return rows * cols * dim / best


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


# ------------------------------------------------------------------------------------------ 1:N


def search_args(a):
    probes, gallery, probe_mate, subjects, pgroups, cgroups = make_data(a.probes, a.gallery, a.dim, a.seed)
    kw = dict(sizes=None, candidates=a.candidates, distance="euclidean", memory_budget_mb=a.memory_budget_mb)
    return probes, gallery, np.arange(a.gallery), probe_mate, subjects, pgroups, cgroups, kw


def summarise(res, subjects, pgroups, cgroups, a):
    from evalkit.metrics.search_summary import summarise_search

    n = a.probes + a.gallery
    return summarise_search(
        res, probe_subjects=subjects, probe_groups=pgroups, column_groups=cgroups, threshold_policy="global_fpir",
        target_fpir=1e-2, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
        image_failures=[None] * n, image_groups={k: np.r_[cgroups[k], pgroups[k]] for k in cgroups}, header={},
        bootstrap=None, intersections=[["sex", "race"]])


def run_search(a) -> dict:
    from evalkit.metrics.search import search

    print(f"== 1:N search: {a.probes:,} probes x {a.gallery:,} enrolled subjects, {a.dim}-d, L={a.candidates}, "
          f"budget {a.memory_budget_mb:g} MB; {load_note()}; BLAS: {blas_threads()}")
    probes, gallery, col, mate, subjects, pgroups, cgroups, kw = search_args(a)
    rss0 = rss_mb()
    # the engine's block rows (evalkit.metrics.search: 21 bytes per probe x gallery entry)
    rows = int(max(1, min(len(probes), a.memory_budget_mb * 2 ** 20 // (21 * len(gallery)))))
    ref_before = gemm_rate(min(rows, len(probes)), a.gallery, a.dim)
    t0 = time.perf_counter()
    if a.trace:
        tracemalloc.start()
    res = search(probes, gallery, col, mate, **kw)
    peak_engine = tracemalloc.get_traced_memory()[1] / 2**20 if a.trace else float("nan")
    if a.trace:
        tracemalloc.stop()
    t_engine = time.perf_counter() - t0
    t1 = time.perf_counter()
    metrics = summarise(res, subjects, pgroups, cgroups, a)
    t_metrics = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    macs = a.probes * a.gallery * a.dim
    ref = max(ref_before, gemm_rate(res.block_rows, a.gallery, a.dim))   # the machine's best, before or after
    s = metrics["search"]
    out = {"part": "search", "probes": a.probes, "gallery": a.gallery, "dim": a.dim, "block_rows": res.block_rows,
           "engine_s": round(t_engine, 2), "metrics_s": round(t_metrics, 2), "wall_s": round(wall, 2),
           "peak_rss_mb": round(rss_mb()), "rss_before_mb": round(rss0), "tracemalloc_engine_mb": None if peak_engine != peak_engine else round(peak_engine),
           "macs": macs, "achieved_gmacs": round(macs / t_engine / 1e9, 2),
           "achieved_gmacs_end_to_end": round(macs / wall / 1e9, 2), "gemm_gmacs": round(ref / 1e9, 2),
           "fraction_engine": round(macs / t_engine / ref, 3), "fraction_end_to_end": round(macs / wall / ref, 3),
           "fpir": s["overall"]["fpir"]["rate"], "fnir": s["overall"]["fnir"]["rate"],
           "per_group_rates": _count_group_rates(s)}
    print(json.dumps(out))
    return out


def _count_group_rates(s: dict) -> int:
    """How many per-group FPIR / FNIR / CMC entries the metric step produced (a check that it
    ran for every group, not a figure)."""
    n = 0

    def walk(x):
        nonlocal n
        if isinstance(x, dict):
            if "rate" in x and "n" in x:
                n += 1
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for key in ("groups", "intersections", "cmc", "by_gallery_size"):
        walk(s.get(key))
    return n


# ------------------------------------------------------------------------------------------ 1:1


def run_exhaustive(a) -> dict:
    from evalkit.metrics.exhaustive import exhaustive_counts

    rng = np.random.default_rng(a.seed)
    n_subj = a.images // a.per_subject
    n = n_subj * a.per_subject
    basis = np.linalg.qr(rng.normal(size=(a.dim, min(16, a.dim))))[0]
    identity = (rng.normal(size=(n_subj, basis.shape[1])) / np.sqrt(basis.shape[1])) @ basis.T
    subj = np.repeat(np.arange(n_subj), a.per_subject)
    emb = (identity[subj] + rng.normal(size=(n, a.dim)) * 0.5 / np.sqrt(a.dim)).astype(np.float32)
    sex = rng.choice(["female", "male"], size=n_subj, p=[0.3, 0.7])[subj]
    race = rng.choice(["a", "b", "c", "d"], size=n_subj, p=[0.6, 0.2, 0.15, 0.05])[subj]
    ok = np.ones(n, bool)
    thresholds = [0.6, 0.7, 0.8, 0.9]
    print(f"== 1:1 exhaustive: {n:,} images ({n_subj:,} subjects x {a.per_subject}), {n * (n - 1) // 2:,} comparisons, "
          f"{a.dim}-d, thresholds {thresholds}, budget {a.memory_budget_mb:g} MB, topk {a.topk:,}; {load_note()}")
    rss0 = rss_mb()
    from evalkit.metrics.exhaustive import _make_plan

    plan0 = _make_plan(emb[:, :1], ok, subj.astype(str), None, thresholds, "euclidean", "nonmatch", None,
                       a.memory_budget_mb, "auto", a.topk, check_emb=False)
    q0, q1 = plan0.blocks[len(plan0.blocks) // 2]
    ref_before = gemm_rate(q1 - q0, n - q0, a.dim)
    del plan0
    t0 = time.perf_counter()
    res = exhaustive_counts(emb, ok, subj.astype(str), {"sex": sex, "race": race}, thresholds=thresholds,
                            distance="euclidean", memory_budget_mb=a.memory_budget_mb, topk=a.topk)
    wall = time.perf_counter() - t0
    # products really computed: each block of rows against itself and every later row
    from evalkit.metrics.exhaustive import _make_plan

    plan = _make_plan(emb[:, :1], ok, subj.astype(str), None, thresholds, "euclidean", "nonmatch", None,
                      a.memory_budget_mb, "auto", a.topk, check_emb=False)
    n_blocks, rows = res.n_blocks, res.block_rows
    macs = int(plan.pair_counts.sum()) * a.dim
    r0, r1 = plan.blocks[len(plan.blocks) // 2]          # a typical block: its shape for the GEMM reference
    ref = max(ref_before, gemm_rate(r1 - r0, n - r0, a.dim))
    fm = res.overall.false_matches.tolist()
    out = {"part": "exhaustive", "images": n, "comparisons": n * (n - 1) // 2, "dim": a.dim, "block_rows": rows,
           "n_blocks": n_blocks, "wall_s": round(wall, 2), "peak_rss_mb": round(rss_mb()), "rss_before_mb": round(rss0),
           "macs": macs, "achieved_gmacs": round(macs / wall / 1e9, 2), "gemm_gmacs": round(ref / 1e9, 2),
           "fraction": round(macs / wall / ref, 3), "comparisons_per_s_M": round(n * (n - 1) / 2 / wall / 1e6),
           "false_matches": fm, "fnmr": [round(x, 5) for x in res.overall.fnmr().tolist()],
           "impostor_kept": int(len(res.impostor_scores))}
    print(json.dumps(out))
    return out


# ------------------------------------------------------------------------------------------ sharded


def _shard_job(a_dict: dict, index: int, count: int, out_dir: str) -> dict:
    """One submitit job: regenerate the seeded data, search one shard, write its partial."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from evalkit.metrics.exhaustive import save_partial
    from evalkit.metrics.search import search_shard

    a = argparse.Namespace(**a_dict)
    t0 = time.perf_counter()
    probes, gallery, col, mate, _, _, _, kw = search_args(a)
    t_data = time.perf_counter() - t0
    part = search_shard(probes, gallery, col, mate, shard_index=index, shard_count=count, **kw)
    path = Path(out_dir) / f"search-{index:03d}-of-{count:03d}.npz"
    save_partial(path, part)
    return {"index": index, "data_s": t_data, "wall_s": time.perf_counter() - t0, "peak_rss_mb": rss_mb(),
            "path": str(path)}


def run_sharded(a) -> dict:
    import submitit

    from evalkit.metrics.exhaustive import load_partial
    from evalkit.metrics.search import search, search_merge

    print(f"== sharded 1:N: {a.jobs} submitit LocalExecutor jobs + merge vs one process: {a.probes:,} probes x "
          f"{a.gallery:,}, {a.dim}-d; {load_note()}")
    work = Path(tempfile.mkdtemp(prefix="evalkit-shards-"))
    ex = submitit.LocalExecutor(folder=str(work / "logs"))
    ex.update_parameters(timeout_min=120)
    t0 = time.perf_counter()
    jobs = [ex.submit(_shard_job, vars(a), i, a.jobs, str(work)) for i in range(a.jobs)]
    infos = [j.result() for j in jobs]
    t_jobs = time.perf_counter() - t0
    t1 = time.perf_counter()
    probes, gallery, col, mate, subjects, pgroups, cgroups, kw = search_args(a)
    t_data = time.perf_counter() - t1
    t2 = time.perf_counter()
    merged = search_merge([load_partial(i["path"]) for i in infos], probes, gallery, col, mate, **kw)
    m_merged = summarise(merged, subjects, pgroups, cgroups, a)
    t_merge = time.perf_counter() - t2
    sharded_wall = t_jobs + t_merge
    t3 = time.perf_counter()
    one = search(probes, gallery, col, mate, **kw)
    m_one = summarise(one, subjects, pgroups, cgroups, a)
    t_one = time.perf_counter() - t3
    same = all(getattr(one, f).tobytes() == getattr(merged, f).tobytes()
               for f in ("mate_score", "rank", "best_nonmate", "top_column", "top_score"))
    same_metrics = json.dumps(m_one, sort_keys=True) == json.dumps(m_merged, sort_keys=True)
    out = {"part": "sharded", "jobs": a.jobs, "probes": a.probes, "gallery": a.gallery, "dim": a.dim,
           "jobs_wall_s": round(t_jobs, 2), "job_wall_s": [round(i["wall_s"], 2) for i in infos],
           "job_data_s": [round(i["data_s"], 2) for i in infos], "job_peak_rss_mb": [round(i["peak_rss_mb"]) for i in infos],
           "merge_s": round(t_merge, 2), "sharded_total_s": round(sharded_wall, 2),
           "one_process_s": round(t_one, 2), "overhead_s": round(sharded_wall - t_one, 2),
           "data_generation_s": round(t_data, 2), "byte_identical_result": same, "byte_identical_metrics": same_metrics,
           "partial_mb": round(sum(Path(i["path"]).stat().st_size for i in infos) / 2**20, 1)}
    print(json.dumps(out))
    return out


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["search", "exhaustive", "sharded"])
    p.add_argument("--probes", type=int, default=100_000)
    p.add_argument("--gallery", type=int, default=300_000)
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--per-subject", type=int, default=5)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--memory-budget-mb", type=float, default=512.0)
    p.add_argument("--topk", type=int, default=1_000_000)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trace", action="store_true", help="tracemalloc the engine (slower)")
    a = p.parse_args(argv)
    {"search": run_search, "exhaustive": run_exhaustive, "sharded": run_sharded}[a.part](a)


if __name__ == "__main__":
    main(sys.argv[1:])
