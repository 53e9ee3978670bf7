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
from . import preflight, runfolder
from .data import dataset_files, load_dataset
from . import shard
from .protocols import build_protocol
from .protocols.base import Embedded, RunContext
from .report import markdown, plots, record

log = logging.getLogger("evalkit")
logging.getLogger("fontTools").setLevel(logging.WARNING)   # PDF font subsetting chatter


@runfolder.marks_failures   # a run that raises leaves FAILED.json with its error (evalkit.runfolder)
def run(cfg, out_dir: str | Path, backend=None) -> dict:
    """Execute one run described by a resolved config into ``out_dir``; returns metrics.

    The same steps for every protocol (evalkit.protocols.base): dataset -> protocol.check ->
    protocol.plan -> embeddings of the planned rows (cached) -> protocol.score ->
    protocol.summarise -> run folder. ``backend``: a Backend instance to use instead of the
    config's (evalkit.api); ``cfg.backend`` is then replaced by a description of it."""
    from .backends import backend_class

    if backend is not None:
        cfg.backend = instance_config(backend, cfg.backend)
        bcls = type(backend)
        config_mod.validate(cfg, backend_class=bcls)
    else:
        config_mod.validate(cfg)
        bcls = backend_class(cfg.backend)
    preflight.check_config(cfg)
    protocol = build_protocol(cfg.protocol, backend_class=bcls)
    shard.check_stage(cfg, protocol)
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
    preflight.check_data(cfg, plan.used_samples, getattr(plan, "pairs", None),
                         getattr(protocol, "needs_genuine", True))   # data shape, before embedding
    timings["load"] = time.perf_counter() - t
    stage = cfg.get("stage", "run")    # a cluster job's piece of the run (evalkit/shard.py)
    if stage == "embed":
        return shard.embed_stage(cfg, samples, plan, out, _extract_options(cfg, bcls, backend))

    if scorer is not None:   # the service / score file scores the plan itself (no embeddings)
        t = time.perf_counter()
        box = black_box.BlackBox(scorer, plan.rows, samples)
        output = protocol.score(cfg, plan, box)
        emb, stats, fingerprint = box.result, box.stats, box.fingerprint
        timings["score"] = time.perf_counter() - t
    else:
        # backend -> embeddings of the planned rows (cached), failures recorded per image
        t = time.perf_counter()
        emb, stats, fingerprint = _embed(cfg, [samples.paths[i] for i in plan.rows], out, bcls, backend)
        timings["embed"] = time.perf_counter() - t
        log.info("embeddings: %d from cache, %d computed, failures %s", stats.from_cache, stats.computed, stats.failures)

        # scores (or counts, or candidate lists)
        t = time.perf_counter()
        embedded = Embedded(plan.rows, emb, len(samples), fingerprint)
        if stage == "score":
            return shard.score_stage(cfg, protocol, plan, embedded, out)
        output = (shard.merge_stage(cfg, protocol, plan, embedded) if stage == "merge"
                  else protocol.score(cfg, plan, embedded))
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
    context.extra["figures"] = figure_jobs(cfg)   # drawn in parallel while the run folder is written

    # run folder
    t = time.perf_counter()
    protocol.write(out, plan, output, context)
    if scorer is not None:   # thresholds in the backend's own units from here on (scoring_base.present_metrics)
        from .backends.scoring_base import present_metrics

        metrics = present_metrics(metrics, scorer.score_direction)
    _finish(cfg, out, metrics, plan.used_samples, emb, stats, fingerprint, timings, t, context.extra["figures"])
    return metrics


def _extract_options(cfg, bcls=None, backend=None) -> dict:
    """The extraction loop's arguments for the configured backend (all but the paths): the
    dataset's face rule is passed when the user set no backend.multiple_faces and the backend
    implements it; with a Backend instance (evalkit.api), that instance and no options."""
    opts = {} if backend is not None else config_mod.backend_options(
        cfg.backend, cfg.dataset, getattr(bcls, "multiple_faces_choices", None))
    return dict(family=cfg.backend.get("target") or cfg.backend.family, options=opts,
                cache_root=cfg.cache_dir, workers=cfg.backend.workers, chunk_size=cfg.backend.chunk_size,
                progress=cfg.progress, backend=backend)


def _embed(cfg, paths: list[str], out: Path | None = None, bcls=None, backend=None):
    """The configured backend's (or the given instance's) embeddings of ``paths`` (cached;
    failures recorded per image). Images missing from the cache are embedded unless
    ``embed_missing`` (or a sharded ``evalkit embed`` of these images) says otherwise: see
    ``shard.run_embeddings``."""
    return shard.run_embeddings(cfg, paths, out, _extract_options(cfg, bcls, backend))


def instance_config(backend, base=None):
    """The ``backend`` block of a run that uses a Backend instance: its name (also its family,
    which names its cache folder), its distance, its class; workers 1 (it runs in-process)."""
    cls = type(backend)
    return OmegaConf.create({"name": str(backend.name), "family": str(backend.name), "workers": 1,
                             "chunk_size": int(base.get("chunk_size", 16)) if base is not None else 16,
                             "distance": str(backend.distance), "instance": f"{cls.__module__}.{cls.__qualname__}"})


def _finish(cfg, out: Path, metrics: dict, used_samples, emb, stats, fingerprint, timings: dict, t: float,
            jobs) -> None:
    """Write what every run folder holds besides scores: config, metrics, failures, figures (on
    ``jobs``, the run's FigureJobs, collected before the HTML report), summary, HTML report and
    the record."""
    if cfg.det_plot:
        _metric_plots(out, metrics, figure_formats(cfg), jobs)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    record.write_json(out / "metrics.json", metrics)
    _write_failures(out / "failures.csv", used_samples, emb)
    (out / "summary.md").write_text(markdown.render_summary(metrics))
    jobs.wait()
    log.info("figures: %d drawn, %d reused, %d failed", jobs.drawn, jobs.reused, jobs.failed)
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


def figure_formats(cfg) -> tuple[str, ...]:
    """The formats figures are written in: SVG always (the HTML report inlines it), plus
    ``report.formats`` (png, pdf: on request, as each costs a render of every figure)."""
    rep = cfg.get("report")
    return tuple(dict.fromkeys(["svg", *((rep.formats if rep is not None else None) or [])]))


def figure_jobs(cfg):
    """The run's figure drawer (evalkit/report/figures.py): ``report.workers`` processes,
    ``report.figure_cache`` for figures whose inputs did not change."""
    from .report.figures import FigureJobs

    rep = cfg.get("report")
    return FigureJobs(workers=rep.get("workers", 2) if rep is not None else 2,
                      cache_dir=rep.get("figure_cache") if rep is not None else None)


def _metric_plots(out: Path, metrics: dict, formats=plots.FORMATS, jobs=None) -> None:
    """Publication figures drawn from metrics alone: cross-group FMR heatmaps, failure to enrol;
    for a search run, per attribute: CMC, FPIR/FNIR against gallery size, false candidates, audit.
    With ``jobs`` (a FigureJobs) they are scheduled there; without, drawn here."""
    from functools import partial

    from .report.figures import FigureJobs

    own = jobs is None
    jobs = FigureJobs(workers=1) if own else jobs
    for attr, cross in (metrics.get("cross_fmr") or {}).items():
        jobs.add(out / f"cross_fmr_{attr}", partial(plots.cross_fmr_heatmap, cross,
                                                    f"{metrics['experiment']}: impostor FMR by {attr}"), formats)
    if "search" in metrics:
        for stem, _, make in plots.search_figures(metrics):
            jobs.add(out / stem, make, formats)
    jobs.add(out / "fte", partial(plots.failure_to_enrol_plot, metrics["failures"]["by_group"],
                                  f"{metrics['experiment']}: failure to enrol"), formats)
    if own:
        jobs.wait()
