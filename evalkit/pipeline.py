"""One run, end to end: config -> samples -> protocol plan -> embeddings -> scores -> metrics -> run folder.

Each step hands the next a plain value; nothing reaches back upstream. What differs between
protocols (which images, how they are scored and summarised, which tables they write) is the
protocol's (evalkit.protocols); this module has no switch on the protocol's kind.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from . import black_box
from . import config as config_mod
from .data import dataset_files, load_dataset
from .embeddings import extract
from .protocols import build_protocol
from .protocols.base import Embedded, RunContext
from .report import markdown, plots, record

log = logging.getLogger("evalkit")
logging.getLogger("fontTools").setLevel(logging.WARNING)   # PDF font subsetting chatter


def run(cfg, out_dir: str | Path) -> dict:
    """Execute one run described by a resolved config into ``out_dir``; returns metrics.

    The same steps for every protocol (evalkit.protocols.base): dataset -> protocol.check ->
    protocol.plan -> embeddings of the planned rows (cached) -> protocol.score ->
    protocol.summarise -> run folder."""
    from .backends import backend_class

    config_mod.validate(cfg)
    bcls = backend_class(cfg.backend)
    protocol = build_protocol(cfg.protocol, backend_class=bcls)
    # a scoring backend (a service, a score file: evalkit.black_box) is built first, so its
    # credentials and files are checked before any work
    scorer = black_box.build(cfg) if black_box.is_scoring_class(bcls) else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    # dataset -> samples table -> the protocol's plan (every check before any embedding)
    samples = load_dataset(cfg.dataset)
    if scorer is not None and hasattr(scorer, "bind"):
        scorer.bind(samples.ids)
    protocol.check(cfg, samples)
    plan = protocol.plan(cfg, samples)
    timings["load"] = time.perf_counter() - t

    if scorer is not None:   # the service / score file scores the plan itself (no embeddings)
        t = time.perf_counter()
        box = black_box.BlackBox(scorer, plan.rows, samples)
        output = protocol.score(cfg, plan, box)
        emb, stats, fingerprint = box.result, box.stats, box.fingerprint
        timings["score"] = time.perf_counter() - t
    else:
        # backend -> embeddings of the planned rows (cached), failures recorded per image
        t = time.perf_counter()
        emb, stats, fingerprint = _embed(cfg, [samples.paths[i] for i in plan.rows])
        timings["embed"] = time.perf_counter() - t
        log.info("embeddings: %d from cache, %d computed, failures %s", stats.from_cache, stats.computed, stats.failures)

        # scores (or counts, or candidate lists)
        t = time.perf_counter()
        output = protocol.score(cfg, plan, Embedded(plan.rows, emb, len(samples), fingerprint))
        timings["score"] = time.perf_counter() - t

    # metrics: pure functions on what was scored
    t = time.perf_counter()
    context = RunContext(cfg, samples, plan, emb, fingerprint)
    if scorer is not None:
        context.extra["score_direction"] = scorer.score_direction
    metrics = protocol.summarise(cfg, plan, output, context)
    if scorer is not None:
        metrics = black_box.declare(metrics, scorer)
    context.metrics = metrics
    timings["metrics"] = time.perf_counter() - t

    # run folder
    t = time.perf_counter()
    protocol.write(out, plan, output, context)
    if scorer is not None:   # thresholds in the backend's own units from here on (scoring_base.present_metrics)
        from .backends.scoring_base import present_metrics

        metrics = present_metrics(metrics, scorer.score_direction)
    _finish(cfg, out, metrics, plan.used_samples, emb, stats, fingerprint, timings, t)
    return metrics


def _embed(cfg, paths: list[str]):
    """The configured backend's embeddings of ``paths`` (cached; failures recorded per image)."""
    return extract(paths, cfg.backend.get("target") or cfg.backend.family, config_mod.backend_options(cfg.backend),
                   cfg.cache_dir, workers=cfg.backend.workers, chunk_size=cfg.backend.chunk_size,
                   progress=cfg.progress)


def _finish(cfg, out: Path, metrics: dict, used_samples, emb, stats, fingerprint, timings: dict, t: float) -> None:
    """Write what every run folder holds besides scores: config, metrics, failures, figures,
    summary, HTML report and the record."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    record.write_json(out / "metrics.json", metrics)
    _write_failures(out / "failures.csv", used_samples, emb)
    if cfg.det_plot:
        _metric_plots(out, metrics)
    (out / "summary.md").write_text(markdown.render_summary(metrics))
    timings["report"] = time.perf_counter() - t
    rec = record.build_record(
        config=resolved, fingerprint=fingerprint,
        dataset_files=record.file_hashes(dataset_files(cfg.dataset)),
        images_sha256=record.images_digest(emb.keys),
        seed=cfg.seed, timings=timings, extraction=stats.as_dict(), failures=metrics["failures"]["images"])
    record.write_json(out / "record.json", rec)
    from .report import html as report_html

    report_html.write_report(out)
    log.info("run folder: %s", out)


def _write_failures(path: Path, samples, emb) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample", "subject", "path", "reason", "detail", *samples.attribute_names])
        for i, f in enumerate(emb.failures):
            if f:
                w.writerow([samples.ids[i], samples.subjects[i], samples.paths[i], f, emb.details[i],
                            *[samples.attributes[a][i] for a in samples.attribute_names]])


def _metric_plots(out: Path, metrics: dict) -> None:
    """Publication figures drawn from metrics alone: cross-group FMR heatmaps, failure to enrol;
    for a search run, per attribute: CMC, FPIR/FNIR against gallery size, false candidates, audit."""
    for attr, cross in (metrics.get("cross_fmr") or {}).items():
        plots.save_figure(plots.cross_fmr_heatmap(cross, f"{metrics['experiment']}: impostor FMR by {attr}"),
                          out / f"cross_fmr_{attr}")
    if "search" in metrics:
        for stem, _, make in plots.search_figures(metrics):
            plots.save_figure(make(), out / stem)
    plots.save_figure(plots.failure_to_enrol_plot(metrics["failures"]["by_group"],
                                                  f"{metrics['experiment']}: failure to enrol"), out / "fte")
