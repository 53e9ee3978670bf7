"""One run, end to end: config -> samples -> pairs -> embeddings -> scores -> metrics -> run folder.

Each step hands the next a plain value; nothing reaches back upstream.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from . import black_box
from . import config as config_mod
from .data import build_pairs, dataset_files, load_dataset
from .embeddings import extract
from .metrics import summary
from .report import markdown, plots, record
from .scores import ScoreTable
from .scoring import apply_failure_policy, pair_distances

log = logging.getLogger("evalkit")
logging.getLogger("fontTools").setLevel(logging.WARNING)   # PDF font subsetting chatter


def run(cfg, out_dir: str | Path) -> dict:
    """Execute one run described by a resolved config into ``out_dir``; returns metrics."""
    config_mod.validate(cfg)
    # a scoring backend (a service, a score file) is built first: credentials and files are
    # checked before any work (evalkit.black_box)
    scorer = black_box.build(cfg) if black_box.is_scoring(cfg) else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    # dataset -> samples table -> protocol pairs
    samples = load_dataset(cfg.dataset)
    if scorer is not None and hasattr(scorer, "bind"):
        scorer.bind(samples.ids)
    if cfg.protocol.kind == "exhaustive":
        return _run_exhaustive(cfg, samples, out, timings, t)
    if cfg.protocol.kind == "search":
        return _run_search(cfg, samples, out, timings, t, scorer)
    pairs = build_pairs(cfg.protocol, samples, cfg.dataset)
    cal_pairs = None
    if cfg.threshold.policy == "calibrated" and cfg.threshold.calibration == "lfw_view1_train":
        from .data.lfw import lfw_protocol

        cal_pairs = lfw_protocol(samples, cfg.dataset.root, "view1_train")
    used = np.unique(np.concatenate([pairs.used_samples()] + ([cal_pairs.used_samples()] if cal_pairs else [])))
    timings["load"] = time.perf_counter() - t
    log.info("%s: %d samples, protocol %s: %d pairs over %d images", samples.name, len(samples),
             pairs.name, len(pairs), len(used))

    if scorer is not None:   # a scoring backend: one score per comparison from the service / file
        t = time.perf_counter()
        dist, ok, pair_failed, emb, stats, _ = black_box.score_pairs(scorer, samples, pairs, used)
        fingerprint = scorer.fingerprint()
        table = black_box.mark_pair_failures(ScoreTable.build(samples, pairs, dist, ok), pair_failed)
        table, calibration = _calibration(cfg, samples, table, None, None, ok)
        timings["score"] = time.perf_counter() - t
    else:
        # backend -> embeddings (cached), failures recorded per image
        t = time.perf_counter()
        emb, stats, fingerprint = _embed(cfg, [samples.paths[i] for i in used])
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
        table, calibration = _calibration(cfg, samples, table, cal_pairs, full, ok)
        timings["score"] = time.perf_counter() - t

    # metrics: pure functions on the score table
    t = time.perf_counter()
    used_samples = samples.subset(used)
    header = _header(cfg, samples, used_samples, fingerprint, {
        "name": pairs.name, "n_comparisons": len(table), "n_genuine": int(table.mated.sum()),
        "n_impostor": int((~table.mated).sum()), "n_folds": int(len(np.unique(table.fold[table.fold >= 0])))}, scorer)
    metrics = summary.summarise(
        table, threshold_policy=cfg.threshold.policy, target_fmr=cfg.threshold.target_fmr,
        threshold_value=_threshold_value(cfg, scorer), failure_policy=cfg.failure_policy, confidence=cfg.confidence,
        image_failures=emb.failures, image_groups=used_samples.attributes, header=header,
        image_notes=emb.details, threshold_attribute=cfg.threshold.attribute, calibration=calibration,
        reference=dict(cfg.reference), **_statistics_options(cfg))
    timings["metrics"] = time.perf_counter() - t

    # run folder
    t = time.perf_counter()
    direction = scorer.score_direction if scorer is not None else "distance"
    (black_box.present_table(table, direction) if scorer is not None else table).write_csv(out / "scores.csv")
    if cfg.det_plot:
        _det_plots(out, table, metrics, cfg, direction)
    if scorer is not None:   # thresholds in the backend's own units from here on (scoring_base.present_metrics)
        from .backends.scoring_base import present_metrics

        metrics = present_metrics(metrics, direction)
    _finish(cfg, out, metrics, used_samples, emb, stats, fingerprint, timings, t)
    return metrics


def _statistics_options(cfg) -> dict:
    """The keyword arguments every summary with groups and intervals takes from the config."""
    return {"min_count": (cfg.min_count.subjects, cfg.min_count.comparisons),
            "intersections": [list(c) for c in cfg.intersections],
            "bootstrap": ({"replicates": cfg.bootstrap.replicates, "seed": cfg.bootstrap.seed}
                          if cfg.bootstrap.replicates else None)}


def _embed(cfg, paths: list[str]):
    """The configured backend's embeddings of ``paths`` (cached; failures recorded per image)."""
    return extract(paths, cfg.backend.family, config_mod.backend_options(cfg.backend), cfg.cache_dir,
                   workers=cfg.backend.workers, chunk_size=cfg.backend.chunk_size, progress=cfg.progress)


def _header(cfg, samples, used_samples, fingerprint: dict, protocol: dict, scorer=None) -> dict:
    backend = {"name": cfg.backend.name, "family": cfg.backend.family, "distance": cfg.backend.distance,
               "fingerprint": fingerprint}
    if scorer is not None:   # a scoring backend: its declared direction replaces a distance
        backend.update(distance=None, kind="scoring", score_direction=scorer.score_direction,
                       score_range=list(scorer.score_range) if scorer.score_range else None)
    return {
        "experiment": cfg.experiment,
        "dataset": {"name": samples.name, "n_samples": len(used_samples),
                    "n_subjects": int(len(np.unique(used_samples.subjects))),
                    "attributes": samples.attribute_names, "label_sources": samples.label_sources,
                    "label_coverage": used_samples.label_coverage()},
        "protocol": protocol,
        "backend": backend,
    }


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


def _run_exhaustive(cfg, samples, out: Path, timings: dict, t: float) -> dict:
    """protocol=exhaustive: every image against every other (capped per subject), counted in
    chunks without a score table (evalkit.metrics.exhaustive)."""
    from .data.protocols import cap_images_per_subject
    from .metrics.exhaustive import exhaustive_counts

    p = cfg.protocol
    kept = cap_images_per_subject(samples, p.max_images_per_subject, np.random.default_rng(int(p.seed)))
    used_samples = samples.subset(kept)
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    emb, stats, fingerprint = _embed(cfg, list(used_samples.paths))
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    res = exhaustive_counts(emb.vectors if emb.vectors.shape[1] else np.full((len(kept), 1), np.nan, np.float32),
                            emb.ok, used_samples.subjects, dict(used_samples.attributes),
                            thresholds=[float(_threshold_value(cfg))] if cfg.threshold.policy == "fixed" else [],
                            distance=cfg.backend.distance, failure_policy=cfg.failure_policy,
                            memory_budget_mb=float(p.memory_budget_mb), topk=int(p.topk))
    timings["score"] = time.perf_counter() - t
    log.info("exhaustive: %d comparisons over %d images in %.1f s", res.n_comparisons, res.n_images, res.seconds)
    t = time.perf_counter()
    header = _header(cfg, samples, used_samples, fingerprint, {
        "name": p.name, "n_comparisons": int(res.overall.n_genuine + res.overall.n_impostor),
        "n_genuine": int(res.overall.n_genuine), "n_impostor": int(res.overall.n_impostor), "n_folds": 0,
        "max_images_per_subject": p.max_images_per_subject})
    metrics = summary.summarise_exhaustive(
        res, used_samples, threshold_policy=cfg.threshold.policy, target_fmr=cfg.threshold.target_fmr,
        threshold_value=_threshold_value(cfg), confidence=cfg.confidence, image_failures=emb.failures,
        header=header, image_notes=emb.details, min_count=(cfg.min_count.subjects, cfg.min_count.comparisons),
        reference=dict(cfg.reference))
    timings["metrics"] = time.perf_counter() - t
    t = time.perf_counter()
    _finish(cfg, out, metrics, used_samples, emb, stats, fingerprint, timings, t)
    return metrics


def _run_search(cfg, samples, out: Path, timings: dict, t: float, scorer=None) -> dict:
    """protocol=search: a seeded subject-disjoint gallery/probe split, every probe searched
    against the gallery in chunks of matrix products (evalkit.metrics.search), FPIR/FNIR/CMC per
    probe group (evalkit.metrics.search_summary)."""
    from .data.protocols import search_split
    from .metrics.search import search
    from .metrics.search_summary import summarise_search

    p = cfg.protocol
    split = search_split(samples, gallery_images_per_subject=p.gallery_images_per_subject,
                         max_probes_per_subject=p.max_probes_per_subject, nonmated_fraction=p.nonmated_fraction,
                         gallery_sizes=list(p.gallery_sizes), seed=int(p.seed), max_subjects=p.max_subjects)
    used = split.used_samples()
    used_samples = samples.subset(used)
    audit = _audit_thresholds(cfg, scorer)   # before any embedding: a bad audit setting fails early
    timings["load"] = time.perf_counter() - t
    log.info("%s: search split: %d enrolled subjects (%d gallery images), %d mated + %d non-mated probes",
             samples.name, len(split.enrolled), len(split.gallery), split.n_mated_probes, split.n_nonmated_probes)
    t = time.perf_counter()
    if scorer is not None:   # a scoring backend returns the candidate lists itself
        res, emb, stats = black_box.search_result(scorer, samples, split, int(p.candidates),
                                                  int(p.gallery_images_per_subject))
        fingerprint = scorer.fingerprint()
    else:
        emb, stats, fingerprint = _embed(cfg, list(used_samples.paths))
        timings["embed"] = time.perf_counter() - t
        t = time.perf_counter()
        pos = np.searchsorted(used, np.arange(len(samples)))   # sample row -> row of the embedded subset
        vec = emb.vectors if emb.vectors.shape[1] else np.full((len(used), 1), np.nan, np.float32)
        gi, pi = pos[split.gallery], pos[split.probes]
        res = search(vec[pi], vec[gi], split.gallery_column, split.probe_mate, sizes=split.sizes,
                     candidates=int(p.candidates), distance=cfg.backend.distance, probe_ok=emb.ok[pi],
                     gallery_ok=emb.ok[gi], memory_budget_mb=float(p.memory_budget_mb))
    timings["score"] = time.perf_counter() - t
    log.info("search: %d probes x %d gallery images in %.2f s", res.n_probes, len(split.gallery), res.seconds)
    t = time.perf_counter()
    # a subject's label for its column: the label of its first gallery image (labels are per subject
    # in LFW; a subject whose images disagree carries "conflict" on every image)
    first = np.r_[True, split.gallery_column[1:] != split.gallery_column[:-1]]
    column_groups = {a: samples.attributes[a][split.gallery[first]] for a in samples.attribute_names}
    probe_groups = {a: samples.attributes[a][split.probes] for a in samples.attribute_names}
    protocol = {"name": p.name, "kind": "search", **split.describe(samples), "candidates": int(res.candidates),
                "gallery_images_per_subject": int(p.gallery_images_per_subject),
                "max_probes_per_subject": p.max_probes_per_subject, "nonmated_fraction": float(p.nonmated_fraction),
                "max_subjects": p.max_subjects,
                "n_comparisons": int(res.n_probes * len(split.gallery))}
    header = _header(cfg, samples, used_samples, fingerprint, protocol, scorer)
    metrics = summarise_search(
        res, probe_subjects=samples.subjects[split.probes], probe_groups=probe_groups, column_groups=column_groups,
        threshold_policy=cfg.threshold.policy, target_fpir=cfg.threshold.target_fpir,
        threshold_value=_threshold_value(cfg, scorer), failure_policy=cfg.failure_policy, confidence=cfg.confidence,
        image_failures=emb.failures, image_groups=used_samples.attributes, header=header, image_notes=emb.details,
        audit=audit, **_statistics_options(cfg))
    timings["metrics"] = time.perf_counter() - t
    t = time.perf_counter()
    direction = scorer.score_direction if scorer is not None else "distance"
    _write_search_table(out / "search.csv", samples, split, res, direction)
    if scorer is not None:   # thresholds in the backend's own units from here on (scoring_base.present_metrics)
        from .backends.scoring_base import present_metrics

        metrics = present_metrics(metrics, direction)
    _finish(cfg, out, metrics, used_samples, emb, stats, fingerprint, timings, t)
    return metrics


def _audit_thresholds(cfg, scorer=None) -> list[dict]:
    """The vendor thresholds a search run audits: protocol.audit_thresholds, plus DeepFace's own
    default for the model when asked and it has one for this distance. A scoring backend's
    thresholds are in its own units (given ones too), plus the operating points it documents
    (Rekognition: 80 and 99), turned into the internal orientation (evalkit.black_box)."""
    if scorer is not None:
        given = [{"threshold": float(v), "source": "given (protocol.audit_thresholds)"} for v in cfg.protocol.audit_thresholds]
        for a in scorer.default_audit_thresholds():
            if all(g["threshold"] != a["threshold"] for g in given):
                given.append(dict(a))
        out = [{**a, "threshold": black_box.to_internal_threshold(a["threshold"], scorer.score_direction)} for a in given]
        return sorted(out, key=lambda a: a["threshold"])
    out = [{"threshold": float(v), "source": "given (protocol.audit_thresholds)"} for v in cfg.protocol.audit_thresholds]
    model = _deepface_model(cfg)
    if cfg.protocol.audit_deepface_default and model:
        from .backends.deepface_backend import deepface_threshold

        try:
            v = deepface_threshold(model, cfg.backend.distance)
        except ValueError as e:
            log.warning("no DeepFace default threshold to audit: %s", e)
        else:
            src = f"DeepFace's default threshold for {model} ({cfg.backend.distance})"
            if model == "Dlib" and cfg.backend.distance == "euclidean":
                src += "; also the default tolerance of face_recognition's compare_faces (0.6)"
            if all(a["threshold"] != v for a in out):
                out.append({"threshold": v, "source": src})
    return sorted(out, key=lambda a: a["threshold"])


def _write_search_table(path: Path, samples, split, res, direction: str = "distance") -> None:
    """search.csv: one row per probe: who it is, its mate's score and rank, its best non-mate
    score (full gallery) and the nearest candidates; enough to recompute every rate. Scores are
    in the backend's own units (a similarity backend's "no candidate" is -inf)."""
    import csv

    from .metrics.search import NO_RANK

    sign = -1.0 if direction == "similarity" else 1.0

    enrolled = split.enrolled
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["probe", "subject", "mated", "probe_ok", "mate_score", "mate_rank", "best_nonmate_score",
                    "top1_subject", "top1_score", *samples.attribute_names])
        for i, row in enumerate(split.probes):
            mated = res.probe_mate[i] >= 0
            rk = int(res.rank[i, -1])
            top = res.top_column[i, 0]
            w.writerow([samples.ids[row], samples.subjects[row], int(mated), int(res.probe_ok[i]),
                        repr(sign * float(res.mate_score[i])) if mated else "",
                        ("" if not mated else ("inf" if rk == NO_RANK else rk)),
                        repr(sign * float(res.best_nonmate[i, -1])), enrolled[top] if top >= 0 else "",
                        repr(sign * float(res.top_score[i, 0])) if top >= 0 else "",
                        *[samples.attributes[a][row] for a in samples.attribute_names]])


def _deepface_model(cfg) -> str | None:
    """The DeepFace model whose own thresholds apply to the backend: its model for the deepface
    family, "Dlib" for the native dlib backend (the same ResNet), else None."""
    return {"deepface": cfg.backend.get("model_name"), "dlib": "Dlib"}.get(cfg.backend.family)


def _threshold_value(cfg, scorer=None):
    """The fixed threshold: the configured value, or DeepFace's own for the backend's model and distance.
    A scoring backend's value is in its own units, turned into the internal orientation."""
    if scorer is not None:
        return black_box.to_internal_threshold(cfg.threshold.value, scorer.score_direction)
    if cfg.threshold.policy == "fixed" and cfg.threshold.value is None and cfg.threshold.deepface_default:
        from .backends.deepface_backend import deepface_threshold

        model = _deepface_model(cfg)
        if model is None:
            raise config_mod.ConfigError(f"threshold.deepface_default: DeepFace has no threshold for the "
                                         f"{cfg.backend.family} backend; give threshold.value")
        return deepface_threshold(model, cfg.backend.distance)
    return cfg.threshold.value


def _calibration(cfg, samples, table: ScoreTable, cal_pairs, full, ok):
    """(evaluation table, calibration split) for threshold.policy=calibrated; else (table, None)."""
    if cfg.threshold.policy != "calibrated":
        return table, None
    if cal_pairs is not None:   # LFW View 1 DevTrain -> the run's protocol
        cal = ScoreTable.build(samples, cal_pairs, pair_distances(full, cal_pairs.a, cal_pairs.b, cfg.backend.distance), ok)
        source = "LFW View 1 DevTrain (pairsDevTrain.txt)"
        extra = {"shared_subjects_with_run": int(len(np.intersect1d(
            np.concatenate([cal.subject_a, cal.subject_b]), np.concatenate([table.subject_a, table.subject_b]))))}
    else:
        from .metrics.thresholds import subject_split

        split = subject_split(table.subject_a, table.subject_b, cfg.threshold.calibration_fraction, cfg.seed)
        cal, table = table.subset(split["calibration"]), table.subset(split["evaluation"])
        source = (f"a seeded subject-disjoint split (seed {cfg.seed}, {split['n_subjects_calibration']} subjects "
                  "calibrate, the rest evaluate)")
        extra = {"n_subjects_calibration": split["n_subjects_calibration"],
                 "n_subjects_evaluation": split["n_subjects_evaluation"],
                 "dropped_straddling_comparisons": split["n_dropped"], "seed": int(cfg.seed)}
    scores, keep = apply_failure_policy(cal.distance, cal.failed, cfg.failure_policy)
    imp = scores[keep & ~cal.mated]
    if len(imp) == 0:
        raise ValueError(f"the calibration split ({source}) has no impostor comparisons")
    return table, {"source": source, "impostor": imp, "n_genuine": int((keep & cal.mated).sum()), "extra": extra}


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


def _det_plots(out: Path, table: ScoreTable, metrics: dict, cfg, direction: str = "distance") -> None:
    """Per attribute: each group's DET curve and its genuine/impostor score distributions (in the
    backend's own units and direction for a scoring backend)."""
    sign = -1.0 if direction == "similarity" else 1.0
    scores, keep = apply_failure_policy(table.distance, table.failed, cfg.failure_policy)
    th = metrics["threshold"]
    per_group = th.get("per_group") or {}
    for attr, (ga, gb) in table.groups.items():
        # one line for everyone; per-group policies mark each group's own only for the attribute
        # whose groups got their own thresholds (elsewhere a group's comparisons mix thresholds)
        thr = th["value"] if th["value"] is not None else (
            {g: v["value"] for g, v in per_group[attr].items()} if attr in per_group else None)
        curves, finite, failed = {}, {}, {}
        same = (ga == gb) & keep
        for g in np.unique(ga[same]):
            m = same & (ga == g)
            gen, imp = scores[m & table.mated], scores[m & ~table.mated]
            curves[str(g)] = (gen, imp)
            finite[str(g)] = (sign * gen[np.isfinite(gen)], sign * imp[np.isfinite(imp)])
            failed[str(g)] = int((m & table.failed).sum())
        plots.det_plot(curves, out / f"det_{attr}", f"{metrics['experiment']}: DET by {attr}",
                       threshold=thr, min_count=2, formats=plots.FORMATS)
        shown = thr if sign > 0 or thr is None else (
            {g: sign * v for g, v in thr.items()} if isinstance(thr, dict) else sign * thr)
        xlabel = (f"{cfg.backend.distance} distance (lower = more alike; linear scale)" if direction == "distance"
                  and not black_box.is_scoring(cfg) else
                  f"{cfg.backend.name} {direction} ({'higher' if direction == 'similarity' else 'lower'} = more alike; "
                  "linear scale)")
        plots.save_figure(plots.score_distribution_plot(
            finite, f"{metrics['experiment']}: score distributions by {attr}", threshold=shown,
            xlabel=xlabel, failed=failed), out / f"scores_{attr}")
