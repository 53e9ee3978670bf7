"""One result model for every run: the rate estimate, the threshold record, the small-group rule,
the header block, and flat rows for tables. Pure values, no I/O.

metrics.json schema ``evalkit.metrics/3`` (the JSON Schema is ``evalkit/schema/metrics.schema.json``;
results/README.md documents it). Every rate a run reports -- FMR and FNMR of 1:1 verification,
FPIR, FNIR and FNIR at rank k of 1:N search, failure to enrol -- overall, per group, per
intersection, for mixed-group comparisons, per gallery size and at an audited threshold, is one
:class:`RateEstimate`, written as::

    {"rate": float | null, "errors": int, "n": int, "subjects": int,
     "ci": [lo, hi] | null, "upper": float | null,
     "ci_boot": [lo, hi] | null, "ci_boot_reason": str | null,
     "small": bool, "small_reason": str | null,
     "estimable": bool, "reason": str | null}

A group entry maps rate names to estimates (``{"fmr": ..., "fnmr": ..., "accuracy": ...}`` for a
1:1 run, ``{"fpir": ..., "fnir": ..., "fnir_rank1": ...}`` for a search run), so the report,
markdown, compare and check read both kinds of run the same way: ``m["groups"][attr][g][rate]``.
The run's rate names, in display order, are ``m["rates"]``; its kind is ``m["kind"]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from . import uncertainty

SCHEMA = "evalkit.metrics/3"

VERIFICATION, SEARCH = "verification", "search"
VERIFICATION_RATES = ("fnmr", "fmr")
SEARCH_RATES = ("fnir", "fpir", "fnir_rank1")
RATE_LABELS = {"fmr": "FMR", "fnmr": "FNMR", "fpir": "FPIR", "fnir": "FNIR", "fnir_rank1": "FNIR at rank 1",
               "fte": "failure to enrol"}
#: what ``n`` counts, per rate (the noun of the small-group rule's reason)
RATE_UNITS = {"fmr": "impostor comparisons", "fnmr": "genuine comparisons", "fpir": "non-mated searches",
              "fnir": "mated searches", "fnir_rank1": "mated searches", "fte": "images"}
#: whose subjects ``subjects`` counts
SUBJECT_UNITS = {"fmr": "subjects", "fnmr": "subjects", "fpir": "probe subjects", "fnir": "probe subjects",
                 "fnir_rank1": "probe subjects", "fte": "subjects"}
BOOT_OFF = "bootstrap off (bootstrap.replicates=0)"


def _num(x):
    """A finite float or None (NaN/inf are not numbers in metrics.json)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _pair(ci):
    """[lo, hi] of finite floats, or None when either end is missing."""
    if ci is None:
        return None
    lo, hi = (_num(v) for v in ci)
    return None if lo is None or hi is None else [lo, hi]


# --------------------------------------------------------------------------- the small-group rule


def small_rule(subjects: int, n: int, min_count, rate: str) -> tuple[bool, str | None]:
    """THE small-group rule of evalkit: a rate is flagged small when fewer than
    ``min_count[0]`` subjects (probe subjects for search rates) stand behind it, or fewer than
    ``min_count[1]`` trials of its kind (``RATE_UNITS[rate]``: impostor comparisons for FMR,
    genuine ones for FNMR, non-mated / mated searches for FPIR / FNIR, images for failure to
    enrol). A flagged rate is still reported; it stays out of disparity summaries, and ``evalkit
    check`` does not judge it. Returns (flag, reason)."""
    if min_count is None:
        return False, None
    ms, mc = int(min_count[0]), int(min_count[1])
    why = []
    if subjects < ms:
        why.append(f"{subjects} {SUBJECT_UNITS[rate]} < {ms}")
    if n < mc:
        why.append(f"{n} {RATE_UNITS[rate]} < {mc}")
    return bool(why), "; ".join(why) or None


# --------------------------------------------------------------------------- the rate estimate


@dataclass(frozen=True)
class RateEstimate:
    """One error rate with the evidence behind it.

    Definitions: ``rate = errors / n`` (None when ``n == 0``: not estimable, never 0); ``ci`` the
    exact two-sided Clopper-Pearson interval at the run's confidence (Clopper & Pearson 1934;
    ``uncertainty.clopper_pearson``), which treats the n trials as independent; ``upper`` the exact
    one-sided upper bound ``1 - (1 - confidence) ** (1 / n)`` when ``errors == 0`` (zero observed
    errors is not a zero rate; about 3/n at 95%, the rule of three); ``ci_boot`` the
    subject-clustered bootstrap percentile interval (``evalkit.metrics.bootstrap`` /
    ``evalkit.metrics.search``), None with ``ci_boot_reason`` when not computed or undefined;
    ``small`` / ``small_reason`` from :func:`small_rule`; ``subjects`` the distinct subjects in the
    trials (1:1: in the group's comparisons of both kinds; search: probe subjects)."""

    rate: float | None
    errors: int
    n: int
    subjects: int
    ci: list | None = None
    upper: float | None = None
    ci_boot: list | None = None
    ci_boot_reason: str | None = None
    small: bool = False
    small_reason: str | None = None
    estimable: bool = True
    reason: str | None = None

    @classmethod
    def from_counts(cls, errors: int, n: int, subjects: int, confidence: float, *, rate_name: str,
                    min_count=None, ci_boot=None, ci_boot_reason: str | None = BOOT_OFF) -> "RateEstimate":
        """The estimate of ``errors`` in ``n`` trials (``rate_name`` picks the nouns of the reasons)."""
        rs = uncertainty.rate_summary(int(errors), int(n), confidence)
        small, small_reason = small_rule(int(subjects), int(n), min_count, rate_name)
        boot = _pair(ci_boot)
        return cls(rate=_num(rs["rate"]), errors=int(errors), n=int(n), subjects=int(subjects), ci=_pair(rs["ci"]),
                   upper=_num(rs["upper_bound_if_zero"]), ci_boot=boot,
                   ci_boot_reason=None if boot is not None else (ci_boot_reason or "undefined"),
                   small=small, small_reason=small_reason, estimable=int(n) > 0,
                   reason=None if int(n) > 0 else f"no {RATE_UNITS[rate_name]}: the rate is not estimable")

    def with_boot(self, ci_boot, reason: str | None) -> "RateEstimate":
        boot = _pair(ci_boot)
        return RateEstimate(**{**asdict(self), "ci_boot": boot,
                               "ci_boot_reason": None if boot is not None else (reason or "undefined")})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        d["ci_boot"] = list(self.ci_boot) if self.ci_boot is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "RateEstimate":
        return cls(**{k: d.get(k) for k in FIELDS})


FIELDS = tuple(RateEstimate.__dataclass_fields__)


def is_rate(d) -> bool:
    """True for a metrics.json value shaped as a RateEstimate."""
    return isinstance(d, Mapping) and "rate" in d and "errors" in d and "n" in d and "estimable" in d


def estimate(errors, n, subjects, confidence, rate_name, min_count=None, ci_boot=None,
             ci_boot_reason: str | None = BOOT_OFF) -> dict:
    """``RateEstimate.from_counts(...).to_dict()``: the metrics.json form."""
    return RateEstimate.from_counts(errors, n, subjects, confidence, rate_name=rate_name, min_count=min_count,
                                    ci_boot=ci_boot, ci_boot_reason=ci_boot_reason).to_dict()


# --------------------------------------------------------------------------- the threshold record


@dataclass
class ThresholdRecord:
    """The operating threshold of a run, named in every output.

    ``policy``: global_fmr | fixed | per_group_fmr | calibrated (1:1), global_fpir | fixed (search);
    ``rate``: the rate it was set on or is read against ("fmr" or "fpir"); ``target``: the target
    rate (None for fixed); ``achieved``: that rate at the threshold over the ``n`` trials behind it
    (impostor comparisons or non-mated searches of the full gallery); ``resolvable``: False when
    the target is below 1/n; ``direction``: scores are distances, a match when score <= value;
    ``label``: the sentence every output shows; ``per_group``: attribute -> group -> {value,
    achieved, n, resolvable, note} (per_group_fmr); ``calibration``: the split a calibrated
    threshold was set on."""

    policy: str
    value: float | None
    rate: str
    target: float | None
    achieved: float | None
    n: int
    resolvable: bool
    label: str
    direction: str = "distance"
    calibration: dict | None = None
    per_group: dict | None = None
    global_value: float | None = None
    attribute: str | None = None
    gallery_size: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "ThresholdRecord":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})

    @classmethod
    def from_choice(cls, block: Mapping) -> "ThresholdRecord":
        """From ``evalkit.metrics.thresholds.choose``'s block (FMR-based policies)."""
        per = block.get("per_group")
        if per:
            per = {a: {g: {"value": e.get("value"), "achieved": e.get("achieved_fmr"), "n": e.get("n_impostor"),
                           "resolvable": e.get("resolvable"), **({"note": e["note"]} if e.get("note") else {})}
                       for g, e in groups.items()} for a, groups in per.items()}
        return cls(policy=block["policy"], value=block.get("value"), rate="fmr", target=block.get("target_fmr"),
                   achieved=block.get("achieved_fmr"), n=int(block.get("n_impostor") or 0),
                   resolvable=bool(block.get("resolvable", True)), label=block.get("label") or block["policy"],
                   calibration=block.get("calibration"), per_group=per or None,
                   global_value=block.get("global_value"), attribute=block.get("attribute"))


# --------------------------------------------------------------------------- the header block


def header_block(header: Mapping, *, kind: str, rates: Iterable[str], failure_policy: str, failures: dict,
                 threshold: ThresholdRecord | dict, min_count, bootstrap: dict | None) -> dict:
    """The blocks every metrics.json starts with, for every kind of run (built here only):
    schema, kind, rates, the pipeline's header (experiment, dataset, protocol, backend),
    failure_policy, failures, threshold, min_count, bootstrap."""
    out = dict(header)
    out["schema"] = SCHEMA
    out["kind"] = kind
    out["rates"] = list(rates)
    out["failure_policy"] = failure_policy
    out["failures"] = failures
    out["threshold"] = threshold.to_dict() if isinstance(threshold, ThresholdRecord) else dict(threshold)
    out["min_count"] = {"subjects": int(min_count[0]), "comparisons": int(min_count[1])}
    out["bootstrap"] = bootstrap
    return out


# --------------------------------------------------------------------------- readers


def run_kind(m: Mapping) -> str:
    """"search" or "verification" (older folders: from protocol.kind)."""
    if m.get("kind") in (VERIFICATION, SEARCH):
        return m["kind"]
    return SEARCH if (m.get("protocol") or {}).get("kind") == "search" else VERIFICATION


def run_rates(m: Mapping) -> list[str]:
    """The run's rate names in display order."""
    return list(m.get("rates") or (SEARCH_RATES if run_kind(m) == SEARCH else VERIFICATION_RATES))


def group_blocks(m: Mapping) -> dict:
    """attribute (or intersection, "sex x race") -> group -> entry."""
    return {**(m.get("groups") or {}), **(m.get("intersections") or {})}


def rates_of(entry: Mapping | None) -> dict:
    """rate name -> estimate dict, the rates of one group entry."""
    return {k: v for k, v in (entry or {}).items() if is_rate(v)}


def entry_small(entry: Mapping | None, rates: Iterable[str] | None = None) -> str | None:
    """The reasons (deduplicated, '; '-joined) why any rate of a group entry is flagged small, or None."""
    parts = []
    for name, r in rates_of(entry).items():
        if (rates is None or name in rates) and r.get("small"):
            parts += (r.get("small_reason") or "flagged small").split("; ")
    return "; ".join(dict.fromkeys(parts)) or None


ROW_COLUMNS = ("attribute", "group", "rate_name", "rate", "errors", "n", "subjects", "ci_low", "ci_high",
               "upper", "boot_low", "boot_high", "small", "reason")


def _row(attribute: str, group: str, name: str, r: Mapping) -> dict:
    ci, boot = r.get("ci") or [None, None], r.get("ci_boot") or [None, None]
    return {"attribute": attribute, "group": group, "rate_name": name, "rate": r.get("rate"),
            "errors": r.get("errors"), "n": r.get("n"), "subjects": r.get("subjects"), "ci_low": ci[0],
            "ci_high": ci[1], "upper": r.get("upper"), "boot_low": boot[0], "boot_high": boot[1],
            "small": bool(r.get("small")), "reason": r.get("small_reason") or r.get("reason")}


def by_group_rows(metrics: Mapping) -> list[dict]:
    """One row per (attribute, group, rate) with the columns of ``ROW_COLUMNS``: the overall rates
    (attribute "overall", group "all"), every group of every attribute and intersection, the
    mixed-group rates (group "mixed") and failure to enrol per group (rate_name "fte").
    ``reason`` is the small-group reason, else why the rate is not estimable."""
    rows = [_row("overall", "all", k, r) for k, r in rates_of(metrics.get("overall")).items()]
    for attr, groups in group_blocks(metrics).items():
        for g, e in groups.items():
            rows += [_row(attr, g, k, r) for k, r in rates_of(e).items()]
        mixed = (metrics.get("mixed") or {}).get(attr)
        rows += [_row(attr, "mixed", k, r) for k, r in rates_of(mixed).items()]
    for attr, groups in ((metrics.get("failures") or {}).get("by_group") or {}).items():
        for g, e in groups.items():
            rows += [_row(attr, g, k, r) for k, r in rates_of(e).items()]
    return rows


DISPARITY_COLUMNS = ("attribute", "summary", "group", "reference", "value", "ci_low", "ci_high", "reason",
                     "groups", "definition", "source")


def disparity_rows(metrics: Mapping) -> list[dict]:
    """One row per (attribute, summary) of ``disparity`` (max/min ratios, FDR, IR, GARBE, SER ...),
    and one per (attribute, summary, group) for ratios to a reference group, with the columns of
    ``DISPARITY_COLUMNS``."""
    rows = []
    for attr, block in (metrics.get("disparity") or {}).items():
        for name, d in (block or {}).items():
            if not isinstance(d, Mapping):
                continue
            common = {"attribute": attr, "summary": name, "definition": d.get("definition"), "source": d.get("source")}
            if "by_group" in d:
                for g, r in (d.get("by_group") or {}).items():
                    ci = r.get("ci") or [None, None]
                    rows.append({**common, "group": g, "reference": d.get("reference"), "value": r.get("value"),
                                 "ci_low": ci[0], "ci_high": ci[1], "reason": r.get("reason"),
                                 "groups": [g, d.get("reference")]})
                continue
            ci = d.get("ci") or [None, None]
            rows.append({**common, "group": None, "reference": None, "value": d.get("value"), "ci_low": ci[0],
                         "ci_high": ci[1], "reason": d.get("reason"), "groups": list(d.get("groups") or [])})
    return [{k: r.get(k) for k in DISPARITY_COLUMNS} for r in rows]


__all__ = ["SCHEMA", "RateEstimate", "ThresholdRecord", "small_rule", "estimate", "header_block", "by_group_rows",
           "disparity_rows", "run_kind", "run_rates", "group_blocks", "rates_of", "entry_small", "is_rate",
           "ROW_COLUMNS", "DISPARITY_COLUMNS"]
