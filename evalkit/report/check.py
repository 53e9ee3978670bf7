"""``evalkit check``: the CI gate. A run's metrics.json against a baseline's, under rules from config.

A baseline is the run folder of a named, committed run (``results/baselines/<name>/``: metrics.json,
config.yaml, record.json). The rules live in a yaml file, validated against the dataclasses below:
an unknown key, rule type or metric fails before any comparison with a did-you-mean message (exit 2).
Without ``--rules`` the file is chosen by the run: ``conf/check/default.yaml`` for a 1:1
verification run (FMR/FNMR), ``conf/check/search.yaml`` for a one-to-many search run
(``protocol=search``: FPIR/FNIR).

Two kinds of run, never mixed: a 1:1 run is gated against a 1:1 baseline and a search run against
a search baseline (anything else is a CheckError, exit 2), and a rule's ``metric`` must be a rate
of the run's kind (``fmr``/``fnmr`` for 1:1; ``fpir``/``fnir``/``fnir_rank1`` for search), else
exit 2 naming the rule. Both kinds are read by one code path: in schema ``evalkit.metrics/3``
every rate is a RateEstimate (``evalkit.metrics.results``) at ``groups[attr][g][metric]``,
``intersections[...]`` and ``overall[metric]``, with its counts, intervals and small flag; for a
search run the group is the probe's group.

Rule types (each rule has a name, the key under ``rules:``):

``max_ratio``
    The ratio of the highest to the lowest group rate (``metric``: fnmr or fmr; fpir, fnir or
    fnir_rank1 for search) within each attribute must not exceed ``max`` (NISTIR 8280's max/min
    view of demographic differentials). Taken from metrics.json's ``disparity`` block
    (``disparity[attr].<metric>_max_min_ratio``) when it is present and used the same groups;
    otherwise computed from ``groups`` by ``evalkit.metrics.disparity.max_min_ratio``. Groups flagged small,
    groups below the minimum counts and the label-less groups in ``exclude_groups`` do not enter.
    A ratio whose lowest rate is zero is undefined: reported as skipped with the reason, never as
    infinity.
``within_baseline_ci``
    Each group's rate at the run's threshold (``metric``: fmr or fnmr; fpir, fnir or fnir_rank1)
    must not exceed the upper bound of the baseline's interval for that group (``interval``: exact
    Clopper-Pearson ``ci``, or ``bootstrap``: the subject-clustered ``ci_boot``, for search runs
    resampling probe subjects).
``fte_ceiling``
    Failure-to-enrol rate per group (``failures.by_group``) must not exceed ``max``.
``comparable``
    The run and the baseline must agree on ``fields`` (dataset, protocol, comparison counts,
    failure policy; for search: protocol kind, gallery sizes, probe counts, threshold policy): a
    gate between different protocols would compare nothing.

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

from ..labels import SPECIAL_LABELS
from ..metrics import disparity as disp
from ..metrics import results

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
    metric: str = "fnmr"                    # fnmr | fmr (1:1); fpir | fnir | fnir_rank1 (search)
    max: float = MISSING                    # the largest allowed max/min ratio
    attributes: list[str] = field(default_factory=list)   # empty: every attribute of the run
    exclude_groups: list[str] = field(default_factory=lambda: list(LABEL_LESS))
    min_subjects: Optional[int] = None      # None: the top-level min_count
    min_comparisons: Optional[int] = None
    source: str = "auto"                    # auto (disparity block if it used the same groups) | disparity | groups


@dataclass
class WithinBaselineRule:
    type: str = "within_baseline_ci"
    metric: str = "fmr"                     # fmr | fnmr (1:1); fpir | fnir | fnir_rank1 (search)
    interval: str = "exact"                 # exact (ci, Clopper-Pearson) | bootstrap (ci_boot, subject-clustered)
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
METRICS = ("fmr", "fnmr")                          # 1:1 verification rates
SEARCH_METRICS = ("fpir", "fnir", "fnir_rank1")    # one-to-many search rates (metrics.json ``search`` block)
RATE_NAMES = {"fmr": "FMR", "fnmr": "FNMR", "fpir": "FPIR", "fnir": "FNIR", "fnir_rank1": "FNIR at rank 1"}


@dataclass
class CheckConfig:
    min_count: MinCount = field(default_factory=MinCount)
    fail_on_skip: bool = False              # true: a skipped comparison fails the gate too
    rules: dict[str, Any] = field(default_factory=dict)


def default_rules_path() -> Path:
    """The rules of a 1:1 verification run when no ``--rules`` is given."""
    from ..config import conf_dir

    return conf_dir() / "check" / "default.yaml"


def search_rules_path() -> Path:
    """The rules of a one-to-many search run when no ``--rules`` is given."""
    from ..config import conf_dir

    return conf_dir() / "check" / "search.yaml"


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
        if hasattr(obj, "metric") and obj.metric not in METRICS + SEARCH_METRICS:
            hint = difflib.get_close_matches(obj.metric, METRICS + SEARCH_METRICS, n=1)
            raise CheckError(f"{where}.metric={obj.metric!r}: choose one of {list(METRICS)} (1:1 runs) or "
                             f"{list(SEARCH_METRICS)} (search runs)."
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
    if not isinstance(m, dict):
        raise CheckError(f"{what}: {f} is not an evalkit metrics.json (not a JSON object)")
    for key in ("groups", "threshold", *(("search",) if run_kind(m) == "search" else ())):
        if key not in m:
            raise CheckError(f"{what}: {f} has no {key!r} block; is it an evalkit metrics.json?")
    if m.get("schema") != results.SCHEMA:
        raise CheckError(f"{what}: {f} is schema {m.get('schema')!r}; evalkit check reads {results.SCHEMA!r} "
                         "(regenerate the run or the baseline with this evalkit)")
    return m, f.parent


def run_kind(m: dict) -> str:
    """The kind of run: "search" for one-to-many search, else "verification" (1:1)."""
    return results.run_kind(m)


def _kind_text(kind: str) -> str:
    return ("a one-to-many search run (protocol=search; FPIR/FNIR)" if kind == "search"
            else "a 1:1 verification run (FMR/FNMR)")


def check_kinds(run: dict, baseline: dict, cfg: CheckConfig) -> str:
    """The run and the baseline are of one kind, and every rule's metric is a rate of that kind;
    returns the kind, or raises CheckError saying what does not fit."""
    kind, bkind = run_kind(run), run_kind(baseline)
    if kind != bkind:
        raise CheckError(f"the run is {_kind_text(kind)} but the baseline is {_kind_text(bkind)}: a run is gated "
                         "against a baseline of its own kind (protocol=search against a search baseline, 1:1 "
                         "against 1:1)")
    allowed = SEARCH_METRICS if kind == "search" else METRICS
    for name, rule in cfg.rules.items():
        metric = getattr(rule, "metric", None)
        if metric is not None and metric not in allowed:
            hint = (f"use --rules {search_rules_path()} (the default for search runs when --rules is not given)"
                    if kind == "search" else f"use --rules {default_rules_path()} (the default for 1:1 runs)")
            raise CheckError(f"rules.{name}.metric={metric!r} is not a rate of {_kind_text(kind)}; its rates are "
                             f"{list(allowed)}. {hint}")
    return kind


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
    """attribute -> group -> entry, from ``groups`` or ``intersections`` ("sex x race"); for a
    search run the group is the probe's group."""
    return results.group_blocks(m).get(attr)


def _attrs(rule, m: dict, name: str) -> list[str]:
    """The attributes a rule reads: its own list (checked against the run), else every attribute."""
    if not rule.attributes:
        return list(m.get("groups") or {})
    have = list(results.group_blocks(m))
    for a in rule.attributes:
        if a not in have:
            hint = difflib.get_close_matches(a, have, n=1)
            raise CheckError(f"rules.{name}.attributes: {a!r} is not an attribute of the run (it has {have})."
                             + (f" Did you mean {hint[0]!r}?" if hint else ""))
    return list(rule.attributes)


def rate_of(f: dict | None, metric: str) -> dict:
    """One group's (or the overall) estimate of ``metric`` (a RateEstimate dict, schema
    ``evalkit.metrics/3``; {} when the entry lacks it)."""
    return (f or {}).get(metric) or {}


def _who(metric: str, attr: str, group: str) -> str:
    """How a row names its rate: "FMR" for 1:1 rows (the table's columns name the group), "FPIR for
    female" / "FNIR for all probes" for search rows."""
    name = RATE_NAMES[metric]
    if metric not in SEARCH_METRICS:
        return name
    return f"{name} for all probes" if attr == "overall" else f"{name} for {group}"


def _too_small(g: dict, metric: str, min_subjects: int, min_comparisons: int) -> str | None:
    """Why a group is not judged, or None: flagged small in metrics.json, or below the rule's own
    minimums (``results.small_rule``, the rule metrics.json's flags come from)."""
    v = rate_of(g, metric)
    if v.get("small"):
        reason = v.get("small_reason")
        return "flagged small in metrics.json" + (f" ({reason})" if reason else "")
    _, why = results.small_rule(v.get("subjects") or 0, v.get("n") or 0, (min_subjects, min_comparisons), metric)
    return why


def max_min_ratio(groups: dict, metric: str, exclude: list[str], min_subjects: int, min_comparisons: int) -> dict:
    """Highest over lowest group rate among the eligible groups of one attribute, by
    ``evalkit.metrics.disparity.max_min_ratio`` (the one max/min implementation).

    Returns {value, reason, groups, left_out, rates, hi, lo}; value is None (with a reason) when
    fewer than two groups are eligible or the lowest rate is zero (the ratio is then undefined,
    not infinite)."""
    used, left = {}, {}
    name = RATE_NAMES[metric]
    for g, f in sorted(groups.items()):
        if g in exclude:
            left[g] = "label-less group (exclude_groups)"
            continue
        v = rate_of(f, metric)
        why = _too_small(f, metric, min_subjects, min_comparisons)
        if why is None and v.get("rate") is None:
            why = f"no {name} (no {results.RATE_UNITS[metric]})"
        if why:
            left[g] = why
        else:
            used[g] = v["rate"]
    out = {"value": None, "reason": None, "groups": sorted(used), "left_out": left, "rates": used}
    if len(used) < 2:
        out["reason"] = f"fewer than 2 groups with enough data (eligible: {sorted(used) or 'none'})"
        return out
    d = disp.max_min_ratio(used, name, f"{metric}_max_min_ratio" if metric in ("fmr", "fnmr") else None)
    if not d.defined:
        out["reason"] = f"{d.reason}: the ratio is undefined"
        return out
    out["value"] = d.value
    out["hi"], out["lo"] = max(used, key=lambda k: used[k]), min(used, key=lambda k: used[k])
    return out


def _ratio_for(m: dict, attr: str, rule, mins: tuple[int, int]) -> dict:
    computed = max_min_ratio(group_block(m, attr) or {}, rule.metric, rule.exclude_groups, *mins)
    block = _get(m, f"disparity.{attr}.{rule.metric}_max_min_ratio") if isinstance(m.get("disparity"), dict) else None
    if rule.source == "groups" or (block is None and rule.source == "auto"):
        computed["source"] = "groups"
        return computed
    if block is None:
        return {"value": None, "reason": f"metrics.json has no disparity.{attr}.{rule.metric}_max_min_ratio; "
                                         "source=disparity", "groups": [], "source": "disparity"}
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
        label = f"{RATE_NAMES[rule.metric]} max/min"
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
    metric, boot = rule.metric, rule.interval == "bootstrap"
    ci_key = f"{metric}.ci" + ("_boot" if boot else "")
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
        M = _who(metric, attr, g)

        def row(status, msg, bv=None, rv=None, lim=None):
            rows.append(Row(name, rule.type, attr, g, bv, rv, lim, status, msg))

        if b is None:
            row("SKIP", f"group {g!r} is not in the baseline", rv=rate_of(r, metric).get("rate"))
            continue
        if r is None:
            row("SKIP", f"group {g!r} is not in the run", bv=rate_of(b, metric).get("rate"))
            continue
        vb, vr = rate_of(b, metric), rate_of(r, metric)
        bv, rv = vb.get("rate"), vr.get("rate")
        ci = vb.get("ci_boot" if boot else "ci")
        lim = ci[1] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
        units = results.RATE_UNITS[metric]
        if rv is None:
            row("SKIP", f"no {M} in the run ({vr.get('n', 0)} {units})", bv, rv, lim)
            continue
        if lim is None:
            if not vb:
                why = f"the baseline has no {ci_key} (not an evalkit.metrics/3 file?)"
            elif boot and vb.get("ci_boot_reason"):
                why = f"the baseline's bootstrap interval of {M} is not available: {vb['ci_boot_reason']}"
            else:
                why = f"the baseline's {M} interval is undefined ({vb.get('n', 0)} {units})"
            row("SKIP", why, bv, rv, lim)
            continue
        small = _too_small(b, metric, ms, mc) or _too_small(r, metric, ms, mc)
        if small:
            row("SKIP", f"too few to judge: {small}", bv, rv, lim)
            continue
        counts = (f"run {vr.get('errors')}/{vr.get('n')}, baseline {vb.get('errors')}/{vb.get('n')} "
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
        items.append(("overall", "all", _get(run_f, "images.fte") or {}, _get(base_f, "images.fte") or {}))
    by_group = run_f.get("by_group")
    if by_group is None:
        rows.append(Row(name, rule.type, "-", "-", None, None, rule.max, "SKIP",
                        "the run's metrics.json has no failures.by_group"))
        by_group = {}
    for attr in (_attrs(rule, run, name) if by_group else []):
        for g, f in sorted(by_group.get(attr, {}).items()):
            if g not in rule.exclude_groups:
                items.append((attr, g, f.get("fte") or {}, _get(base_f, f"by_group.{attr}.{g}.fte") or {}))
    for attr, g, f, b in items:
        rate, n = f.get("rate"), f.get("n") or 0
        if rate is None:
            status, msg = "SKIP", f"no images ({n})"
        elif n < rule.min_images:
            status, msg = "SKIP", f"too few to judge: {n} images < {rule.min_images}"
        elif rate > rule.max + 1e-12:
            status, msg = "FAIL", f"failure to enrol {_pct(rate)} ({f.get('errors')}/{n}) > ceiling {_pct(rule.max)}"
        else:
            status, msg = "PASS", f"failure to enrol {_pct(rate)} ({f.get('errors')}/{n}) <= {_pct(rule.max)}"
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
    """Every rule of ``cfg`` on a run's metrics against a baseline's -> one Row per comparison.
    Raises CheckError when the two are not of one kind or a rule reads a rate the run does not have
    (:func:`check_kinds`)."""
    check_kinds(run, baseline, cfg)
    rows: list[Row] = []
    for name, rule in cfg.rules.items():
        rows += _HANDLERS[rule.type](name, rule, run, baseline, cfg)
    return rows


def _is_failure(r: Row, fail_on_skip: bool) -> bool:
    return r.status == "FAIL" or (fail_on_skip and r.status == "SKIP")


def failed(rows: list[Row], cfg: CheckConfig) -> bool:
    return any(_is_failure(r, cfg.fail_on_skip) for r in rows)


# -- output -----------------------------------------------------------------------------------
def _threshold_text(m: dict) -> str:
    t = m.get("threshold", {})
    if t.get("label"):
        return str(t["label"])
    v = t.get("value")
    txt = f"{t.get('policy')} " + (f"{v:.6g}" if isinstance(v, (int, float)) else "per group")
    if t.get("target") is not None:
        txt += f" (target {str(t.get('rate')).upper()} {t['target']:g}, achieved {t.get('achieved')})"
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
    n_fail = sum(_is_failure(r, fail_on_skip) for r in rows)
    n_skip = 0 if fail_on_skip else sum(r.status == "SKIP" for r in rows)
    root = ET.Element("testsuites", name=suite, tests=str(len(rows)), failures=str(n_fail), errors="0",
                      skipped=str(n_skip))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(rows)), failures=str(n_fail), errors="0",
                       skipped=str(n_skip))
    for r in rows:
        tc = ET.SubElement(ts, "testcase", classname=f"evalkit.check.{r.rule}", name=f"{r.attribute}/{r.group}")
        detail = (f"baseline={_fmt(r.baseline, r.kind)} run={_fmt(r.run, r.kind)} "
                  f"limit={_fmt(r.limit, r.kind)}: {r.message}")
        if _is_failure(r, fail_on_skip):
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
    """``evalkit check RUN --baseline PATH [--rules YAML] [--junit PATH] [--report PATH] [key=value ...]``.

    Without --rules: conf/check/default.yaml for a 1:1 run, conf/check/search.yaml for a search run."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="evalkit check",
        description="CI gate: compare a run's metrics.json with a baseline's under the rules in a yaml file. "
                    "Exit 0: pass; 1: a rule failed (regression); 2: usage or config error.")
    p.add_argument("run", help="run folder (or its metrics.json)")
    p.add_argument("--baseline", required=True, help="baseline folder, e.g. results/baselines/<name> (or its metrics.json)")
    p.add_argument("--rules", default=None, help=f"rules yaml (default: {default_rules_path()} for a 1:1 run, "
                                                  f"{search_rules_path()} for a search run)")
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
        run, run_dir = load_metrics(ns.run, "run")
        cfg = load_rules(ns.rules or (search_rules_path() if run_kind(run) == "search" else None), ns.overrides)
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
