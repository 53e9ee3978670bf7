"""A run folder's state, and what a run says on the console when it ends.

A run folder is in one of three states, told apart by its files:

- **finished**: ``metrics.json`` is there (written by the run's last steps);
- **failed**: ``FAILED.json`` is there: ``{"status": "failed", "error": "...", "type": "...",
  "time": "..."}``, written by :func:`marks_failures` when the run raised (a config value, a
  dataset, an interrupted run: anything), before the error reaches the user;
- **in progress or killed**: neither (``kill -9`` leaves no trace; ``.hydra/`` and a log only).

``evalkit report``, ``compare`` and ``check`` read only finished folders: :func:`require_finished`
refuses the other two states with a message that says which and why.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

FAILED_NAME = "FAILED.json"


class RunFolderError(ValueError):
    """A folder that is not a finished run (failed, in progress, or not a run at all)."""


def mark_failed(out_dir, exc: BaseException) -> Path | None:
    """Write ``out_dir/FAILED.json`` describing ``exc``; returns its path (None if it cannot be written)."""
    try:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        err = str(exc) or type(exc).__name__
        if isinstance(exc, KeyboardInterrupt):
            err = "interrupted (Ctrl-C)"
        record = {"status": "failed", "error": err, "type": type(exc).__name__,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "note": "this run did not finish: no metrics.json; evalkit report, compare and check refuse it"}
        p = out / FAILED_NAME
        p.write_text(json.dumps(record, indent=2) + "\n")
        return p
    except Exception:   # never hide the run's own error behind one about the marker
        return None


def marks_failures(run):
    """Decorate ``run(cfg, out_dir, ...)``: a stale marker is removed when the run starts, and any
    exception (KeyboardInterrupt included) leaves ``out_dir/FAILED.json`` before it propagates."""
    @functools.wraps(run)
    def wrapper(cfg, out_dir, *args, **kwargs):
        marker = Path(out_dir) / FAILED_NAME
        if marker.exists():
            marker.unlink()
        try:
            return run(cfg, out_dir, *args, **kwargs)
        except BaseException as exc:
            mark_failed(out_dir, exc)
            raise
    return wrapper


def failure(run_dir) -> dict | None:
    """The FAILED.json record of a run folder, or None when it has none."""
    p = Path(run_dir) / FAILED_NAME
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
        return rec if isinstance(rec, dict) else {"error": str(rec)}
    except (OSError, json.JSONDecodeError):
        return {"error": "(FAILED.json unreadable)"}


def require_finished(path, what: str = "run") -> Path:
    """The run folder of ``path`` (a folder, or its metrics.json) if the run finished; else
    RunFolderError saying whether it failed (with its error), is in progress or was killed, or is
    not a run folder. A path that does not exist is left to the caller's own message."""
    p = Path(path)
    d = p.parent if p.name == "metrics.json" else p
    rec = failure(d)
    if rec is not None:
        raise RunFolderError(f"{what} {d} is a failed run: {rec.get('error', '?')} (see {d / FAILED_NAME}); "
                             "fix the cause and run it again")
    if d.is_dir() and not (d / "metrics.json").is_file() and ((d / ".hydra").is_dir() or any(d.glob("*.log"))):
        raise RunFolderError(f"{what} {d} has no metrics.json and no {FAILED_NAME}: the run is still going, or was "
                             "killed before it finished; wait for it or run it again")
    return d


# -- the console summary ----------------------------------------------------------------------
def _pct(x) -> str:
    if x is None:
        return "-"
    x = float(x)
    return f"{100 * x:.3g}%" if x else "0%"


def _rate(entry: dict, name: str, n_key: str | None = None, err_key: str | None = None) -> str:
    """One rate as text, from a flat (metrics schema 2) or a nested ({rate, errors, n}) entry."""
    v = entry.get(name)
    if isinstance(v, dict):
        rate, errors, n = v.get("rate"), v.get("errors"), v.get("n")
    else:
        rate, errors, n = v, entry.get(err_key) if err_key else None, entry.get(n_key) if n_key else None
    if rate is None and not n:
        return f"{name.upper()} -"
    counts = f" ({errors:,}/{n:,})" if isinstance(errors, int) and isinstance(n, int) else ""
    return f"{name.upper()} {_pct(rate)}{counts}"


def _subjects(entry: dict) -> str:
    n = entry.get("n_subjects", entry.get("subjects"))
    if n is None:
        for v in entry.values():
            if isinstance(v, dict) and "subjects" in v:
                n = v["subjects"]
                break
    return f"{n:,} subjects" if isinstance(n, int) else ""


def console_summary(metrics: dict, out_dir, seconds: float | None = None, max_groups: int = 8) -> str:
    """A few lines for the console when a run ends: the threshold, the headline rates overall and
    per group (with the counts behind them), failures to enrol, notes, and where the run folder is."""
    search = "search" in metrics or metrics.get("kind") == "search"
    v3 = metrics.get("rates") is not None or str(metrics.get("schema", "")).endswith("/3")
    root = metrics["search"] if search and not v3 else metrics   # schema 3: one layout for both kinds
    names = (("fpir", None, None), ("fnir", None, None)) if search else (
        ("fmr", "n_impostor", "false_matches"), ("fnmr", "n_genuine", "false_nonmatches"))
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    lines = [f"evalkit: {metrics.get('experiment', 'run')} finished{took}"]
    th = metrics.get("threshold") or {}
    v = th.get("value")
    lines.append(f"  threshold: {th.get('label') or th.get('policy')}"
                 + (f" = {v:.4g}" if isinstance(v, (int, float)) else " (per group)"))
    overall = root.get("overall") or {}
    if overall:
        lines.append("  overall:   " + "   ".join(_rate(overall, *n) for n in names)
                     + (f"   {_subjects(overall)}" if _subjects(overall) else ""))
    for attr, groups in (root.get("groups") or {}).items():
        items = list(groups.items())
        width = max([len(str(g)) for g, _ in items[:max_groups]] + [6])
        for k, (g, e) in enumerate(items[:max_groups]):
            label = f"  {attr}:" if k == 0 else ""
            small = " (small)" if e.get("small") or any(isinstance(v, dict) and v.get("small") for v in e.values()) else ""
            lines.append(f"{label:<13}{g:<{width}}  " + "   ".join(_rate(e, *n) for n in names)
                         + (f"   {_subjects(e)}" if _subjects(e) else "") + small)
        if len(items) > max_groups:
            lines.append(f"{'':13}... {len(items) - max_groups} more groups in summary.md")
    f = (metrics.get("failures") or {}).get("images") or {}
    if f:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted((f.get("by_reason") or {}).items()))
        fte = f.get("fte") if isinstance(f.get("fte"), dict) else {}        # schema 3: a RateEstimate
        failed, n = f.get("failed", fte.get("errors", 0)), f.get("n", fte.get("n", 0))
        lines.append(f"  failures:  {failed:,} of {n:,} images could not be embedded"
                     + (f" ({reasons})" if reasons else "") + f"; policy {metrics.get('failure_policy', '?')}")
    for note in (metrics.get("protocol") or {}).get("notes") or []:
        lines.append(f"  note:      {note}")
    out = Path(out_dir)
    lines.append(f"  run folder: {out}  (summary.md, report.html, metrics.json)")
    return "\n".join(lines) + "\n"


def require_finished_runs(paths, what: str = "run") -> None:
    """:func:`require_finished` for every path; a sweep folder (a folder of runs) is refused when
    any of its job folders failed, naming them, so a comparison never silently drops a job."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and not (p / "metrics.json").is_file() and failure(p) is None and not (p / ".hydra").is_dir():
            failed = sorted(d.name for d in p.iterdir() if d.is_dir() and failure(d) is not None)
            if failed:
                errs = "; ".join(f"{d}: {failure(p / d).get('error', '?')}" for d in failed[:5])
                raise RunFolderError(f"the sweep {p} has {len(failed)} failed run(s) ({errs}); compare the finished "
                                     "runs by naming their folders, or rerun the failed ones")
            continue
        require_finished(p, what)


def compare_out_dir(paths, run_dirs) -> Path:
    """Where ``evalkit compare`` writes without ``--out``: the sweep folder when one sweep is given,
    else ``compare-<time>/`` in the folder that holds the runs compared (their common parent),
    never the current directory."""
    import os

    given = [Path(p) for p in paths]
    sweeps = [p for p in given if p.is_dir() and not (p / "metrics.json").is_file()]
    if len(given) == 1 and sweeps:
        return sweeps[0]
    dirs = [Path(d).resolve() for d in run_dirs]
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    if common in dirs:          # one run (or runs nested in one another): beside it
        common = common.parent
    return common / f"compare-{time.strftime('%Y-%m-%d_%H-%M-%S')}"


#: Config keys that say where things are, not what was measured: left out of the override hint.
_WHERE_KEYS = ("data_dir", "cache_dir", "results_dir", "experiment", "progress", "dataset.root", "dataset.path",
               "backend.workers", "backend.chunk_size", "det_plot", "report", "scoring",
               "intersections")   # extra intersections add blocks, they change no rate


def _flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _override_value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_override_value(x) for x in v) + "]"
    return str(v)


def overrides_to_match(run_dir, baseline_dir) -> list[str]:
    """``key=value`` overrides that make a new run's config match the baseline's on what is
    measured (from the two folders' config.yaml; paths, worker counts and output options left out)."""
    import yaml

    def load(d):
        p = Path(d) / "config.yaml"
        try:
            return _flat(yaml.safe_load(p.read_text())) if p.is_file() else {}
        except Exception:
            return {}
    run, base = load(run_dir), load(baseline_dir)
    if not run or not base:
        return []
    out = []
    for key in sorted(set(run) | set(base)):
        if any(key == w or key.startswith(w + ".") for w in _WHERE_KEYS):
            continue
        if run.get(key) != base.get(key) and key in base:
            out.append(f"{key}={_override_value(base[key])}")
    return out


def not_comparable(rows, run_dir, baseline_dir) -> str | None:
    """The message for ``evalkit check`` when the run and the baseline do not measure the same
    thing (a failed ``comparable`` rule): what differs, and the run to make instead; None when
    they are comparable. Such a pair is not a regression: check exits 3, not 1."""
    bad = [r for r in rows if getattr(r, "type", "") == "comparable" and r.status == "FAIL"]
    if not bad:
        return None
    what = "; ".join(f"{r.attribute}: run {r.run!r}, baseline {r.baseline!r}" for r in bad)
    fix = overrides_to_match(run_dir, baseline_dir)
    how = (f"Make a run that measures what the baseline measured: evalkit run {' '.join(fix)}"
           if fix else "Make a run with the baseline's config (its config.yaml) and check that one.")
    return (f"NOT COMPARABLE: the run and the baseline measure different things ({what}), so no rate was "
            f"judged and nothing here is a regression. {how}\n")
