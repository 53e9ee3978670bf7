"""A threshold carried from another run: ``threshold=from_run threshold.run=RUN_DIR``.

NIST reads small groups this way (NISTIR 8280, FRTE 1:1): one threshold is set on a large
impostor set (e.g. at FMR 1e-3 over all 87.5 M LFW comparisons, ``protocol=exhaustive``) and read,
unchanged, on each group of another dataset. A threshold is a distance of one backend's scores, so
it only means something for the same backend: the run's backend fingerprint (model, weights
hashes, detector, alignment, library versions) and its distance must equal this run's, or the
threshold is refused.

The run record keeps where it came from: the source run folder and id, the SHA-256 of its
metrics.json (the exact file the value was read from), its backend fingerprint (and a SHA-256 of
it), the policy, target FMR and impostor count that chose it there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["CarriedThresholdError", "read_source", "check_fingerprint", "carried_block", "fingerprint_sha256"]


class CarriedThresholdError(ValueError):
    """The source run cannot give this run its threshold; the message says why."""


def fingerprint_sha256(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _threshold_value(th: dict):
    """The single value of a source run's threshold block (schema 2: ``value``; schema 3: a
    ThresholdRecord with ``value``)."""
    if not isinstance(th, dict):
        return None
    return th.get("value")


def read_source(run_dir: str | Path) -> dict:
    """What a source run says about its threshold: {value, policy, target_fmr, achieved_fmr,
    n_impostor, label, distance, fingerprint, run_dir, run_id, metrics_sha256, schema}.

    Raises:
        CarriedThresholdError: no run folder, no metrics.json, a search run, or a threshold that is
        not one value (per-group thresholds cannot be carried: which group's would apply?).
    """
    run = Path(run_dir).expanduser()
    mpath = run / "metrics.json"
    if not mpath.is_file():
        raise CarriedThresholdError(f"threshold.run={run_dir!r}: no metrics.json in {run} (give a run folder "
                                    "written by `evalkit run`)")
    raw = mpath.read_bytes()
    try:
        m = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CarriedThresholdError(f"{mpath}: not valid JSON ({e.msg}, line {e.lineno})") from None
    th = m.get("threshold") or {}
    if (m.get("protocol") or {}).get("kind") == "search" or m.get("kind") == "search":
        raise CarriedThresholdError(f"{run} is a one-to-many search run: its threshold is set at an FPIR over "
                                    "searches, not at an FMR over comparisons; carry a 1:1 run's threshold")
    value = _threshold_value(th)
    if value is None:
        raise CarriedThresholdError(f"{run}'s threshold ({th.get('policy')}) is not a single value (per-group "
                                    "thresholds cannot be carried to another dataset); carry a global_fmr or fixed run")
    backend = m.get("backend") or {}
    rec = {}
    if (run / "record.json").is_file():
        try:
            rec = json.loads((run / "record.json").read_text())
        except json.JSONDecodeError:
            rec = {}
    fp = backend.get("fingerprint") or rec.get("backend_fingerprint")
    if not fp:
        raise CarriedThresholdError(f"{mpath} records no backend fingerprint: it cannot be checked, so it is refused")
    pick = lambda *keys: next((th[k] for k in keys if th.get(k) is not None), None)  # noqa: E731  (schema 2 or 3)
    return {"value": float(value), "policy": th.get("policy"), "target_fmr": pick("target", "target_fmr"),
            "achieved_fmr": pick("achieved", "achieved_fmr"), "n_impostor": pick("n", "n_impostor"),
            "label": th.get("label"),
            "distance": backend.get("distance"), "backend": backend.get("name"), "fingerprint": fp,
            "fingerprint_sha256": fingerprint_sha256(fp), "run_dir": str(run.resolve()),
            "run_id": f"{m.get('experiment', '?')}/{run.resolve().name}", "metrics_sha256": hashlib.sha256(raw).hexdigest(),
            "dataset": (m.get("dataset") or {}).get("name"), "protocol": (m.get("protocol") or {}).get("name"),
            "schema": m.get("schema")}


def check_fingerprint(source: dict, fingerprint: dict, distance: str) -> None:
    """Refuse a source whose backend fingerprint or distance differs from this run's.

    Raises:
        CarriedThresholdError: naming the fields that differ and their two values.
    """
    if source["distance"] is not None and source["distance"] != distance:
        raise CarriedThresholdError(f"the source run {source['run_id']} scored {source['distance']} distances, this run "
                                    f"scores {distance}: its threshold does not apply")
    theirs = source["fingerprint"]
    if theirs != fingerprint:
        keys = sorted(set(theirs) | set(fingerprint))
        diff = [f"{k}: {theirs.get(k)!r} there, {fingerprint.get(k)!r} here" for k in keys if theirs.get(k) != fingerprint.get(k)]
        raise CarriedThresholdError(f"the source run {source['run_id']} was made by a different backend (fingerprint "
                                    f"differs: {'; '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}); a threshold is a "
                                    "distance of one backend's scores and is refused for another")


def carried_block(source: dict, threshold: dict) -> dict:
    """The ``threshold`` record (schema 3 ThresholdRecord fields) of a run whose threshold was
    carried: this run's record at the source's value, with policy ``from_run``, the sentence
    naming the source, and ``source`` (run id, folder, metrics.json SHA-256, fingerprint SHA-256,
    the policy, target and impostor count that set it there)."""
    there = (f"set by {source['policy']}" + (f" at FMR {source['target_fmr']:g}" if source.get("target_fmr") else "")
             + (f" over {source['n_impostor']:,} impostors" if source.get("n_impostor") else "")
             + f" on {source['dataset']} ({source['protocol']})")
    out = dict(threshold)
    out.update(policy="from_run", value=source["value"], target=source.get("target_fmr"), resolvable=True,
               label=f"threshold {source['value']:.6g} carried unchanged from run {source['run_id']} ({there})",
               source={k: source[k] for k in ("run_dir", "run_id", "metrics_sha256", "fingerprint_sha256", "policy",
                                              "target_fmr", "achieved_fmr", "n_impostor", "dataset", "protocol",
                                              "backend", "distance", "schema")})
    return out
