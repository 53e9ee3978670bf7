"""One run, end to end: config -> samples -> pairs -> embeddings -> scores -> metrics -> run folder.

Each step hands the next a plain value; nothing reaches back upstream.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from . import config as config_mod
from .data import build_pairs, dataset_files, load_dataset
from .embeddings import extract
from .metrics import summary
from .report import markdown, plots, record
from .scores import ScoreTable
from .scoring import apply_failure_policy, pair_distances

log = logging.getLogger("evalkit")


def run(cfg, out_dir: str | Path) -> dict:
    """Execute one run described by a resolved config into ``out_dir``; returns metrics."""
    config_mod.validate(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    # dataset -> samples table -> protocol pairs
    samples = load_dataset(cfg.dataset)
    pairs = build_pairs(cfg.protocol, samples, cfg.dataset)
    used = pairs.used_samples()
    timings["load"] = time.perf_counter() - t
    log.info("%s: %d samples, protocol %s: %d pairs over %d images", samples.name, len(samples),
             pairs.name, len(pairs), len(used))

    # backend -> embeddings (cached), failures recorded per image
    t = time.perf_counter()
    options = config_mod.backend_options(cfg.backend)
    emb, stats, fingerprint = extract(
        [samples.paths[i] for i in used], cfg.backend.family, options, cfg.cache_dir,
        workers=cfg.backend.workers, chunk_size=cfg.backend.chunk_size, progress=cfg.progress)
    timings["embed"] = time.perf_counter() - t
    log.info("embeddings: %d from cache, %d computed, failures %s", stats.from_cache, stats.computed, stats.failures)

    # scores: one row per comparison
    t = time.perf_counter()
    dim = emb.vectors.shape[1]
    full = np.full((len(samples), max(dim, 1)), np.nan, dtype=np.float32)
    if dim:
        full[used] = emb.vectors
    ok = np.zeros(len(samples), dtype=bool)
    ok[used] = emb.ok
    dist = pair_distances(full, pairs.a, pairs.b, cfg.backend.distance)
    table = ScoreTable.build(samples, pairs, dist, ok)
    timings["score"] = time.perf_counter() - t

    # metrics: pure functions on the score table
    t = time.perf_counter()
    used_samples = samples.subset(used)
    header = {
        "experiment": cfg.experiment,
        "dataset": {"name": samples.name, "n_samples": len(used),
                    "n_subjects": int(len(np.unique(used_samples.subjects))),
                    "attributes": samples.attribute_names, "label_sources": samples.label_sources,
                    "label_coverage": used_samples.label_coverage()},
        "protocol": {"name": pairs.name, "n_comparisons": len(pairs), "n_genuine": int(pairs.mated.sum()),
                     "n_impostor": int((~pairs.mated).sum()),
                     "n_folds": int(len(np.unique(pairs.fold[pairs.fold >= 0])))},
        "backend": {"name": cfg.backend.name, "family": cfg.backend.family, "distance": cfg.backend.distance,
                    "fingerprint": fingerprint},
    }
    metrics = summary.summarise(
        table, threshold_policy=cfg.threshold.policy, target_fmr=cfg.threshold.target_fmr,
        threshold_value=cfg.threshold.value, failure_policy=cfg.failure_policy, confidence=cfg.confidence,
        image_failures=emb.failures, image_groups=used_samples.attributes, header=header,
        image_notes=emb.details)
    timings["metrics"] = time.perf_counter() - t

    # run folder
    t = time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    record.write_json(out / "metrics.json", metrics)
    table.write_csv(out / "scores.csv")
    _write_failures(out / "failures.csv", used_samples, emb)
    if cfg.det_plot:
        _det_plots(out, table, metrics, cfg)
    (out / "summary.md").write_text(markdown.render_summary(metrics))
    timings["report"] = time.perf_counter() - t
    rec = record.build_record(
        config=resolved, fingerprint=fingerprint,
        dataset_files=record.file_hashes(dataset_files(cfg.dataset)),
        images_sha256=record.images_digest(emb.keys),
        seed=cfg.seed, timings=timings, extraction=stats.as_dict(), failures=metrics["failures"]["images"])
    record.write_json(out / "record.json", rec)
    log.info("run folder: %s", out)
    return metrics


def _write_failures(path: Path, samples, emb) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample", "subject", "path", "reason", "detail", *samples.attribute_names])
        for i, f in enumerate(emb.failures):
            if f:
                w.writerow([samples.ids[i], samples.subjects[i], samples.paths[i], f, emb.details[i],
                            *[samples.attributes[a][i] for a in samples.attribute_names]])


def _det_plots(out: Path, table: ScoreTable, metrics: dict, cfg) -> None:
    scores, keep = apply_failure_policy(table.distance, table.failed, cfg.failure_policy)
    thr = metrics["threshold"]["value"]
    for attr, (ga, gb) in table.groups.items():
        curves = {}
        same = (ga == gb) & keep
        for g in np.unique(ga[same]):
            m = same & (ga == g)
            curves[str(g)] = (scores[m & table.mated], scores[m & ~table.mated])
        plots.det_plot(curves, out / f"det_{attr}", f"{metrics['experiment']}: DET by {attr}",
                       threshold=thr, min_count=2)
