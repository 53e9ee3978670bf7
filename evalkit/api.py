"""evalkit as a library: run, load and evaluate from Python, results as pandas DataFrames.

    import evalkit

    run = evalkit.run(["protocol.pairs_per_fold=10"])     # the same overrides as `evalkit run`
    run.by_group()          # DataFrame indexed by (attribute, group): every rate with its counts and intervals
    run.disparity()         # DataFrame: one row per disparity summary
    run.scores              # DataFrame: one row per comparison (scores.csv)
    run.metrics             # the metrics.json dict
    same = evalkit.load(run.folder)

    ev = evalkit.evaluate(scores_df, labels_df, threshold=0.6)   # any score table, no config

A user's model goes wherever a backend name does: ``evalkit.run(backend=my_backend)`` takes a
:class:`evalkit.backends.base.Backend` instance, and ``evalkit.run(backend=fn, backend_version="1")``
a plain callable from an RGB image (a ``(H, W, 3)`` uint8 array) to a vector (see
:class:`CallableBackend`: the cache key of a callable is its name, its qualified name and the
version you give, so changing the function without changing the version would reuse stale
embeddings; the version is required for that reason).
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .backends.base import NO_FACE, Backend, EnrolmentFailure, read_image_bgr

__all__ = ["CallableBackend", "Run", "compose", "evaluate", "load", "run"]


# -- configs ------------------------------------------------------------------------------------
def compose(overrides: Sequence[str] = (), *, data_dir: str | os.PathLike | None = None):
    """The run config ``evalkit run <overrides>`` would use (Hydra-composed from conf/, validated
    against the schemas), without making a run folder. ``data_dir``: the data root holding
    ``lfw/`` etc. (default ``$EVALKIT_DATA_DIR``, else datasets/ in the repository)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from . import config as config_mod

    config_mod.register()
    overrides = list(overrides)
    if data_dir is not None:
        overrides.append(f"data_dir={Path(data_dir).resolve()}")
    if GlobalHydra.instance().is_initialized():   # inside a Hydra app or another compose: use a fresh one
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_mod.conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def _config_from(config: Any, overrides: Sequence[str]):
    """A run config from a DictConfig, a dict, or a path to a config.yaml (a run folder's),
    with ``key=value`` overrides applied."""
    from omegaconf import DictConfig, OmegaConf

    from . import config as config_mod

    config_mod.register()   # resolvers used by the schema defaults
    if isinstance(config, (str, os.PathLike)):
        p = Path(config)
        cfg = OmegaConf.load(p / "config.yaml" if p.is_dir() else p)
    elif isinstance(config, DictConfig):
        cfg = config.copy()
    elif isinstance(config, Mapping):
        cfg = OmegaConf.create(dict(config))
    else:
        raise TypeError(f"config must be a DictConfig, a dict or a path to a config.yaml, got {type(config).__name__}")
    for o in overrides:
        if "=" not in o or o.split("=", 1)[0].lstrip("+") in ("dataset", "backend", "protocol", "threshold"):
            raise ValueError(f"override {o!r}: with config= only key=value overrides apply (no config groups); "
                             "use evalkit.run(overrides=[...]) without config= to compose groups")
        import yaml

        key, value = o.lstrip("+").split("=", 1)
        OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, force_add=True)
    return cfg


# -- a callable as a backend --------------------------------------------------------------------
class CallableBackend(Backend):
    """A plain function from an image to a vector, as a backend.

    ``fn`` gets an RGB ``uint8`` array of shape ``(H, W, 3)`` and returns a 1-d vector; it may
    return ``None`` or raise :class:`evalkit.backends.base.EnrolmentFailure` for an image without
    a usable face (recorded as ``no_face`` or the given reason, per image, never dropped); any
    other exception is recorded as ``error`` for that image.

    The fingerprint (the embedding cache key, and what record.json states) is
    ``{"backend": "callable", "name": name, "function": "<module>.<qualname>", "version": version}``:
    evalkit cannot see inside a function, so ``version`` is required and must change whenever the
    function's output could (weights, preprocessing). ``fingerprint`` (a dict) replaces the
    generated one entirely, for models that can describe themselves (e.g. a weights hash).
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], *, version: str | None = None, name: str | None = None,
                 distance: str = "cosine", fingerprint: Mapping | None = None):
        if not callable(fn):
            raise TypeError(f"CallableBackend needs a callable, got {type(fn).__name__}")
        if fingerprint is None and (version is None or str(version).strip() == ""):
            raise ValueError("a callable backend needs version= (or fingerprint=): the embedding cache is keyed by "
                             "it, and evalkit cannot tell when a function's output changes. Bump it when it does.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.distance = distance
        qual = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
        self._fingerprint = (dict(fingerprint) if fingerprint is not None else
                             {"backend": "callable", "name": self.name, "function": qual, "version": str(version)})

    def embed_one(self, path: str):
        img = read_image_bgr(path)[:, :, ::-1]   # BGR -> RGB
        out = self.fn(np.ascontiguousarray(img))
        if out is None:
            raise EnrolmentFailure(NO_FACE, f"{self.name} returned no vector")
        v = np.asarray(out, dtype=np.float32).ravel()
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"{self.name} returned an empty or non-finite vector")
        return v

    def fingerprint(self) -> dict:
        return dict(self._fingerprint)


def as_backend(backend: Any, version: str | None = None) -> Backend:
    """A Backend instance from a Backend instance or a plain callable (see :class:`CallableBackend`)."""
    if isinstance(backend, Backend):
        return backend
    if callable(backend) and not isinstance(backend, type):
        return CallableBackend(backend, version=version)
    raise TypeError(f"backend must be a conf/backend name, a Backend instance or a callable image -> vector; "
                    f"got {backend!r}")


# -- runs ---------------------------------------------------------------------------------------
def run(overrides: Sequence[str] | None = None, *, config: Any = None, backend: Any = None,
        backend_version: str | None = None, folder: str | os.PathLike | None = None,
        results_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> "Run":
    """One evalkit run from Python; returns its :class:`Run`.

    overrides: ``evalkit run`` command-line overrides (``["backend=lbph", "threshold.target_fmr=1e-4"]``),
        composed with conf/ by Hydra; or ``config``: a full run config (DictConfig, dict, or a path to a
        run folder's config.yaml) to which only ``key=value`` overrides apply.
    backend: a conf/backend name (``"lbph"``: the same as the override ``backend=lbph``), a
        :class:`~evalkit.backends.base.Backend` instance, or a callable image -> vector (with
        ``backend_version``; see :class:`CallableBackend`). An instance runs in this process.
    folder: the run folder (default ``<results_dir>/<experiment>/<date_time>``, as ``evalkit run``);
    results_dir: overrides ``results_dir`` (default ``results``); data_dir: the data root
        (default ``$EVALKIT_DATA_DIR``, else datasets/ in the repository).
    """
    from .pipeline import run as pipeline_run

    overrides = list(overrides or [])
    instance = None
    if isinstance(backend, str):
        overrides.append(f"backend={backend}")
    elif backend is not None:
        instance = as_backend(backend, backend_version)
    if results_dir is not None:
        overrides.append(f"results_dir={results_dir}")
    if config is None:
        cfg = compose(overrides, data_dir=data_dir)
    else:
        if data_dir is not None:
            overrides.append(f"data_dir={Path(data_dir).resolve()}")
        cfg = _config_from(config, overrides)
    if folder is None:
        name = cfg.experiment if instance is None else f"{cfg.dataset.name}-{cfg.protocol.name}-{instance.name}"
        folder = Path(cfg.results_dir) / name / _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    pipeline_run(cfg, folder, backend=instance)
    return Run(folder)   # read back from metrics.json: exactly what load(folder) gives


def load(run_dir: str | os.PathLike) -> "Run":
    """The :class:`Run` of an existing run folder (metrics.json, scores.csv ... read when asked)."""
    folder = Path(run_dir)
    if not (folder / "metrics.json").is_file():
        raise FileNotFoundError(f"{folder}: no metrics.json (not a run folder)")
    return Run(folder)


class Run:
    """One run's results. ``folder`` is None for an :func:`evaluate` result (nothing on disk).

    Attributes / methods:
        metrics: the metrics.json dict (schema evalkit.metrics/3: evalkit.metrics.results).
        estimates(): every rate as a typed RateEstimate; threshold: the ThresholdRecord.
        scores: one row per comparison (scores.csv; for a search run, search.csv: one row per probe).
        by_group(rate=None): every rate per (attribute, group); see :meth:`by_group`.
        rates(): the same, long: one row per (attribute, group, rate).
        disparity(): one row per disparity summary per attribute.
        config, record: the run folder's config.yaml and record.json.
    """

    def __init__(self, folder: str | os.PathLike | None, *, metrics: dict | None = None, scores=None):
        self.folder = Path(folder) if folder is not None else None
        self._metrics = metrics
        self._scores = scores

    def __repr__(self) -> str:
        m = self.metrics
        return f"<evalkit.Run {m.get('experiment')!r} ({self.kind}) at {self.folder}>"

    # -- what the folder holds ------------------------------------------------------------------
    @property
    def metrics(self) -> dict:
        if self._metrics is None:
            import json

            self._metrics = json.loads((self.folder / "metrics.json").read_text())
        return self._metrics

    @property
    def kind(self) -> str:
        """"search" (1:N) or "verification" (1:1)."""
        from .metrics.results import run_kind

        return run_kind(self.metrics)

    @property
    def config(self) -> dict:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.load(self._file("config.yaml")))

    @property
    def record(self) -> dict:
        import json

        return json.loads(self._file("record.json").read_text())

    def _file(self, name: str) -> Path:
        if self.folder is None:
            raise FileNotFoundError(f"this result has no run folder (made by evalkit.evaluate), so no {name}")
        return self.folder / name

    @property
    def scores(self):
        """pandas DataFrame, one row per comparison (scores.csv: sample_a, sample_b, subject_a,
        subject_b, mated, fold, score (NaN where failed), failed, <attribute>_a, <attribute>_b);
        for a search run, search.csv (one row per probe). Exhaustive runs keep counts, not scores."""
        if self._scores is None:
            import pandas as pd

            from .scores import read_scores_csv

            if self.folder is not None and (self.folder / "scores.csv").is_file():
                self._scores = read_scores_csv(self.folder / "scores.csv").to_frame()
            elif self.folder is not None and (self.folder / "search.csv").is_file():
                self._scores = pd.read_csv(self.folder / "search.csv", keep_default_na=False,
                                           na_values={c: [""] for c in ("mate_score", "top1_score")})
            else:
                raise FileNotFoundError(f"{self.folder}: no scores.csv or search.csv (an exhaustive run keeps "
                                        "counts, not one score per comparison)")
        return self._scores

    # -- tables ---------------------------------------------------------------------------------
    def rates(self):
        """Long DataFrame: one row per (attribute, group, rate) with columns attribute, group,
        rate_name, rate, errors, n, subjects, ci_low, ci_high, upper, boot_low, boot_high, small,
        reason. attribute "overall" / group "all" is the whole run; intersections are named
        "sex x race"; "mixed" holds the comparisons across groups (1:1)."""
        import pandas as pd

        from .metrics.results import ROW_COLUMNS

        return pd.DataFrame(rate_rows(self.metrics), columns=list(ROW_COLUMNS))

    def by_group(self, rate: str | None = None):
        """DataFrame indexed by (attribute, group). Columns: (rate name, field) for every rate the
        run has (fmr, fnmr, fte for 1:1; fpir, fnir, fnir_rank1, fte for search), fields rate,
        errors, n, subjects, ci_low, ci_high, upper (exact one-sided bound when no errors),
        boot_low, boot_high (subject-clustered bootstrap), small, reason. ``rate="fnmr"``: that
        rate's fields only, as plain columns."""
        long = self.rates()
        if rate is not None:
            known = sorted(set(long["rate_name"]))
            if rate not in known:
                import difflib

                hint = difflib.get_close_matches(rate, known, n=1)
                raise KeyError(f"no rate {rate!r} in this run; it has {known}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
            return long[long["rate_name"] == rate].drop(columns="rate_name").set_index(["attribute", "group"])
        wide = long.set_index(["attribute", "group", "rate_name"]).unstack("rate_name")
        wide.columns = wide.columns.swaplevel(0, 1)
        order = list(dict.fromkeys(long["rate_name"]))
        from .metrics.results import ROW_COLUMNS

        fields = [c for c in ROW_COLUMNS if c not in ("attribute", "group", "rate_name")]
        wide = wide.reindex(columns=[(r, f) for r in order for f in fields])
        rows = list(dict.fromkeys(zip(long["attribute"], long["group"])))
        return wide.reindex(rows)

    def disparity(self):
        """DataFrame, one row per (attribute, summary[, group]): value, ci_low, ci_high, reason,
        definition, source; ratio-to-reference summaries give one row per group."""
        import pandas as pd

        from .metrics.results import DISPARITY_COLUMNS

        df = pd.DataFrame(disparity_rows(self.metrics), columns=list(DISPARITY_COLUMNS))
        df["group"] = df["group"].fillna("")
        return df.set_index(["attribute", "summary", "group"])

    def estimates(self) -> dict:
        """Every rate as a typed :class:`evalkit.metrics.results.RateEstimate`, keyed by
        (attribute, group, rate name); ("overall", "all", rate) for the whole run."""
        from .metrics.results import FIELDS, RateEstimate, group_blocks, rates_of

        m, out = self.metrics, {}
        for k, r in rates_of(m.get("overall")).items():
            out[("overall", "all", k)] = RateEstimate.from_dict(r)
        blocks = [(a, g, e) for a, gs in group_blocks(m).items() for g, e in gs.items()]
        blocks += [(a, "mixed", e) for a, e in (m.get("mixed") or {}).items()]
        blocks += [(a, g, e) for a, gs in ((m.get("failures") or {}).get("by_group") or {}).items() for g, e in gs.items()]
        for a, g, e in blocks:
            for k, r in rates_of(e).items():
                out[(a, g, k)] = RateEstimate.from_dict({f: r.get(f) for f in FIELDS})
        return out

    @property
    def threshold(self):
        """The run's operating threshold as a :class:`evalkit.metrics.results.ThresholdRecord`."""
        from .metrics.results import ThresholdRecord

        return ThresholdRecord.from_dict(self.metrics["threshold"])


# -- metrics.json -> rows: the result model's own (evalkit.metrics.results) ----------------------
def rate_rows(metrics: dict) -> list[dict]:
    """metrics.json -> one row per (attribute, group, rate): ``evalkit.metrics.results.by_group_rows``."""
    from .metrics.results import by_group_rows

    return by_group_rows(metrics)


def disparity_rows(metrics: dict) -> list[dict]:
    """metrics.json disparity block -> rows: ``evalkit.metrics.results.disparity_rows``."""
    from .metrics.results import disparity_rows as rows

    return rows(metrics)


# -- evaluate: any score table, no config -------------------------------------------------------
def evaluate(scores, labels=None, *, threshold: float | None = None, target_fmr: float = 1e-3,
             policy: str | None = None, threshold_attribute: str | None = None, failure_policy: str = "nonmatch",
             confidence: float = 0.95, min_count: tuple[int, int] = (10, 30),
             intersections: Iterable[Sequence[str]] = (), bootstrap: int = 0, seed: int = 0,
             reference: Mapping[str, str] | None = None, name: str = "scores") -> Run:
    """Everything evalkit computes for a 1:1 run, from any score table: the counterpart of
    fairlearn's MetricFrame for face recognition. Returns a :class:`Run` without a folder.

    scores: DataFrame, one row per comparison, columns ``sample_a``, ``sample_b`` (image ids),
        ``subject_a``, ``subject_b``, ``score`` (a distance: lower = more alike; NaN = the comparison
        failed), optionally ``mated`` (checked against the subjects), ``failed``, ``fold``; and,
        when ``labels`` is None, ``<attribute>_a`` / ``<attribute>_b`` label columns (as scores.csv).
    labels: DataFrame indexed by image id (or with a ``sample`` column), one column per
        attribute; an image it does not list is ``unlabelled``. An optional ``failure`` column
        (a reason such as "no_face", empty when the image enrolled) gives failure to enrol per group.
    threshold: a distance (policy ``fixed``); None: one threshold for everyone at ``target_fmr``
        over all impostors (``global_fmr``); policy="per_group_fmr": each group's own threshold
        (of ``threshold_attribute``).
    The other arguments are those of the run config (failure_policy, confidence, min_count as
    (subjects, comparisons), intersections, bootstrap replicates, seed, reference groups).
    """
    import pandas as pd

    from .labels import UNLABELLED
    from .metrics import summary
    from .scores import ScoreTable

    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    need = [c for c in ("sample_a", "sample_b", "subject_a", "subject_b", "score") if c not in scores.columns]
    if need:
        raise ValueError(f"scores lacks column(s) {need}; it has {list(scores.columns)}")
    if len(scores) == 0:
        raise ValueError("scores has no rows")
    df = scores.reset_index(drop=True)
    sa, sb = df["sample_a"].astype(str).to_numpy(), df["sample_b"].astype(str).to_numpy()
    ua, ub = df["subject_a"].astype(str).to_numpy(), df["subject_b"].astype(str).to_numpy()
    same = ua == ub
    if "mated" in df.columns:
        mated = df["mated"].astype(bool).to_numpy()
        bad = np.flatnonzero(mated != same)
        if len(bad):
            i = bad[0]
            raise ValueError(f"scores row {i} ({sa[i]}, {sb[i]}) has mated={bool(mated[i])} but subjects "
                             f"{ua[i]!r} and {ub[i]!r}")
    else:
        mated = same
    score = pd.to_numeric(df["score"], errors="raise").to_numpy(dtype=float)
    failed = ~np.isfinite(score)
    if "failed" in df.columns:
        failed |= df["failed"].astype(bool).to_numpy()
    fold = df["fold"].astype(int).to_numpy() if "fold" in df.columns else np.full(len(df), -1, np.int64)

    # images: every sample id with its subject (one subject per image)
    ids = np.concatenate([sa, sb])
    subj = np.concatenate([ua, ub])
    images, first = np.unique(ids, return_index=True)
    image_subject = subj[first]
    clash = np.flatnonzero(image_subject[np.searchsorted(images, ids)] != subj)
    if len(clash):
        raise ValueError(f"image {ids[clash[0]]!r} appears with two subjects ({image_subject[np.searchsorted(images, ids[clash[0]])]!r}, "
                         f"{subj[clash[0]]!r})")
    pos_a, pos_b = np.searchsorted(images, sa), np.searchsorted(images, sb)

    image_labels: dict[str, np.ndarray] = {}
    failures = [None] * len(images)
    if labels is not None:
        lab = labels if isinstance(labels, pd.DataFrame) else pd.DataFrame(labels)
        if "sample" in lab.columns:
            lab = lab.set_index("sample")
        lab.index = lab.index.astype(str)
        if not lab.index.is_unique:
            raise ValueError(f"labels lists image(s) twice: {sorted(set(lab.index[lab.index.duplicated()]))[:5]}")
        lab = lab.reindex(images)
        for col in lab.columns:
            values = lab[col]
            if col == "failure":
                failures = [None if (isinstance(v, float) and np.isnan(v)) or v in ("", None) else str(v)
                            for v in values.tolist()]
                continue
            image_labels[str(col)] = np.array([UNLABELLED if (v is None or (isinstance(v, float) and np.isnan(v))
                                                              or str(v) == "") else str(v) for v in values.tolist()])
    else:
        attrs = [c[:-2] for c in df.columns if c.endswith("_a") and c not in ("sample_a", "subject_a")
                 and f"{c[:-2]}_b" in df.columns]
        for a in attrs:
            both = np.concatenate([df[f"{a}_a"].astype(str).to_numpy(), df[f"{a}_b"].astype(str).to_numpy()])
            per = both[first]
            clash = np.flatnonzero(per[np.searchsorted(images, ids)] != both)
            if len(clash):
                raise ValueError(f"image {ids[clash[0]]!r} has two {a} labels in scores")
            image_labels[a] = per
    table = ScoreTable(sample_a=sa, sample_b=sb, subject_a=ua, subject_b=ub, mated=mated, fold=fold,
                       distance=np.where(failed, np.nan, score), failed=failed,
                       groups={a: (v[pos_a], v[pos_b]) for a, v in image_labels.items()})

    if policy is None:
        policy = "fixed" if threshold is not None else "global_fmr"
    if policy not in ("fixed", "global_fmr", "per_group_fmr"):
        raise ValueError(f"policy={policy!r}: evaluate() takes fixed, global_fmr or per_group_fmr")
    if policy == "fixed" and threshold is None:
        raise ValueError("policy='fixed' needs threshold= (a distance)")
    attrs = list(image_labels)
    from .data.samples import Samples

    used = Samples(name, images, images, image_subject, image_labels, {a: "given labels (evalkit.evaluate)" for a in attrs})
    header = {
        "experiment": name,
        "dataset": {"name": name, "n_samples": len(images), "n_subjects": int(len(np.unique(image_subject))),
                    "attributes": attrs, "label_sources": used.label_sources, "label_coverage": used.label_coverage()},
        "protocol": {"name": "given scores", "n_comparisons": len(table), "n_genuine": int(mated.sum()),
                     "n_impostor": int((~mated).sum()), "n_folds": int(len(np.unique(fold[fold >= 0])))},
        "backend": {"name": name, "family": "scores", "distance": "given", "fingerprint": {}},
    }
    combos = [list(c) for c in intersections]
    metrics = summary.summarise(
        table, threshold_policy=policy, target_fmr=target_fmr, threshold_value=threshold,
        failure_policy=failure_policy, confidence=confidence, image_failures=failures, image_groups=image_labels,
        header=header, threshold_attribute=threshold_attribute, min_count=tuple(min_count), intersections=combos,
        image_subjects=image_subject,
        bootstrap={"replicates": int(bootstrap), "seed": int(seed)} if bootstrap else None,
        reference=dict(reference or {}))
    import json

    metrics = json.loads(json.dumps(metrics))   # exactly what metrics.json would hold (tuples -> lists ...)
    return Run(None, metrics=metrics, scores=table.to_frame())
