"""``evalkit check``: the CI gate. A run's metrics.json against a baseline's, under rules from config.

A baseline is the run folder of a named, committed run (``results/baselines/<name>/``: metrics.json,
config.yaml, record.json). The rules live in a yaml file (default ``conf/check/default.yaml``),
validated against the dataclasses below: an unknown key, rule type or metric fails before any
comparison with a did-you-mean message (exit 2).

Rule types (each rule has a name, the key under ``rules:``):

``max_ratio``
    The ratio of the highest to the lowest group rate (``metric``: fnmr or fmr) within each
    attribute must not exceed ``max`` (NISTIR 8280's max/min view of demographic differentials).
    Taken from metrics.json's ``disparity`` block ("evalkit.metrics/2") when it is present and used
    the same groups; otherwise computed from ``groups``. Groups flagged small, groups below the
    minimum counts and the label-less groups in ``exclude_groups`` do not enter. A ratio whose
    lowest rate is zero is undefined: reported as skipped with the reason, never as infinity.
``within_baseline_ci``
    Each group's rate at the run's threshold (``metric``: fmr or fnmr) must not exceed the upper
    bound of the baseline's interval for that group (``interval``: exact Clopper-Pearson
    ``<metric>_ci``, or ``bootstrap``: the subject-clustered ``<metric>_ci_boot`` of schema v2).
``fte_ceiling``
    Failure-to-enrol rate per group (``failures.by_group``) must not exceed ``max``.
``comparable``
    The run and the baseline must agree on ``fields`` (dataset, protocol, comparison counts,
    failure policy): a gate between different protocols would compare nothing.

Every comparison is one row: PASS, FAIL or SKIP (with the reason: a null rate, too few
comparisons, a group absent on one side). Exit codes: 0 all pass, 1 a rule failed, 2 usage or
config error.
"""

from __future__ import annotations

import difflib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf

from ..data.samples import SPECIAL_LABELS

LABEL_LESS = list(SPECIAL_LABELS)


class CheckError(ValueError):
    """A usage or config problem (exit 2); the message says what and where."""


# -- rule schemas -----------------------------------------------------------------------------
@dataclass
class MinCount:
    subjects: int = 10          # a group with fewer subjects is not judged
    comparisons: int = 30       # ... nor one with fewer comparisons of the kind the rule reads


@dataclass
class MaxRatioRule:
    type: str = "max_ratio"
    metric: str = "fnmr"                    # fnmr | fmr
    max: float = MISSING                    # the largest allowed max/min ratio
    attributes: list[str] = field(default_factory=list)   # empty: every attribute of the run
    exclude_groups: list[str] = field(default_factory=lambda: list(LABEL_LESS))
    min_subjects: Optional[int] = None      # None: the top-level min_count
    min_comparisons: Optional[int] = None
    source: str = "auto"                    # auto (disparity block if it used the same groups) | disparity | groups


@dataclass
class WithinBaselineRule:
    type: str = "within_baseline_ci"
    metric: str = "fmr"                     # fmr | fnmr
    interval: str = "exact"                 # exact (<metric>_ci, Clopper-Pearson) | bootstrap (<metric>_ci_boot, v2)
    attributes: list[str] = field(default_factory=list)
    exclude_groups: list[str] = field(default_factory=list)
    include_overall: bool = True
    min_subjects: Optional[int] = None
    min_comparisons: Optional[int] = None


@dataclass
class FteCeilingRule:
    type: str = "fte_ceiling"
    max: float = MISSING                    # the largest allowed failure-to-enrol rate per group
    attributes: list[str] = field(default_factory=list)
    exclude_groups: list[str] = field(default_factory=list)
    include_overall: bool = True
    min_images: int = 20                    # groups with fewer images are not judged


@dataclass
class ComparableRule:
    type: str = "comparable"
    fields: list[str] = field(default_factory=lambda: [
        "dataset.name", "protocol.name", "protocol.n_genuine", "protocol.n_impostor", "failure_policy"])


RULE_TYPES = {"max_ratio": MaxRatioRule, "within_baseline_ci": WithinBaselineRule,
              "fte_ceiling": FteCeilingRule, "comparable": ComparableRule}
METRICS = ("fmr", "fnmr")


@dataclass
class CheckConfig:
    min_count: MinCount = field(default_factory=MinCount)
    fail_on_skip: bool = False              # true: a skipped comparison fails the gate too
    rules: dict[str, Any] = field(default_factory=dict)


def default_rules_path() -> Path:
    from ..config import conf_dir

    return conf_dir() / "check" / "default.yaml"


def _unknown(key: str, allowed, where: str) -> CheckError:
    hint = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    return CheckError(f"{where}: unknown key {key!r}; allowed: {sorted(allowed)}."
                      + (f" Did you mean {hint[0]!r}?" if hint else ""))


def _structured(cls, raw: dict, where: str):
    names = {f.name for f in fields(cls)}
    for k in raw:
        if k not in names:
            raise _unknown(k, names, where)
    try:
        node = OmegaConf.merge(OmegaConf.structured(cls), raw)
        return OmegaConf.to_object(node)
    except Exception as exc:  # omegaconf's validation/missing-value errors; name the key
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckError(f"{where}" + (f".{key}" if key else "") + f": {msg}") from None


def load_rules(path: str | Path | None = None, overrides: list[str] | None = None) -> CheckConfig:
    """Read and validate a check config; ``overrides`` are dotlist items (``rules.x.max=2``)."""
    p = Path(path) if path else default_rules_path()
    if not p.is_file():
        raise CheckError(f"rules file not found: {p}")
    try:
        raw = OmegaConf.load(p)
        if overrides:
            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))
        raw = OmegaConf.to_container(raw, resolve=True) or {}
    except CheckError:
        raise
    except Exception as exc:
        raise CheckError(f"{p}: cannot read rules: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckError(f"{p}: expected a mapping at the top level")
    rules_raw = raw.pop("rules", {}) or {}
    cfg = _structured(CheckConfig, {**raw, "rules": {}}, str(p))
    if not isinstance(rules_raw, dict) or not rules_raw:
        raise CheckError(f"{p}: `rules:` must map rule names to rules (none given)")
    for name, rule in rules_raw.items():
        where = f"{p}: rules.{name}"
        if not isinstance(rule, dict) or "type" not in rule:
            raise CheckError(f"{where}: a rule needs a `type`, one of {sorted(RULE_TYPES)}")
        if rule["type"] not in RULE_TYPES:
            hint = difflib.get_close_matches(str(rule["type"]), RULE_TYPES, n=1)
            raise CheckError(f"{where}.type={rule['type']!r} is not a rule type; choose one of {sorted(RULE_TYPES)}."
                             + (f" Did you mean {hint[0]!r}?" if hint else ""))
        obj = _structured(RULE_TYPES[rule["type"]], rule, where)
        if hasattr(obj, "metric") and obj.metric not in METRICS:
            hint = difflib.get_close_matches(obj.metric, METRICS, n=1)
            raise CheckError(f"{where}.metric={obj.metric!r}: choose one of {list(METRICS)}."
                             + (f" Did you mean {hint[0]!r}?" if hint else ""))
        if getattr(obj, "interval", "exact") not in ("exact", "bootstrap"):
            raise CheckError(f"{where}.interval={obj.interval!r}: choose exact or bootstrap")
        if getattr(obj, "source", "auto") not in ("auto", "disparity", "groups"):
            raise CheckError(f"{where}.source={obj.source!r}: choose auto, disparity or groups")
        cfg.rules[str(name)] = obj
    return cfg


# -- inputs -----------------------------------------------------------------------------------
def load_metrics(path: str | Path, what: str) -> tuple[dict, Path]:
    """metrics.json from a run folder or the file itself -> (metrics, folder)."""
    p = Path(path)
    f = p / "metrics.json" if p.is_dir() else p
    if not f.is_file():
        raise CheckError(f"{what}: no metrics.json at {f}" + ("" if p.exists() else f" ({p} does not exist)"))
    try:
        m = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise CheckError(f"{what}: {f} is not valid JSON: {exc}") from None
    if (m.get("protocol") or {}).get("kind") == "search":
        raise CheckError(f"{what}: {f} is a one-to-many search run (protocol=search): evalkit check compares 1:1 "
                         "verification runs (FMR/FNMR rules); search runs are not supported yet")
    for key in ("groups", "threshold"):
        if key not in m:
            raise CheckError(f"{what}: {f} has no {key!r} block; is it an evalkit metrics.json?")
    return m, f.parent


# -- results ----------------------------------------------------------------------------------
@dataclass
class Row:
    rule: str
    type: str
    attribute: str
    group: str
    baseline: Any
    run: Any
    limit: Any
    status: str          # PASS | FAIL | SKIP
    message: str
    kind: str = "rate"   # rate | ratio | text (how to print the numbers)


def _get(d: dict, dotted: str):
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.3g}%"


def _fmt(x, kind: str) -> str:
    if x is None:
        return "-"
    if kind == "rate":
        return _pct(x)
    if kind == "ratio":
        return f"{x:.3g}x"
    return str(x)


def group_block(m: dict, attr: str) -> dict | None:
    """attribute -> group -> fields, from ``groups`` or (schema v2) ``intersections`` ("sex x race")."""
    if attr in (m.get("groups") or {}):
        return m["groups"][attr]
    return (m.get("intersections") or {}).get(attr)


def _attrs(rule, m: dict, name: str) -> list[str]:
    """The attributes a rule reads: its own list (checked against the run), else every attribute."""
    if not rule.attributes:
        return list(m.get("groups", {}))
    have = list(m.get("groups", {})) + list(m.get("intersections") or {})
    for a in rule.attributes:
        if a not in have:
            hint = difflib.get_close_matches(a, have, n=1)
            raise CheckError(f"rules.{name}.attributes: {a!r} is not an attribute of the run (it has {have})."
                             + (f" Did you mean {hint[0]!r}?" if hint else ""))
    return list(rule.attributes)


_N_KEY = {"fmr": "n_impostor", "fnmr": "n_genuine"}
_ERR_KEY = {"fmr": "false_matches", "fnmr": "false_nonmatches"}


def _too_small(g: dict, metric: str, min_subjects: int, min_comparisons: int) -> str | None:
    """Why a group is not judged, or None."""
    flag = f"small_{metric}" if f"small_{metric}" in g else "small"   # v2: per-rate flags
    if g.get(flag):
        reason = g.get(f"{flag}_reason")
        return "flagged small in metrics.json" + (f" ({reason})" if reason else "")
    n = g.get(_N_KEY[metric]) or 0
    if n < min_comparisons:
        return f"{n} {_N_KEY[metric][2:]} comparisons < {min_comparisons}"
    if (g.get("n_subjects") or 0) < min_subjects:
        return f"{g.get('n_subjects') or 0} subjects < {min_subjects}"
    return None


def max_min_ratio(groups: dict, metric: str, exclude: list[str], min_subjects: int, min_comparisons: int) -> dict:
    """Highest over lowest group rate among the eligible groups of one attribute.

    Returns {value, reason, groups, left_out}; value is None (with a reason) when fewer than two
    groups are eligible or the lowest rate is zero (the ratio is then undefined, not infinite)."""
    used, left = {}, {}
    for g, f in sorted(groups.items()):
        if g in exclude:
            left[g] = "label-less group (exclude_groups)"
            continue
        why = _too_small(f, metric, min_subjects, min_comparisons)
        if why is None and f.get(metric) is None:
            why = f"no {metric.upper()} (no comparisons)"
        if why:
            left[g] = why
        else:
            used[g] = f[metric]
    out = {"value": None, "reason": None, "groups": sorted(used), "left_out": left, "rates": used}
    if len(used) < 2:
        out["reason"] = f"fewer than 2 groups with enough data (eligible: {sorted(used) or 'none'})"
        return out
    hi = max(used, key=lambda k: used[k])
    lo = min(used, key=lambda k: used[k])
    if used[lo] == 0:
        out["reason"] = (f"lowest {metric.upper()} is zero ({lo}: 0/{groups[lo][_N_KEY[metric]]}): "
                         f"the ratio is undefined")
        return out
    out["value"] = used[hi] / used[lo]
    out["hi"], out["lo"] = hi, lo
    return out


def _ratio_for(m: dict, attr: str, rule, mins: tuple[int, int]) -> dict:
    computed = max_min_ratio(group_block(m, attr) or {}, rule.metric, rule.exclude_groups, *mins)
    block = _get(m, f"disparity.{attr}.{rule.metric}_max_min_ratio") if isinstance(m.get("disparity"), dict) else None
    if rule.source == "groups" or (block is None and rule.source == "auto"):
        computed["source"] = "groups"
        return computed
    if block is None:
        return {"value": None, "reason": "metrics.json has no disparity block (schema v1); source=disparity",
                "groups": [], "source": "disparity"}
    if rule.source == "auto" and sorted(block.get("groups") or []) != computed["groups"]:
        computed["source"] = (f"groups (the disparity block used {sorted(block.get('groups') or [])}, "
                              f"this rule's eligible groups are {computed['groups']})")
        return computed
    return {"value": block.get("value"), "reason": block.get("reason"), "groups": block.get("groups") or [],
            "ci": block.get("ci"), "source": "disparity"}


def _rule_max_ratio(name, rule, run, base, cfg) -> list[Row]:
    mins = (rule.min_subjects if rule.min_subjects is not None else cfg.min_count.subjects,
            rule.min_comparisons if rule.min_comparisons is not None else cfg.min_count.comparisons)
    rows = []
    for attr in _attrs(rule, run, name):
        r = _ratio_for(run, attr, rule, mins)
        b = _ratio_for(base, attr, rule, mins) if group_block(base, attr) else {"value": None}
        label = f"{rule.metric.upper()} max/min"
        if r["value"] is None:
            status, msg = "SKIP", f"{label} not judged: {r['reason']}"
        elif r["value"] > rule.max:
            status = "FAIL"
            msg = f"{label} ratio {r['value']:.3g} > {rule.max:g}"
        else:
            status, msg = "PASS", f"{label} ratio {r['value']:.3g} <= {rule.max:g}"
        if r["value"] is not None and "hi" in r:
            rates = r["rates"]
            msg += (f" ({r['hi']} {_pct(rates[r['hi']])} / {r['lo']} {_pct(rates[r['lo']])}; "
                    f"source: {r['source']})")
        elif r["value"] is not None:
            msg += f" (groups {r['groups']}; source: {r['source']})"
        if r.get("left_out"):
            msg += "; left out: " + ", ".join(f"{g} ({w})" for g, w in r["left_out"].items())
        rows.append(Row(name, rule.type, attr, ", ".join(r["groups"]) or "-", b["value"], r["value"], rule.max,
                        status, msg, kind="ratio"))
    return rows


def _rule_within_ci(name, rule, run, base, cfg) -> list[Row]:
    ms = rule.min_subjects if rule.min_subjects is not None else cfg.min_count.subjects
    mc = rule.min_comparisons if rule.min_comparisons is not None else cfg.min_count.comparisons
    metric, ci_key = rule.metric, f"{rule.metric}_ci" + ("_boot" if rule.interval == "bootstrap" else "")
    M, n_key, e_key = rule.metric.upper(), _N_KEY[rule.metric], _ERR_KEY[rule.metric]
    pairs = []
    if rule.include_overall:
        pairs.append(("overall", "all", base.get("overall"), run.get("overall")))
    for attr in _attrs(rule, run, name):
        bg, rg = group_block(base, attr) or {}, group_block(run, attr) or {}
        for g in sorted(set(bg) | set(rg)):
            if g in rule.exclude_groups:
                continue
            pairs.append((attr, g, bg.get(g), rg.get(g)))
    rows = []
    for attr, g, b, r in pairs:
        def row(status, msg, bv=None, rv=None, lim=None):
            rows.append(Row(name, rule.type, attr, g, bv, rv, lim, status, msg))

        if b is None:
            row("SKIP", f"group {g!r} is not in the baseline", rv=(r or {}).get(metric))
            continue
        if r is None:
            row("SKIP", f"group {g!r} is not in the run", bv=b.get(metric))
            continue
        bv, rv = b.get(metric), r.get(metric)
        ci = b.get(ci_key)
        lim = ci[1] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
        if rv is None:
            row("SKIP", f"no {M} in the run ({r.get(n_key, 0)} comparisons)", bv, rv, lim)
            continue
        if lim is None:
            why = (f"the baseline has no {ci_key} (schema v1?)" if ci_key not in b
                   else f"the baseline's {M} interval is undefined ({b.get(n_key, 0)} comparisons)")
            row("SKIP", why, bv, rv, lim)
            continue
        small = _too_small(b, metric, ms, mc) or _too_small(r, metric, ms, mc)
        if small:
            row("SKIP", f"too few to judge: {small}", bv, rv, lim)
            continue
        counts = (f"run {r.get(e_key)}/{r.get(n_key)}, baseline {b.get(e_key)}/{b.get(n_key)} "
                  f"{rule.interval} CI [{_pct(ci[0])}, {_pct(ci[1])}]")
        if rv > lim + 1e-12:
            row("FAIL", f"{M} {_pct(rv)} above the baseline's upper bound {_pct(lim)} ({counts})", bv, rv, lim)
        else:
            row("PASS", f"{M} {_pct(rv)} <= {_pct(lim)} ({counts})", bv, rv, lim)
    return rows


def _rule_fte(name, rule, run, base, cfg) -> list[Row]:
    rows = []
    run_f, base_f = run.get("failures", {}), base.get("failures", {})
    items = []
    if rule.include_overall:
        ri, bi = run_f.get("images", {}), base_f.get("images", {})
        items.append(("overall", "all", {"rate": ri.get("rate"), "failed": ri.get("failed"), "n_images": ri.get("n")},
                      {"rate": bi.get("rate")}))
    by_group = run_f.get("by_group")
    if by_group is None:
        rows.append(Row(name, rule.type, "-", "-", None, None, rule.max, "SKIP",
                        "the run's metrics.json has no failures.by_group"))
        by_group = {}
    for attr in (_attrs(rule, run, name) if by_group else []):
        for g, f in sorted(by_group.get(attr, {}).items()):
            if g not in rule.exclude_groups:
                items.append((attr, g, f, _get(base_f, f"by_group.{attr}.{g}") or {}))
    for attr, g, f, b in items:
        rate, n = f.get("rate"), f.get("n_images") or 0
        if rate is None:
            status, msg = "SKIP", f"no images ({n})"
        elif n < rule.min_images:
            status, msg = "SKIP", f"too few to judge: {n} images < {rule.min_images}"
        elif rate > rule.max + 1e-12:
            status, msg = "FAIL", f"failure to enrol {_pct(rate)} ({f.get('failed')}/{n}) > ceiling {_pct(rule.max)}"
        else:
            status, msg = "PASS", f"failure to enrol {_pct(rate)} ({f.get('failed')}/{n}) <= {_pct(rule.max)}"
        rows.append(Row(name, rule.type, attr, g, b.get("rate"), rate, rule.max, status, msg))
    return rows


def _rule_comparable(name, rule, run, base, cfg) -> list[Row]:
    rows = []
    for key in rule.fields:
        bv, rv = _get(base, key), _get(run, key)
        if bv is None and rv is None:
            rows.append(Row(name, rule.type, key, "-", bv, rv, "equal", "SKIP", f"{key} absent on both sides",
                            kind="text"))
        elif bv == rv:
            rows.append(Row(name, rule.type, key, "-", bv, rv, "equal", "PASS", f"{key} = {rv}", kind="text"))
        else:
            rows.append(Row(name, rule.type, key, "-", bv, rv, "equal", "FAIL",
                            f"{key} differs: run {rv!r}, baseline {bv!r}; the two runs are not comparable",
                            kind="text"))
    return rows


_HANDLERS = {"max_ratio": _rule_max_ratio, "within_baseline_ci": _rule_within_ci,
             "fte_ceiling": _rule_fte, "comparable": _rule_comparable}


def evaluate(run: dict, baseline: dict, cfg: CheckConfig) -> list[Row]:
    """Every rule of ``cfg`` on a run's metrics against a baseline's -> one Row per comparison."""
    rows: list[Row] = []
    for name, rule in cfg.rules.items():
        rows += _HANDLERS[rule.type](name, rule, run, baseline, cfg)
    return rows


def failed(rows: list[Row], cfg: CheckConfig) -> bool:
    return any(r.status == "FAIL" or (cfg.fail_on_skip and r.status == "SKIP") for r in rows)


# -- output -----------------------------------------------------------------------------------
def _threshold_text(m: dict) -> str:
    t = m.get("threshold", {})
    if t.get("label"):
        return str(t["label"])
    v = t.get("value")
    txt = f"{t.get('policy')} " + (f"{v:.6g}" if isinstance(v, (int, float)) else "per group")
    if t.get("target_fmr") is not None:
        txt += f" (target FMR {t['target_fmr']:g}, achieved {t.get('achieved_fmr')})"
    return txt


def render_table(rows: list[Row], run: dict, baseline: dict, run_path, base_path, markdown: bool = False) -> str:
    """The readable diff: rule, attribute, group, baseline, run, limit, status, and the reason."""
    head = ["rule", "attribute", "group", "baseline", "run", "limit", "status", "detail"]
    body = [[r.rule, r.attribute, r.group, _fmt(r.baseline, r.kind), _fmt(r.run, r.kind),
             _fmt(r.limit, r.kind), r.status, r.message] for r in rows]
    n = {s: sum(r.status == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    top = [f"run:      {run_path}  ({run.get('experiment', '?')}; threshold: {_threshold_text(run)})",
           f"baseline: {base_path}  ({baseline.get('experiment', '?')}; threshold: {_threshold_text(baseline)})"]
    verdict = (f"{'FAIL' if n['FAIL'] else 'PASS'}: {n['PASS']} passed, {n['FAIL']} failed, "
               f"{n['SKIP']} skipped")
    if markdown:
        lines = ["# evalkit check", "", *[f"- {t}" for t in top], "", f"**{verdict}**", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in b) + " |" for b in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head[:-1])]
    out = top + [""]
    out.append("  ".join(h.ljust(w) for h, w in zip(head[:-1], widths)) + "  detail")
    out.append("  ".join("-" * w for w in widths) + "  ------")
    for b in body:
        out.append("  ".join(c.ljust(w) for c, w in zip(b[:-1], widths)) + "  " + b[-1])
    fails = [r for r in rows if r.status == "FAIL"]
    if fails:
        out += ["", "Regressions:"] + [f"  - {r.rule} [{r.attribute}/{r.group}]: {r.message}" for r in fails]
    out += ["", verdict]
    return "\n".join(out) + "\n"


def write_junit(rows: list[Row], path: str | Path, suite: str = "evalkit check", fail_on_skip: bool = False) -> Path:
    """JUnit XML: one testcase per rule x group (classname = rule, name = attribute/group)."""
    n_fail = sum(r.status == "FAIL" or (fail_on_skip and r.status == "SKIP") for r in rows)
    n_skip = 0 if fail_on_skip else sum(r.status == "SKIP" for r in rows)
    root = ET.Element("testsuites", name=suite, tests=str(len(rows)), failures=str(n_fail), errors="0",
                      skipped=str(n_skip))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(rows)), failures=str(n_fail), errors="0",
                       skipped=str(n_skip))
    for r in rows:
        tc = ET.SubElement(ts, "testcase", classname=f"evalkit.check.{r.rule}", name=f"{r.attribute}/{r.group}")
        detail = (f"baseline={_fmt(r.baseline, r.kind)} run={_fmt(r.run, r.kind)} "
                  f"limit={_fmt(r.limit, r.kind)}: {r.message}")
        if r.status == "FAIL" or (fail_on_skip and r.status == "SKIP"):
            f = ET.SubElement(tc, "failure", message=r.message, type=r.type)
            f.text = detail
        elif r.status == "SKIP":
            ET.SubElement(tc, "skipped", message=r.message)
        ET.SubElement(tc, "system-out").text = detail
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(p, encoding="utf-8", xml_declaration=True)
    return p


# -- command ----------------------------------------------------------------------------------
def main(args: list[str]) -> int:
    """``evalkit check RUN --baseline PATH [--rules YAML] [--junit PATH] [--report PATH] [key=value ...]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="evalkit check",
        description="CI gate: compare a run's metrics.json with a baseline's under the rules in a yaml file. "
                    "Exit 0: pass; 1: a rule failed (regression); 2: usage or config error.")
    p.add_argument("run", help="run folder (or its metrics.json)")
    p.add_argument("--baseline", required=True, help="baseline folder, e.g. results/baselines/<name> (or its metrics.json)")
    p.add_argument("--rules", default=None, help=f"rules yaml (default: {default_rules_path()})")
    p.add_argument("--junit", default=None, help="JUnit XML output (default: RUN/check-junit.xml)")
    p.add_argument("--report", default=None, help="Markdown diff output (default: RUN/check.md)")
    p.add_argument("overrides", nargs="*", help="rule overrides, e.g. rules.fnmr_max_min_ratio.max=2.5")
    try:
        ns = p.parse_intermixed_args(args)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        bad = [o for o in ns.overrides if "=" not in o]
        if bad:
            raise CheckError(f"overrides must look like key=value, got {bad}")
        cfg = load_rules(ns.rules, ns.overrides)
        run, run_dir = load_metrics(ns.run, "run")
        base, base_dir = load_metrics(ns.baseline, "baseline")
        rows = evaluate(run, base, cfg)
    except CheckError as exc:
        print(f"evalkit check: error: {exc}", file=sys.stderr)
        return 2
    print(render_table(rows, run, base, run_dir, base_dir), end="")
    junit = write_junit(rows, ns.junit or run_dir / "check-junit.xml", fail_on_skip=cfg.fail_on_skip)
    report = Path(ns.report or run_dir / "check.md")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_table(rows, run, base, run_dir, base_dir, markdown=True))
    print(f"JUnit XML: {junit}\nreport:    {report}")
    return 1 if failed(rows, cfg) else 0
