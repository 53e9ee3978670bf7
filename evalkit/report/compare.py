"""``evalkit compare``: several runs side by side, group by group, read only from their metrics.json.

Inputs are run folders (or their metrics.json), or a folder that holds runs, such as a multirun
sweep (``results/multirun/<time>/<num>-<experiment>/``) or ``results/<experiment>/``: it is
expanded into its runs, in Hydra's job order. Outputs, in ``--out`` (default: the sweep folder
when one sweep is given, else ``./compare-<time>``):

- ``compare.csv``: one row per run x attribute x group (and intersection x group, schema v2),
  plus one ``overall``/``all`` row per run first (columns in ``CSV_COLUMNS``);
- ``compare.md``: the runs, then one table per attribute with every group's rates per run;
- ``compare.png/.svg/.pdf``: FNMR and FMR per group of each attribute, one colour per run, log
  scale, with the run's interval as error bars.

One-to-many search runs (``protocol=search``) are compared with each other, never with 1:1 runs
(a mix is a CompareError, exit 2). For them the rates are FPIR, FNIR and FNIR at rank 1 per probe
group at the run's threshold and full gallery, read from metrics.json's ``search`` block
(``evalkit.metrics.search_summary``): ``compare.csv`` has ``SEARCH_CSV_COLUMNS`` (each rate's
errors, searches, probe subjects, exact ``ci`` and probe-subject bootstrap ``ci_boot``),
``compare.md`` each run's split and threshold, the FPIR/FNIR max/min ratios per attribute, then one
table per attribute, and the figure has three panels per attribute (FPIR, FNIR, FNIR at rank 1).
Intervals shown in compare.md and the figure: ``ci_boot`` when the run has it (and it is not a
single point, as it is for 0 errors), else the exact ``ci`` (marked "exact").
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

from .check import _pct, run_kind   # one percentage format for the gate and the comparison

CSV_COLUMNS = [
    "run", "backend", "experiment", "path", "dataset", "protocol", "threshold_policy", "threshold_value",
    "threshold_label", "group_threshold", "attribute", "group", "small", "small_fnmr", "small_fmr", "n_subjects",
    "n_genuine", "false_nonmatches", "fnmr", "fnmr_ci_low", "fnmr_ci_high",
    "n_impostor", "false_matches", "fmr", "fmr_ci_low", "fmr_ci_high",
    "fte_n_images", "fte_failed", "fte_rate", "accuracy", "eer", "run_eer", "lfw_accuracy", "lfw_accuracy_sem",
]


SEARCH_RATES = ("fpir", "fnir", "fnir_rank1")
SEARCH_CSV_COLUMNS = [
    "run", "backend", "experiment", "path", "dataset", "protocol", "threshold_policy", "threshold_value",
    "threshold_label", "target_fpir", "achieved_fpir", "gallery_size", "candidates", "n_mated_probes",
    "n_nonmated_probes", "attribute", "group", "small_fpir", "small_fnir",
    *[f"{r}{suffix}" for r in SEARCH_RATES
      for suffix in ("_n_subjects", "_errors", "_n", "", "_ci_low", "_ci_high", "_ci_boot_low", "_ci_boot_high",
                     "_upper_bound")],
    "fte_n_images", "fte_failed", "fte_rate",
]


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
        need = "search" if kind == "search" else "groups"
        if need not in m:
            raise CompareError(f"{d / 'metrics.json'} has no {need!r} block; is it an evalkit metrics.json?")
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


def _items(m: dict, root: dict) -> list[tuple[str, str, dict, dict]]:
    """(attribute, group, entry, failure-to-enrol entry): overall first, then every group of every
    attribute and intersection (sorted), the entries read from ``root``: metrics.json itself for a
    1:1 run, its ``search`` block for a search run (a group is then the probe's group)."""
    fails = m.get("failures") or {}
    img = fails.get("images") or {}
    items = [("overall", "all", root.get("overall") or {},
              {"n_images": img.get("n"), "failed": img.get("failed"), "rate": img.get("rate")})]
    for attr, groups in [*(root.get("groups") or {}).items(), *(root.get("intersections") or {}).items()]:
        for g in sorted(groups):
            items.append((attr, g, groups[g], ((fails.get("by_group") or {}).get(attr) or {}).get(g) or {}))
    return items


def rows_for(run: dict) -> list[dict]:
    """The CSV rows of one run: overall first, then every attribute x group (sorted)."""
    m, th = run["metrics"], _threshold(run["metrics"])
    acc = m.get("lfw_accuracy") or {}
    base = {"run": run["label"], "backend": m.get("backend", {}).get("name"), "experiment": m.get("experiment"),
            "path": str(run["path"]), "dataset": m.get("dataset", {}).get("name"),
            "protocol": m.get("protocol", {}).get("name"), "threshold_policy": th.get("policy"),
            "threshold_value": th.get("value"), "threshold_label": th.get("label"),
            "run_eer": m.get("eer"), "lfw_accuracy": acc.get("mean"), "lfw_accuracy_sem": acc.get("sem")}
    out = []
    for attr, g, f, fte in _items(m, m):
        fnmr_ci, fmr_ci = f.get("fnmr_ci") or [None, None], f.get("fmr_ci") or [None, None]
        row = dict(base)
        row.update({"attribute": attr, "group": g, "small": f.get("small"), "accuracy": f.get("accuracy"),
                    "small_fnmr": f.get("small_fnmr", f.get("small")), "small_fmr": f.get("small_fmr", f.get("small")),
                    "group_threshold": _group_threshold(m, attr, g), "n_subjects": f.get("n_subjects"),
                    "n_genuine": f.get("n_genuine"), "false_nonmatches": f.get("false_nonmatches"),
                    "fnmr": f.get("fnmr"), "fnmr_ci_low": fnmr_ci[0], "fnmr_ci_high": fnmr_ci[1],
                    "n_impostor": f.get("n_impostor"), "false_matches": f.get("false_matches"),
                    "fmr": f.get("fmr"), "fmr_ci_low": fmr_ci[0], "fmr_ci_high": fmr_ci[1],
                    "fte_n_images": fte.get("n_images"), "fte_failed": fte.get("failed"), "fte_rate": fte.get("rate"),
                    "eer": f.get("eer") if attr != "overall" else m.get("eer")})
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


def _rate_cell(r: dict, rate: str) -> str:
    errors = r["false_nonmatches" if rate == "fnmr" else "false_matches"]
    n = r["n_genuine" if rate == "fnmr" else "n_impostor"]
    if r[rate] is None:
        return f"n/a ({n or 0} comparisons)"
    txt = f"{_pct(r[rate])} ({errors}/{n})"
    if r[f"{rate}_ci_high"] is not None:
        txt += f" [{_pct(r[f'{rate}_ci_low'])}, {_pct(r[f'{rate}_ci_high'])}]"
    if r.get(f"small_{rate}"):
        txt += " *small*"
    return txt


def render_markdown(runs: list[dict], rows: list[dict], figure: str | None) -> str:
    lines = ["# evalkit compare", "",
             "Each run's rates at its own threshold, read from its metrics.json. Intervals: the run's "
             "95% exact (Clopper-Pearson) interval; `n/a` where a group has no comparisons of that kind; *small*: "
             "fewer subjects or comparisons than the run's min_count (metrics.json), too few to read alone.", ""]
    lines += ["| run | backend | dataset / protocol | threshold | comparisons (gen / imp) | EER | LFW accuracy | "
              "failed images | folder |", "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in runs:
        m, th = r["metrics"], _threshold(r["metrics"])
        pr, acc, fi = m.get("protocol", {}), m.get("lfw_accuracy"), (m.get("failures") or {}).get("images") or {}
        v = th.get("value")
        thr = th.get("label") or (f"{th.get('policy')} {v:.6g}" if isinstance(v, (int, float)) else f"{th.get('policy')}")
        if th.get("target_fmr") is not None and not th.get("label"):
            thr += f" (target FMR {th['target_fmr']:g})"
        lines.append(
            f"| {r['label']} | {m.get('backend', {}).get('name', '?')} | {m.get('dataset', {}).get('name', '?')} / "
            f"{pr.get('name', '?')} | {thr} | {pr.get('n_genuine', '?')} / {pr.get('n_impostor', '?')} | "
            f"{_pct(m.get('eer'))} | "
            + (f"{100 * acc['mean']:.2f}% ± {100 * acc['sem']:.2f}%" if acc else "-")
            + f" | {fi.get('failed', '?')} of {fi.get('n', '?')} | `{r['path']}` |")
    keys = {(r["metrics"].get("dataset", {}).get("name"), r["metrics"].get("protocol", {}).get("name"),
             r["metrics"].get("protocol", {}).get("n_comparisons")) for r in runs}
    if len(keys) > 1:
        lines += ["", "**Note:** these runs do not share one dataset and protocol "
                  f"({sorted(map(str, keys))}); their rates are not measured on the same comparisons."]
    if figure:
        lines += ["", f"![FNMR and FMR per group, one colour per run]({figure}.png)"]
    for attr in dict.fromkeys(r["attribute"] for r in rows):   # in row order
        lines += ["", f"## {attr}" if attr != "overall" else "## overall", "",
                  "| group | run | subjects | FNMR (errors/genuine) [95% CI] | FMR (errors/impostor) [95% CI] | "
                  "failure to enrol |", "|---|---|---:|---|---|---:|"]
        sub = [r for r in rows if r["attribute"] == attr]
        for g in sorted({r["group"] for r in sub}):
            for r in (x for x in sub if x["group"] == g):
                fte = "-" if r["fte_rate"] is None else f"{_pct(r['fte_rate'])} ({r['fte_failed']}/{r['fte_n_images']})"
                lines.append(f"| {g} | {r['run']} | {r['n_subjects'] if r['n_subjects'] is not None else '-'} | "
                             f"{_rate_cell(r, 'fnmr')} | {_rate_cell(r, 'fmr')} | {fte} |")
    lines += _disparity_lines(runs)
    return "\n".join(lines) + "\n"


def _disparity_cell(d: dict | None) -> str:
    """A disparity summary with its interval, or the reason it has none (one "not estimable" state)."""
    d = d or {}
    if d.get("value") is None:
        return f"undefined ({d.get('reason') or 'not in metrics.json'})"
    ci = d.get("ci")
    if ci and ci[0] is not None:
        return f"{d['value']:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"
    return f"{d['value']:.3g} (no interval: {d.get('ci_reason') or 'not in metrics.json'})"


def _disparity_lines(runs: list[dict]) -> list[str]:
    """Per attribute and run: the disparity summaries and NIST's worst group (issue 12), each with its
    interval or the reason it is not estimable."""
    attrs = list(dict.fromkeys(a for r in runs for a in (r["metrics"].get("disparity") or {})))
    if not attrs:
        return []
    out = ["", "## Disparity (95% intervals by the one rule in metrics.json; a reason where not estimable)", "",
           "| attribute | run | FNMR max/min | FMR max/min | FDR | GARBE | worst FNMR group | worst FMR group |",
           "|---|---|---|---|---|---|---|---|"]
    for a in attrs:
        for r in runs:
            d = (r["metrics"].get("disparity") or {}).get(a)
            if d is None:
                continue
            nist = (r["metrics"].get("nist") or {}).get(a) or {}
            out.append(f"| {a} | {r['label']} | {_disparity_cell(d.get('fnmr_max_min_ratio'))} | "
                       f"{_disparity_cell(d.get('fmr_max_min_ratio'))} | {_disparity_cell(d.get('fdr'))} | "
                       f"{_disparity_cell(d.get('garbe'))} | {(nist.get('fnmr') or {}).get('worst') or '-'} | "
                       f"{(nist.get('fmr') or {}).get('worst') or '-'} |")
    return out


# --------------------------------------------------------------------------- one-to-many search runs


def search_rows_for(run: dict) -> list[dict]:
    """The CSV rows (``SEARCH_CSV_COLUMNS``) of one search run: overall first, then every probe
    group; every number as metrics.json holds it."""
    m, th, pr = run["metrics"], _threshold(run["metrics"]), run["metrics"].get("protocol") or {}
    s = m.get("search") or {}
    base = {"run": run["label"], "backend": m.get("backend", {}).get("name"), "experiment": m.get("experiment"),
            "path": str(run["path"]), "dataset": m.get("dataset", {}).get("name"), "protocol": pr.get("name"),
            "threshold_policy": th.get("policy"), "threshold_value": th.get("value"),
            "threshold_label": th.get("label"), "target_fpir": th.get("target_fpir"),
            "achieved_fpir": th.get("achieved_fpir"), "gallery_size": s.get("gallery_size"),
            "candidates": s.get("candidates"), "n_mated_probes": pr.get("n_mated_probes"),
            "n_nonmated_probes": pr.get("n_nonmated_probes")}
    out = []
    for attr, g, f, fte in _items(m, s):
        row = dict(base)
        row.update({"attribute": attr, "group": g, "small_fpir": f.get("small_fpir"), "small_fnir": f.get("small_fnir"),
                    "fte_n_images": fte.get("n_images"), "fte_failed": fte.get("failed"), "fte_rate": fte.get("rate")})
        for r in SEARCH_RATES:
            e = f.get(r) or {}
            ci, boot = e.get("ci") or [None, None], e.get("ci_boot") or [None, None]
            row.update({f"{r}_n_subjects": e.get("n_subjects"), f"{r}_errors": e.get("errors"), f"{r}_n": e.get("n"),
                        r: e.get("rate"), f"{r}_ci_low": ci[0], f"{r}_ci_high": ci[1], f"{r}_ci_boot_low": boot[0],
                        f"{r}_ci_boot_high": boot[1], f"{r}_upper_bound": e.get("upper_bound")})
        out.append(row)
    return out


def _shown_interval(e: dict) -> tuple[list | None, str]:
    """The interval compare.md and the figure show for a rate entry: the probe-subject bootstrap
    interval when the run has one and it has a width, else the exact (Clopper-Pearson) one (the
    bootstrap of 0 errors, or of one probe subject, is a single point: it bounds nothing)."""
    boot = e.get("ci_boot")
    if boot and boot[0] is not None and boot[1] is not None and boot[1] > boot[0]:
        return boot, "bootstrap"
    ci = e.get("ci")
    return (ci if ci and ci[0] is not None else None), "exact"


def search_view(m: dict) -> dict:
    """A search run's metrics in the flat shape ``plots.compare_runs_figure`` reads (``groups[attr][g]``
    with ``<rate>``, ``<rate>_ci``, ``<rate>_upper_bound``, ``small_<rate>`` for fpir, fnir,
    fnir_rank1; FNIR at rank 1 shares FNIR's small flag: the same mated searches)."""
    s = m.get("search") or {}
    groups = {}
    for attr, gs in (s.get("groups") or {}).items():
        groups[attr] = {}
        for g, f in gs.items():
            flat = {}
            for r in SEARCH_RATES:
                e = f.get(r) or {}
                flat[r], flat[f"{r}_ci"] = e.get("rate"), _shown_interval(e)[0]
                flat[f"{r}_upper_bound"] = e.get("upper_bound")
                flat[f"small_{r}"] = bool(f.get("small_fnir" if r == "fnir_rank1" else f"small_{r}"))
            groups[attr][g] = flat
    return {"dataset": m.get("dataset") or {}, "threshold": m.get("threshold") or {}, "groups": groups}


def _search_cell(e: dict | None, small: bool = False) -> str:
    """"rate (errors/n) [low, high]" (+ " exact" for the Clopper-Pearson interval, + *small*)."""
    e = e or {}
    if e.get("rate") is None:
        return f"n/a ({e.get('n') or 0} searches)"
    txt = f"{_pct(e['rate'])} ({e.get('errors')}/{e.get('n')})"
    iv, how = _shown_interval(e)
    if iv is not None:
        txt += f" [{_pct(iv[0])}, {_pct(iv[1])}]" + (" exact" if how == "exact" else "")
    if small:
        txt += " *small*"
    return txt


def _ratio_cell(d: dict | None) -> str:
    d = d or {}
    if d.get("value") is None:
        return f"undefined ({d.get('reason') or 'not in metrics.json'})"
    ci = d.get("ci")
    return f"{d['value']:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci and ci[0] is not None else "") + \
        f" ({' / '.join(d.get('groups') or [])})"


def render_search_markdown(runs: list[dict], rows: list[dict], figure: str | None) -> str:
    lines = ["# evalkit compare: one-to-many search runs", "",
             "Each run's rates per probe group at its own threshold and its full gallery, read from its metrics.json "
             "(`search` block). FPIR: non-mated searches (the person is not enrolled) returning any candidate at the "
             "threshold; FNIR: mated searches whose mate is not returned at the threshold; FNIR at rank 1: mated "
             "searches whose mate is not the top candidate. Intervals: 95%, the probe-subject bootstrap when the run "
             "has one (and it is not a single point, as for 0 errors), else the exact (Clopper-Pearson) interval, marked "
             "*exact*; `n/a` where a group has no "
             "searches of that kind; *small*: fewer probe subjects or searches than the run's min_count, too few to "
             "read alone.", ""]
    lines += ["| run | backend | dataset | threshold | gallery (enrolled subjects) / candidates | probes (mated / "
              "non-mated) | FPIR | FNIR | failed images | folder |", "|---|---|---|---|---:|---:|---|---|---:|---|"]
    for r in runs:
        m, th, pr = r["metrics"], _threshold(r["metrics"]), r["metrics"].get("protocol") or {}
        s, fi = m.get("search") or {}, (m.get("failures") or {}).get("images") or {}
        v = th.get("value")
        thr = f"{th.get('policy')} " + (f"{v:.6g}" if isinstance(v, (int, float)) else "n/a")
        if th.get("target_fpir") is not None:
            thr += f" (target FPIR {th['target_fpir']:g}, achieved {_pct(th.get('achieved_fpir'))})"
        o = s.get("overall") or {}
        lines.append(f"| {r['label']} | {m.get('backend', {}).get('name', '?')} | {m.get('dataset', {}).get('name', '?')} "
                     f"| {thr} | {s.get('gallery_size', '?')} / {s.get('candidates', '?')} | "
                     f"{pr.get('n_mated_probes', '?')} / {pr.get('n_nonmated_probes', '?')} | "
                     f"{_search_cell(o.get('fpir'))} | {_search_cell(o.get('fnir'))} | "
                     f"{fi.get('failed', '?')} of {fi.get('n', '?')} | `{r['path']}` |")
    keys = {(r["metrics"].get("dataset", {}).get("name"), str((r["metrics"].get("protocol") or {}).get("gallery_sizes")),
             (r["metrics"].get("protocol") or {}).get("n_mated_probes"),
             (r["metrics"].get("protocol") or {}).get("n_nonmated_probes"),
             (r["metrics"].get("protocol") or {}).get("seed")) for r in runs}
    if len(keys) > 1:
        lines += ["", "**Note:** these runs do not share one dataset and search split (dataset, gallery sizes, mated / "
                  f"non-mated probes, seed: {sorted(map(str, keys))}); their rates are not measured on the same searches."]
    if figure:
        lines += ["", f"![FPIR, FNIR and FNIR at rank 1 per probe group, one colour per run]({figure}.png)"]
    lines += ["", "## Disparity (max/min over labelled probe groups not flagged small)", "",
              "| attribute | run | FPIR max/min [95% CI] (groups) | FNIR max/min [95% CI] (groups) |", "|---|---|---|---|"]
    attrs = []
    for r in runs:
        for a in (r["metrics"].get("search") or {}).get("disparity") or {}:
            if a not in attrs:
                attrs.append(a)
    for a in attrs:
        for r in runs:
            d = ((r["metrics"].get("search") or {}).get("disparity") or {}).get(a) or {}
            lines.append(f"| {a} | {r['label']} | {_ratio_cell(d.get('fpir_max_min_ratio'))} | "
                         f"{_ratio_cell(d.get('fnir_max_min_ratio'))} |")
    entries = {(str(r["path"]), a, g): (f, fte) for r in runs
               for a, g, f, fte in _items(r["metrics"], r["metrics"].get("search") or {})}
    for attr in dict.fromkeys(row["attribute"] for row in rows):   # in row order
        lines += ["", "## overall" if attr == "overall" else f"## By probe {attr}", "",
                  "| probe group | run | probe subjects (non-mated / mated) | FPIR (errors/non-mated) [95% CI] | "
                  "FNIR (errors/mated) [95% CI] | FNIR at rank 1 [95% CI] | failure to enrol |",
                  "|---|---|---:|---|---|---|---:|"]
        sub = [x for x in rows if x["attribute"] == attr]
        for g in sorted({x["group"] for x in sub}):
            for row in (x for x in sub if x["group"] == g):
                f, fte = entries[(row["path"], attr, g)]
                sf, sn = bool(f.get("small_fpir")), bool(f.get("small_fnir"))
                subj = f"{(f.get('fpir') or {}).get('n_subjects', '-')} / {(f.get('fnir') or {}).get('n_subjects', '-')}"
                ft = "-" if fte.get("rate") is None else f"{_pct(fte['rate'])} ({fte.get('failed')}/{fte.get('n_images')})"
                lines.append(f"| {g} | {row['run']} | {subj} | {_search_cell(f.get('fpir'), sf)} | "
                             f"{_search_cell(f.get('fnir'), sn)} | {_search_cell(f.get('fnir_rank1'), sn)} | {ft} |")
    return "\n".join(lines) + "\n"


def compare(paths, out: str | Path | None = None) -> dict:
    """Compare runs; returns {out, runs, rows, files}."""
    run_dirs = find_runs(paths)
    runs = load_runs(run_dirs)
    if out is None:
        sweeps = [Path(p) for p in paths if Path(p).is_dir() and not (Path(p) / "metrics.json").is_file()]
        out = sweeps[0] if len(paths) == 1 and sweeps else Path(f"compare-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from . import plots

    kind = runs[0]["kind"]
    if kind == "search":
        rows = [row for r in runs for row in search_rows_for(r)]
        files = [write_csv(rows, out / "compare.csv", SEARCH_CSV_COLUMNS)]
        fig = plots.compare_runs_figure({r["label"]: search_view(r["metrics"]) for r in runs}, rates=SEARCH_RATES,
                                        title=f"{len(runs)} search runs, probe group by probe group, each at its own "
                                              "threshold and full gallery")
        files += plots.save_figure(fig, out / "compare")
        (out / "compare.md").write_text(render_search_markdown(runs, rows, "compare"))
    else:
        rows = [row for r in runs for row in rows_for(r)]
        files = [write_csv(rows, out / "compare.csv")]
        files += plots.save_figure(plots.compare_runs_figure({r["label"]: r["metrics"] for r in runs}), out / "compare")
        (out / "compare.md").write_text(render_markdown(runs, rows, "compare"))
    files.append(out / "compare.md")
    return {"out": out, "runs": runs, "rows": rows, "files": files, "kind": kind}


def main(args: list[str]) -> int:
    """``evalkit compare RUN... [--out DIR]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="evalkit compare",
                                description="Per-group table (Markdown, CSV) and figure across runs. A folder of "
                                            "runs (a multirun sweep) is expanded into its runs.")
    p.add_argument("runs", nargs="+", help="run folders, metrics.json files, or sweep folders")
    p.add_argument("--out", default=None, help="output folder (default: the sweep folder, or ./compare-<time>)")
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
