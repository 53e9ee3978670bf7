"""``evalkit compare``: several runs side by side, group by group, read only from their metrics.json.

Inputs are run folders (or their metrics.json), or a folder that holds runs, such as a multirun
sweep (``results/multirun/<time>/<num>-<experiment>/``) or ``results/<experiment>/``: it is
expanded into its runs, in Hydra's job order. Outputs, in ``--out`` (default: the sweep folder
when one sweep is given, else ``compare-<time>/`` in the folder holding the runs, never the cwd):

- ``compare.csv``: one row per run x attribute x group (and intersection x group), plus one
  ``overall``/``all`` row per run first; for each rate of the runs (FNMR and FMR of 1:1 runs;
  FNIR, FPIR and FNIR at rank 1 of search runs) its estimate (``<rate>``, ``_errors``, ``_n``,
  ``_subjects``, ``_ci_low``/``_ci_high`` exact, ``_boot_low``/``_boot_high`` subject-clustered
  bootstrap, ``_upper`` when zero errors, ``_small``), failure to enrol, and the run's threshold
  (columns: :func:`csv_columns`);
- ``compare.md``: the runs, the max/min ratio of every rate per attribute, then one table per
  attribute with every group's rates per run;
- ``compare.png/.svg/.pdf``: every rate per group of each attribute, one colour per run, log
  scale, with the run's interval as error bars;
- when the runs' metrics.json have them (1:1 runs; search runs do not carry these blocks):
  ``compare_nist.csv``, NIST FRTE's demographic table per run x attribute x rate x measure (overall,
  min, max naming the worst group, max/min, max - min, max/mean, max/geometric mean, Gini; value,
  interval by the one rule ``bootstrap.INTERVAL_RULE``, or the reasons why not: columns
  :data:`NIST_CSV_COLUMNS`), and ``compare_score_shifts.csv``, each group's comparison-score shifts
  (ISO/IEC 19795-10 style: mean and standardised shift of its mated and non-mated scores from the
  overall ones, with intervals, KS distance: :data:`SHIFT_CSV_COLUMNS`); compare.md shows both
  as tables with the unit once per column header and "not estimable" + numbered reasons.

One code path for both kinds of run: schema ``evalkit.metrics/3`` holds every rate as one
RateEstimate at ``groups[attr][g][rate]`` (``evalkit.metrics.results``). Runs of different kinds
(1:1 and one-to-many search) are never compared with each other (a CompareError, exit 2). For a
search run a group is the probe's group, the rates are at the run's threshold and full gallery.
Intervals shown in compare.md: the bootstrap interval when the run has one with a width (a
bootstrap of 0 errors is a single point), else the exact one (marked "exact").
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ..metrics import results
from .check import _pct, run_kind   # one percentage format for the gate and the comparison
from .stats_sections import NIST_ROWS
from .stats_sections import fmt as stat_fmt   # the summary's and report's formats for these measures

RUN_COLUMNS = ["run", "backend", "experiment", "path", "dataset", "protocol", "threshold_policy", "threshold_value",
               "threshold_label", "threshold_rate", "threshold_target", "threshold_achieved", "group_threshold",
               "attribute", "group"]
RATE_SUFFIXES = ("", "_errors", "_n", "_subjects", "_ci_low", "_ci_high", "_boot_low", "_boot_high", "_upper", "_small")
EXTRA_COLUMNS = {"verification": ["accuracy", "eer", "run_eer", "lfw_accuracy", "lfw_accuracy_sem"],
                 "search": ["gallery_size", "candidates", "n_mated_probes", "n_nonmated_probes"]}
FTE_COLUMNS = ["fte", "fte_errors", "fte_n"]


NIST_MEASURES = tuple(NIST_ROWS)
#: metrics.json unit of each NIST measure's value (compare.md shows it in the unit of its column header)
NIST_UNITS = {"overall": "fraction", "min": "fraction", "max": "fraction", "max_min_ratio": "ratio",
              "max_minus_min": "fraction", "max_over_mean": "ratio", "max_over_geomean": "ratio", "gini": "index 0-1"}
NIST_CSV_COLUMNS = ["run", "backend", "path", "attribute", "rate", "measure", "unit", "value", "ci_low", "ci_high",
                    "group", "groups", "reason", "ci_reason", "ci_method"]
SHIFT_KINDS = ("mated", "non_mated")
SHIFT_CSV_COLUMNS = ["run", "backend", "path", "score_unit", "attribute", "group", "comparisons", "n", "subjects",
                     "n_all", "failed_left_out", "mean_shift", "mean_shift_ci_low", "mean_shift_ci_high",
                     "standardised_shift", "standardised_ci_low", "standardised_ci_high", "ks", "ci_reason",
                     "ks_ci_reason", "ci_method"]


def csv_columns(kind: str, rates=None) -> list[str]:
    """The compare.csv columns for runs of one kind."""
    rates = list(rates or (results.SEARCH_RATES if kind == "search" else results.VERIFICATION_RATES))
    return [*RUN_COLUMNS, *[f"{r}{x}" for r in rates for x in RATE_SUFFIXES], *FTE_COLUMNS, *EXTRA_COLUMNS[kind]]


CSV_COLUMNS = csv_columns("verification")
SEARCH_CSV_COLUMNS = csv_columns("search")


class CompareError(ValueError):
    """A usage problem (exit 2)."""


def _num_prefix(p: Path):
    m = re.match(r"(\d+)-", p.name)
    return (int(m.group(1)) if m else 10**9, p.name)


def find_runs(paths) -> list[Path]:
    """Run folders from the given paths: a run folder or metrics.json as is; a folder without
    metrics.json whose subfolders have one (a sweep) expands to those, in job-number order."""
    runs: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file() and p.name == "metrics.json":
            runs.append(p.parent)
        elif (p / "metrics.json").is_file():
            runs.append(p)
        elif p.is_dir():
            subs = sorted((d for d in p.iterdir() if (d / "metrics.json").is_file()), key=_num_prefix)
            if not subs:
                raise CompareError(f"{p}: neither a run folder (no metrics.json) nor a folder of runs")
            runs += subs
        else:
            raise CompareError(f"{p}: no such run folder or metrics.json")
    seen, out = set(), []
    for r in runs:
        if r.resolve() not in seen:
            seen.add(r.resolve())
            out.append(r)
    if not out:
        raise CompareError("no runs given")
    return out


def load_runs(run_dirs: list[Path]) -> list[dict]:
    """[{label, path, metrics}], labels unique: the backend name, with as much of the folder path
    as it takes to tell runs of one backend apart."""
    loaded = []
    for d in run_dirs:
        try:
            m = json.loads((d / "metrics.json").read_text())
        except json.JSONDecodeError as exc:
            raise CompareError(f"{d / 'metrics.json'} is not valid JSON: {exc}") from None
        if not isinstance(m, dict):
            raise CompareError(f"{d / 'metrics.json'} is not an evalkit metrics.json (not a JSON object)")
        kind = run_kind(m)
        if "groups" not in m:
            raise CompareError(f"{d / 'metrics.json'} has no 'groups' block; is it an evalkit metrics.json?")
        if m.get("schema") != results.SCHEMA:
            raise CompareError(f"{d / 'metrics.json'} is schema {m.get('schema')!r}; evalkit compare reads "
                               f"{results.SCHEMA!r} (rerun it with this evalkit)")
        loaded.append({"path": d, "metrics": m, "kind": kind,
                       "label": str(m.get("backend", {}).get("name") or d.name)})
    kinds = {r["kind"] for r in loaded}
    if len(kinds) > 1:
        def names(k):
            return ", ".join(str(r["path"]) for r in loaded if r["kind"] == k)
        raise CompareError("cannot compare 1:1 verification runs (FMR/FNMR) with one-to-many search runs "
                           f"(protocol=search; FPIR/FNIR): their rates measure different things. 1:1: {names('verification')}; "
                           f"search: {names('search')}. Compare each kind on its own.")
    for level in (1, 2, 3):   # backend [folder], then [parent/folder], ... until every label is unique
        names = [r["label"] for r in loaded]
        dup = {n for n in names if names.count(n) > 1}
        if not dup:
            break
        for r in loaded:
            if r["label"] in dup:
                tail = "/".join(r["path"].resolve().parts[-level:])
                r["label"] = f"{r['metrics'].get('backend', {}).get('name') or r['path'].name} [{tail}]"
    names = [r["label"] for r in loaded]
    for i, r in enumerate(loaded):
        if names.count(r["label"]) > 1:
            r["label"] += f" #{i + 1}"
    return loaded


def _threshold(m: dict) -> dict:
    return m.get("threshold") or {}


def _group_threshold(m: dict, attr: str, group: str):
    per = _threshold(m).get("per_group") or {}
    return ((per.get(attr) or {}).get(group) or {}).get("value")


def _items(m: dict) -> list[tuple[str, str, dict, dict]]:
    """(attribute, group, entry, failure-to-enrol estimate): overall first, then every group of every
    attribute and intersection (sorted)."""
    fails = m.get("failures") or {}
    items = [("overall", "all", m.get("overall") or {}, (fails.get("images") or {}).get("fte") or {})]
    for attr, groups in results.group_blocks(m).items():
        for g in sorted(groups):
            fte = (((fails.get("by_group") or {}).get(attr) or {}).get(g) or {}).get("fte") or {}
            items.append((attr, g, groups[g], fte))
    return items


def _rate_fields(name: str, e: dict) -> dict:
    ci, boot = e.get("ci") or [None, None], e.get("ci_boot") or [None, None]
    return {name: e.get("rate"), f"{name}_errors": e.get("errors"), f"{name}_n": e.get("n"),
            f"{name}_subjects": e.get("subjects"), f"{name}_ci_low": ci[0], f"{name}_ci_high": ci[1],
            f"{name}_boot_low": boot[0], f"{name}_boot_high": boot[1], f"{name}_upper": e.get("upper"),
            f"{name}_small": e.get("small") if e else None}


def rows_for(run: dict) -> list[dict]:
    """The CSV rows of one run (:func:`csv_columns`): overall first, then every attribute x group
    (sorted); every number as metrics.json holds it."""
    m, th, pr = run["metrics"], _threshold(run["metrics"]), run["metrics"].get("protocol") or {}
    s, acc = m.get("search") or {}, m.get("lfw_accuracy") or {}
    base = {"run": run["label"], "backend": m.get("backend", {}).get("name"), "experiment": m.get("experiment"),
            "path": str(run["path"]), "dataset": m.get("dataset", {}).get("name"), "protocol": pr.get("name"),
            "threshold_policy": th.get("policy"), "threshold_value": th.get("value"),
            "threshold_label": th.get("label"), "threshold_rate": th.get("rate"), "threshold_target": th.get("target"),
            "threshold_achieved": th.get("achieved"),
            # 1:1 extras
            "run_eer": m.get("eer"), "lfw_accuracy": acc.get("mean"), "lfw_accuracy_sem": acc.get("sem"),
            # search extras
            "gallery_size": s.get("gallery_size"), "candidates": s.get("candidates"),
            "n_mated_probes": pr.get("n_mated_probes"), "n_nonmated_probes": pr.get("n_nonmated_probes")}
    out = []
    for attr, g, f, fte in _items(m):
        row = {**base, "attribute": attr, "group": g, "group_threshold": _group_threshold(m, attr, g),
               "accuracy": f.get("accuracy"), "eer": f.get("eer") if attr != "overall" else m.get("eer"),
               "fte": fte.get("rate"), "fte_errors": fte.get("errors"), "fte_n": fte.get("n")}
        for name in results.run_rates(m):
            row.update(_rate_fields(name, f.get(name) or {}))
        out.append(row)
    return out


def write_csv(rows: list[dict], path: Path, columns: list[str] = CSV_COLUMNS) -> Path:
    """Numbers written with repr precision (Python's str of a float round-trips exactly)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return path


def _shown_interval(e: dict) -> tuple[list | None, str]:
    """The interval compare.md shows for an estimate: the bootstrap interval when the run has one
    and it has a width, else the exact (Clopper-Pearson) one (the bootstrap of 0 errors, or of one
    subject, is a single point: it bounds nothing)."""
    boot = e.get("ci_boot")
    if boot and boot[0] is not None and boot[1] is not None and boot[1] > boot[0]:
        return boot, "bootstrap"
    ci = e.get("ci")
    return (ci if ci and ci[0] is not None else None), "exact"


def rate_cell(e: dict | None) -> str:
    """"rate (errors/n) [low, high]" (+ " exact" for the Clopper-Pearson interval, + *small*)."""
    e = e or {}
    if e.get("rate") is None:
        return f"n/a ({e.get('n') or 0} trials)"
    txt = f"{_pct(e['rate'])} ({e.get('errors')}/{e.get('n')})"
    iv, how = _shown_interval(e)
    if iv is not None:
        txt += f" [{_pct(iv[0])}, {_pct(iv[1])}]" + (" exact" if how == "exact" else "")
    if e.get("small"):
        txt += " *small*"
    return txt


def _ratio_cell(d: dict | None) -> str:
    d = d or {}
    if d.get("value") is None:
        return f"undefined ({d.get('reason') or 'not in metrics.json'})"
    ci = d.get("ci")
    shown = (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci and ci[0] is not None
             else f" (no interval: {d['ci_reason']})" if d.get("ci_reason") else "")
    return f"{d['value']:.3g}" + shown + f" ({' / '.join(d.get('groups') or [])})"


def _threshold_cell(th: dict) -> str:
    v = th.get("value")
    txt = th.get("label") or (f"{th.get('policy')} {v:.6g}" if isinstance(v, (int, float)) else f"{th.get('policy')}")
    if th.get("achieved") is not None:
        txt += f" (achieved {str(th.get('rate') or '').upper()} {_pct(th['achieved'])})"
    return txt


def _score_unit(m: dict) -> str:
    """What a run's score shifts are measured in: its distance minus the threshold (a similarity
    enters evalkit's metrics negated, so there a positive shift means LESS alike as well)."""
    from ..backends.scoring_base import SIMILARITY, direction_of

    be = m.get("backend") or {}
    if direction_of(m) == SIMILARITY:
        return f"{be.get('name') or 'the system'}'s similarity, negated (positive = less alike)"
    return f"{be.get('distance') or 'the backend'} distance of {be.get('name') or 'the backend'} (positive = less alike)"


def _iv(e: dict, key: str = "ci") -> tuple:
    ci = e.get(key)
    return (ci[0], ci[1]) if ci and ci[0] is not None and ci[1] is not None else (None, None)


def nist_rows_for(run: dict) -> list[dict]:
    """compare_nist.csv rows of one run: every attribute x rate x measure of metrics.json ``nist``,
    every number as metrics.json holds it."""
    m = run["metrics"]
    out = []
    for attr, by_rate in (m.get("nist") or {}).items():
        for rate in ("fnmr", "fmr"):
            t = by_rate.get(rate) or {}
            for name in NIST_MEASURES:
                e = t.get(name) or {}
                lo, hi = _iv(e)
                out.append({"run": run["label"], "backend": (m.get("backend") or {}).get("name"), "path": str(run["path"]),
                            "attribute": attr, "rate": rate, "measure": name, "unit": NIST_UNITS[name],
                            "value": e.get("value"), "ci_low": lo, "ci_high": hi,
                            "group": t.get("worst") if name == "max" else t.get("best") if name == "min" else None,
                            "groups": " ".join(t.get("groups") or []), "reason": e.get("reason"),
                            "ci_reason": e.get("ci_reason") if lo is None else None, "ci_method": e.get("ci_method")})
    return out


def shift_rows_for(run: dict) -> list[dict]:
    """compare_score_shifts.csv rows of one run: every attribute x group x (mated, non-mated) of
    metrics.json ``score_shifts``."""
    m = run["metrics"]
    out = []
    for attr, block in (m.get("score_shifts") or {}).items():
        for g, row in (block.get("by_group") or {}).items():
            for kind in SHIFT_KINDS:
                e = row.get(kind) or {}
                lo, hi = _iv(e)
                slo, shi = _iv(e, "standardised_ci")
                out.append({"run": run["label"], "backend": (m.get("backend") or {}).get("name"), "path": str(run["path"]),
                            "score_unit": _score_unit(m), "attribute": attr, "group": g, "comparisons": kind,
                            "n": e.get("n"), "subjects": e.get("subjects"), "n_all": e.get("n_all"),
                            "failed_left_out": e.get("failed_left_out"), "mean_shift": e.get("mean_shift"),
                            "mean_shift_ci_low": lo, "mean_shift_ci_high": hi,
                            "standardised_shift": e.get("standardised_shift"), "standardised_ci_low": slo,
                            "standardised_ci_high": shi, "ks": e.get("ks"),
                            "ci_reason": e.get("ci_reason") if lo is None else None, "ks_ci_reason": e.get("ks_ci_reason"),
                            "ci_method": block.get("ci_method")})
    return out


class _Notes:
    """Numbered reasons under a table ("not estimable [2]"), each reason written once."""

    def __init__(self):
        self.items: list[str] = []

    def ref(self, reason: str | None) -> str:
        reason = reason or "no interval in metrics.json"
        if reason not in self.items:
            self.items.append(reason)
        return f"[{self.items.index(reason) + 1}]"

    def lines(self) -> list[str]:
        return [f"{i + 1}. {r}" for i, r in enumerate(self.items)] + ([""] if self.items else [])


def stat_cell(value, ci, reason, ci_reason, kind: str, notes: _Notes, name: str | None = None) -> str:
    """One measure with its interval, in its column's unit (``stats_sections.fmt``): ``v [lo, hi]``,
    ``v (no interval: not estimable [k])`` or ``n/a [k]`` when the value itself is undefined."""
    if value is None:
        return "n/a " + notes.ref(reason or "undefined")
    txt = stat_fmt(kind, value) + (f" {name}" if name else "")
    lo, hi = (ci[0], ci[1]) if ci and ci[0] is not None and ci[1] is not None else (None, None)
    if lo is None:
        return txt + " (not estimable " + notes.ref(ci_reason) + ")"
    return txt + f" [{stat_fmt(kind, lo)}, {stat_fmt(kind, hi)}]"


#: compare.md's NIST column headers: the measure and its unit, once per column
NIST_HEADERS = {"overall": "overall (%)", "min": "lowest group (%)", "max": "highest group (%), the worst named",
                "max_min_ratio": "max / min (ratio, 1 = equal)", "max_minus_min": "max − min (percentage points)",
                "max_over_mean": "max / mean (ratio, 1 = equal)", "max_over_geomean": "max / geometric mean (ratio, 1 = equal)",
                "gini": "Gini (index 0–1, 0 = equal)"}


def nist_markdown(runs: list[dict]) -> list[str]:
    """compare.md's NIST FRTE section: per attribute and rate, one row per run."""
    if not any(r["metrics"].get("nist") for r in runs):
        return []
    rule = next((e.get("ci_method") for r in runs for b in (r["metrics"].get("nist") or {}).values()
                 for t in b.values() for e in t.values() if isinstance(e, dict) and e.get("ci_method")
                 and e is not t.get("overall")), None)
    lines = ["", "## NIST FRTE demographic table", "",
             "Over each run's groups not flagged small, at its own threshold. Overall: exact (Clopper-Pearson) "
             "interval; every other measure: the one interval rule of the disparity summaries"
             + (f" ({rule.split(':')[0]})" if rule else "") + ". A bracketed number points to the reason below "
             "the table.", ""]
    attrs = list(dict.fromkeys(a for r in runs for a in (r["metrics"].get("nist") or {})))
    for attr in attrs:
        for rate in ("fnmr", "fmr"):
            notes = _Notes()
            lines += [f"### {rate.upper()} by {attr}", "",
                      "| run | " + " | ".join(NIST_HEADERS[n] for n in NIST_MEASURES) + " |",
                      "|---|" + "---|" * len(NIST_MEASURES)]
            for r in runs:
                t = ((r["metrics"].get("nist") or {}).get(attr) or {}).get(rate)
                if not t:
                    lines.append(f"| {r['label']} | " + " | ".join("-" for _ in NIST_MEASURES) + " |")
                    continue
                cells = []
                for name in NIST_MEASURES:
                    e = t.get(name) or {}
                    who = t.get("worst") if name == "max" else t.get("best") if name == "min" else None
                    cells.append(stat_cell(e.get("value"), e.get("ci"), e.get("reason"), e.get("ci_reason"),
                                           NIST_ROWS[name][2], notes, who))
                lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
            lines += [""] + notes.lines()
    return lines


def shift_markdown(runs: list[dict]) -> list[str]:
    """compare.md's score-shift section: per attribute, one row per run x group."""
    if not any(r["metrics"].get("score_shifts") for r in runs):
        return []
    lines = ["", "## Comparison-score shifts by group (ISO/IEC 19795-10)", "",
             "How far each group's mated and non-mated scores sit from all of that kind: mean shift in the run's own "
             "score unit (each run's distance minus its threshold: compare runs of different backends by the "
             "standardised shift), standardised shift in overall standard deviations, KS distance 0–1; 95% "
             "intervals, subject-clustered.", "",
             "| run | score unit |", "|---|---|"]
    lines += [f"| {r['label']} | {_score_unit(r['metrics'])} |" for r in runs if r["metrics"].get("score_shifts")]
    attrs = list(dict.fromkeys(a for r in runs for a in (r["metrics"].get("score_shifts") or {})))
    for attr in attrs:
        notes = _Notes()
        head = []
        for kind in ("mated", "non-mated"):
            head += [f"{kind} n / subjects", f"{kind} mean shift (score units) [95% CI]",
                     f"{kind} standardised shift (SDs) [95% CI]", f"{kind} KS (0–1)"]
        lines += ["", f"### Score shifts by {attr}", "", "| group | run | " + " | ".join(head) + " |",
                  "|---|---|" + "---|" * len(head)]
        groups = list(dict.fromkeys(g for r in runs for g in
                                    (((r["metrics"].get("score_shifts") or {}).get(attr) or {}).get("by_group") or {})))
        for g in groups:
            for r in runs:
                row = ((((r["metrics"].get("score_shifts") or {}).get(attr) or {}).get("by_group") or {}).get(g))
                if row is None:
                    lines.append(f"| {g} | {r['label']} | " + " | ".join("-" for _ in head) + " |")
                    continue
                cells = []
                for kind in SHIFT_KINDS:
                    e = row.get(kind) or {}
                    cells += [f"{e.get('n')} / {e.get('subjects', '-')}",
                              stat_cell(e.get("mean_shift"), e.get("ci"), e.get("ci_reason"), e.get("ci_reason"), "g", notes),
                              stat_cell(e.get("standardised_shift"), e.get("standardised_ci"), e.get("ci_reason"),
                                        e.get("ci_reason"), "g", notes),
                              stat_fmt("g", e.get("ks"))]
                lines.append(f"| {g} | {r['label']} | " + " | ".join(cells) + " |")
        lines += [""] + notes.lines()
    return lines


INTRO = {
    "verification": ("# evalkit compare",
                     "Each run's rates at its own threshold, read from its metrics.json. FNMR: genuine comparisons "
                     "not matched; FMR: impostor comparisons matched."),
    "search": ("# evalkit compare: one-to-many search runs",
               "Each run's rates per probe group at its own threshold and its full gallery, read from its "
               "metrics.json. FPIR: non-mated searches (the person is not enrolled) returning any candidate at the "
               "threshold; FNIR: mated searches whose mate is not returned at the threshold; FNIR at rank 1: mated "
               "searches whose mate is not the top candidate."),
}


def _run_line(r: dict) -> str:
    m, pr = r["metrics"], r["metrics"].get("protocol") or {}
    fi = ((m.get("failures") or {}).get("images") or {}).get("fte") or {}
    o = m.get("overall") or {}
    if r["kind"] == "search":
        s = m.get("search") or {}
        what = (f"gallery {s.get('gallery_size', '?')} subjects / {s.get('candidates', '?')} candidates; probes "
                f"{pr.get('n_mated_probes', '?')} mated / {pr.get('n_nonmated_probes', '?')} non-mated")
    else:
        acc = m.get("lfw_accuracy")
        what = (f"{pr.get('n_genuine', '?')} genuine / {pr.get('n_impostor', '?')} impostor; EER {_pct(m.get('eer'))}"
                + (f"; LFW accuracy {100 * acc['mean']:.2f}% ± {100 * acc['sem']:.2f}%" if acc else ""))
    rates = " | ".join(rate_cell(o.get(n)) for n in results.run_rates(m))
    return (f"| {r['label']} | {m.get('backend', {}).get('name', '?')} | {m.get('dataset', {}).get('name', '?')} / "
            f"{pr.get('name', '?')} | {_threshold_cell(_threshold(m))} | {what} | {rates} | "
            f"{fi.get('errors', '?')} of {fi.get('n', '?')} | `{r['path']}` |")


def _same_trials_key(r: dict) -> tuple:
    m, pr = r["metrics"], r["metrics"].get("protocol") or {}
    return (m.get("dataset", {}).get("name"), pr.get("name"), pr.get("n_comparisons"), str(pr.get("gallery_sizes")),
            pr.get("n_mated_probes"), pr.get("n_nonmated_probes"), pr.get("seed"))


def render_markdown(runs: list[dict], rows: list[dict], figure: str | None) -> str:
    """compare.md for runs of one kind (1:1 or search): one code path, the rates named by the runs."""
    kind = runs[0]["kind"]
    rates = results.run_rates(runs[0]["metrics"])
    names = [results.RATE_LABELS[n] for n in rates]
    title, intro = INTRO[kind]
    lines = [title, "", intro + " Intervals: 95%, the subject-clustered bootstrap when the run has one (and it is "
             "not a single point, as for 0 errors), else the exact (Clopper-Pearson) interval, marked *exact*; "
             "`n/a` where a group has no trials of that kind; *small*: fewer subjects or trials than the run's "
             "min_count, too few to read alone.", ""]
    lines += ["| run | backend | dataset / protocol | threshold | trials | " + " | ".join(f"{n} overall" for n in names)
              + " | failed images | folder |", "|---|---|---|---|---|" + "---|" * len(names) + "---:|---|"]
    lines += [_run_line(r) for r in runs]
    if len({_same_trials_key(r) for r in runs}) > 1:
        lines += ["", "**Note:** these runs do not share one dataset and protocol "
                  f"({sorted(map(str, {_same_trials_key(r) for r in runs}))}); their rates are not measured on the "
                  "same trials."]
    if figure:
        lines += ["", f"![{', '.join(names)} per group, one colour per run]({figure}.png)"]
    lines += ["", "## Disparity (max/min over labelled groups not flagged small)", "",
              "| attribute | run | " + " | ".join(f"{n} max/min [95% CI] (groups)" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    attrs = list(dict.fromkeys(a for r in runs for a in (r["metrics"].get("disparity") or {})))
    for a in attrs:
        for r in runs:
            d = (r["metrics"].get("disparity") or {}).get(a) or {}
            lines.append(f"| {a} | {r['label']} | "
                         + " | ".join(_ratio_cell(d.get(f"{n}_max_min_ratio")) if f"{n}_max_min_ratio" in d else "-"
                                      for n in rates) + " |")
    entries = {(str(r["path"]), a, g): (f, fte) for r in runs for a, g, f, fte in _items(r["metrics"])}
    who = "probe " if kind == "search" else ""
    for attr in dict.fromkeys(row["attribute"] for row in rows):   # in row order
        lines += ["", "## overall" if attr == "overall" else f"## By {who}{attr}", "",
                  f"| {who}group | run | subjects | " + " | ".join(f"{n} (errors/n) [95% CI]" for n in names)
                  + " | failure to enrol |", "|---|---|---:|" + "---|" * len(names) + "---:|"]
        sub = [x for x in rows if x["attribute"] == attr]
        for g in sorted({x["group"] for x in sub}):
            for row in (x for x in sub if x["group"] == g):
                f, fte = entries[(row["path"], attr, g)]
                subj = " / ".join(dict.fromkeys(str((f.get(n) or {}).get("subjects", "-")) for n in rates))
                ft = "-" if fte.get("rate") is None else f"{_pct(fte['rate'])} ({fte.get('errors')}/{fte.get('n')})"
                lines.append(f"| {g} | {row['run']} | {subj} | " + " | ".join(rate_cell(f.get(n)) for n in rates)
                             + f" | {ft} |")
    lines += nist_markdown(runs) + shift_markdown(runs)
    return "\n".join(lines).rstrip("\n") + "\n"


def compare(paths, out: str | Path | None = None) -> dict:
    """Compare runs; returns {out, runs, rows, files, kind}."""
    from ..runfolder import RunFolderError, compare_out_dir, require_finished_runs

    try:
        require_finished_runs(paths)   # a failed or unfinished run is refused, never silently dropped
    except RunFolderError as exc:
        raise CompareError(str(exc)) from None
    run_dirs = find_runs(paths)
    runs = load_runs(run_dirs)
    out = Path(out) if out is not None else compare_out_dir(paths, run_dirs)   # beside the runs, not the cwd
    out.mkdir(parents=True, exist_ok=True)
    from . import plots

    kind = runs[0]["kind"]
    rates = results.run_rates(runs[0]["metrics"])
    rows = [row for r in runs for row in rows_for(r)]
    files = [write_csv(rows, out / "compare.csv", csv_columns(kind, rates))]
    what = "probe group by probe group, each at its own threshold and full gallery" if kind == "search" else \
        "group by group, each at its own threshold"
    fig = plots.compare_runs_figure({r["label"]: r["metrics"] for r in runs}, rates=rates,
                                    title=f"{len(runs)} {'search ' if kind == 'search' else ''}runs, {what}")
    files += plots.save_figure(fig, out / "compare")
    nist_rows = [row for r in runs for row in nist_rows_for(r)]
    shift_rows = [row for r in runs for row in shift_rows_for(r)]
    if nist_rows:
        files.append(write_csv(nist_rows, out / "compare_nist.csv", NIST_CSV_COLUMNS))
    if shift_rows:
        files.append(write_csv(shift_rows, out / "compare_score_shifts.csv", SHIFT_CSV_COLUMNS))
    (out / "compare.md").write_text(render_markdown(runs, rows, "compare"))
    files.append(out / "compare.md")
    return {"out": out, "runs": runs, "rows": rows, "files": files, "kind": kind, "nist_rows": nist_rows,
            "shift_rows": shift_rows}


def main(args: list[str]) -> int:
    """``evalkit compare RUN... [--out DIR]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="evalkit compare",
                                description="Per-group table (Markdown, CSV) and figure across runs. A folder of "
                                            "runs (a multirun sweep) is expanded into its runs.")
    p.add_argument("runs", nargs="+", help="run folders, metrics.json files, or sweep folders")
    p.add_argument("--out", default=None, help="output folder (default: the sweep folder, or compare-<time>/ in "
                                               "the folder holding the runs)")
    try:
        ns = p.parse_args(args)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        res = compare(ns.runs, ns.out)
    except CompareError as exc:
        print(f"evalkit compare: error: {exc}", file=sys.stderr)
        return 2
    print(f"compared {len(res['runs'])} runs: " + ", ".join(r["label"] for r in res["runs"]))
    for f in res["files"]:
        print(f"  {f}")
    return 0
