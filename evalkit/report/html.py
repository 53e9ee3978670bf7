"""The HTML report of a run: one self-contained file (inline CSS and SVG, no script, no network).

``write_report(run_dir)`` reads only the run folder -- metrics.json (required, schema
``evalkit.metrics/3``), record.json and the figures the pipeline wrote (1:1: det_<attribute>.svg,
scores_<attribute>.svg, cross_fmr_<attribute>.svg; search: cmc_<attribute>.svg,
search_size_<attribute>.svg, false_candidates_<attribute>.svg, audit_<attribute>.svg; fte.svg),
which it inlines as they are -- and writes ``report.html`` next to them. A figure the folder
lacks (a run with ``det_plot=false``, an older folder) is drawn here instead: from metrics.json,
or from scores.csv, which is read only then.

One code path for 1:1 verification and one-to-many search runs: every rate is a RateEstimate at
``groups[attr][g][rate]`` (``evalkit.metrics.results``), so the headline, the group tables, the
readings, the disparity summaries, the intersections, failure to enrol, provenance and caveats are
the same functions for both, over the rates the run names (``rates``); the sections only one kind
has follow them (1:1: tests, per-group DET operating points, DET/score/cross-group figures, here;
search: CMC, gallery size, false candidates, audit, failed searches, in
``evalkit.report.search_html``, which imports nothing from this module).

Key numbers carry machine-readable attributes: ``data-key`` is the dotted path of the value in
metrics.json (e.g. ``groups.sex.female.fnmr.rate``, list elements by index) and ``data-value`` its
exact JSON text, so a test can compare the page with metrics.json without parsing formatted text.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from ..backends.scoring_base import backend_scores_text, direction_of, words
from ..labels import SPECIAL_LABELS as LABEL_GROUPS
from ..metrics import results
from ..metrics.results import RATE_LABELS, RATE_UNITS
from . import plots, search_html
from .fmt import Figures as _Figures
from .fmt import ci_text, esc, jvalue, num, pct, ratio, rate_text  # noqa: F401  (jvalue: re-exported)
from .fmt import get as _get
from .fmt import inline_svg, pipeline_svg as _pipeline_svg  # noqa: F401
from .fmt import rate_cells

REPORT_NAME = "report.html"
RATE_HEAD = {"fnmr": "FNMR (false non-matches/genuine)", "fmr": "FMR (false matches/impostor)",
             "fpir": "FPIR (false positives / non-mated searches)",
             "fnir": "FNIR at the threshold (misses / mated searches)",
             "fnir_rank1": "FNIR rank 1 (mate not first / mated searches)"}


# --------------------------------------------------------------------------- inputs


def _load(run_dir: Path) -> tuple[dict, dict]:
    mpath = run_dir / "metrics.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: write_report needs a finished run folder")
    m = json.loads(mpath.read_text())
    if m.get("schema") != results.SCHEMA:
        raise ValueError(f"{mpath} is schema {m.get('schema')!r}; this evalkit writes and reads {results.SCHEMA!r} "
                         "(rerun it to get a report)")
    rpath = run_dir / "record.json"
    rec = json.loads(rpath.read_text()) if rpath.is_file() else {}
    return m, rec


def read_scores(path: Path, failure_policy: str = "nonmatch", direction: str = "distance") -> dict | None:
    """scores.csv -> {score, mated, failed, groups: attr -> (labels a, labels b)} as arrays, with
    the failure policy applied as metrics do: failed comparisons are +inf (nonmatch) or dropped
    (exclude). None when the file is absent."""
    if not path.is_file():
        return None
    from ..scores import read_scores_csv
    from ..scoring import apply_failure_policy

    t = read_scores_csv(path)
    if len(t) == 0:
        return None
    failed, mated, groups = t.failed, t.mated, t.groups
    # distance-oriented like the rates: a similarity run's scores are negated (backends/scoring_base.py)
    score = np.where(failed, math.inf, words(direction)["sign"] * t.distance)
    score, keep = apply_failure_policy(score, failed, failure_policy)
    return {"score": score[keep], "mated": mated[keep], "failed": failed[keep],
            "groups": {a: (ga[keep], gb[keep]) for a, (ga, gb) in groups.items()}}


def cross_counts(scores: dict, attr: str, threshold: float) -> dict:
    """The cross-group impostor table (same shape as metrics.json ``cross_fmr[attr]``) counted from
    scores.csv at one threshold: cell [i][j] = impostor comparisons with one subject in labels[i]
    and the other in labels[j] (symmetric), and the false matches (score <= threshold) among them.
    Used only when metrics.json has no ``cross_fmr`` block (a hand-made file); counted by the metrics'
    own ``summary.cross_fmr`` (empty cells: None, as in metrics.json)."""
    from ..metrics.summary import cross_fmr

    ga, gb = scores["groups"][attr]
    cx = cross_fmr(scores["score"] - threshold, scores["mated"], ga, gb)
    cx["fmr"] = [[None if math.isnan(v) else v for v in row] for row in cx["fmr"]]
    return cx


# --------------------------------------------------------------------------- shared sections


def _threshold_for(m: dict, attr: str):
    """The threshold to draw for ``attr``: a number, a dict group -> number (per-group policy on
    this attribute), or None (per-group policy on another attribute: thresholds vary within a group)."""
    th = m.get("threshold", {})
    per = _get(th, "per_group", attr)
    if per:
        return {g: v.get("value") for g, v in per.items()}
    if th.get("per_group"):
        return None
    return th.get("value")


def _small_badge(e: dict, rates) -> tuple[str, str | None]:
    why = results.entry_small(e, rates)
    if not why:
        return "", None
    flags = [RATE_LABELS[r] for r in rates if (e.get(r) or {}).get("small")]
    return f' <span class="badge" title="{esc(why)}">small ({" and ".join(flags)})</span>', why


def _group_table(m: dict, base: str, groups: dict, caption: str, fte: dict | None = None,
                 mixed: dict | None = None, mixed_label: str = "", overall: dict | None = None,
                 thresholds: dict | None = None) -> str:
    """One row per group (and the overall row, the mixed-group row): subjects, then for every rate
    of the run the rate with its counts and intervals, the group's own threshold (per_group_fmr),
    failure to enrol."""
    rates = results.run_rates(m)
    search = results.run_kind(m) == results.SEARCH
    head = (f"<tr><th scope=col>{'Probe group' if search else 'Group'}</th><th scope=col>"
            f"{'Probe subjects' if search else 'Subjects'}</th>"
            + "".join(f"<th scope=col>{RATE_HEAD[r]}</th><th scope=col>95% CI</th>" for r in rates)
            + ("<th scope=col>Threshold</th>" if thresholds else "")
            + ("<th scope=col>Failed to enrol (failed/images)</th>" if fte is not None else "") + "</tr>")
    rows = []

    def row(label, key, e, cls="", fte_key=None, badge=""):
        subj = " / ".join(dict.fromkeys(num(f"{key}.{r}.subjects", _get(e, r, "subjects")) for r in rates if r in e))
        cells = f'<th scope=row>{esc(label)}{badge}</th><td class="count">{subj}</td>'
        cells += "".join(rate_cells(f"{key}.{r}", e.get(r)) for r in rates)
        if thresholds:
            t = thresholds.get(label)
            cells += f'<td class="count">{"" if t is None else esc(f"{t:.4g}")}</td>'
        if fte is not None:
            f = (fte.get(label) or {}).get("fte") if fte_key else None
            if f:
                k = fte_key + ".fte"
                cells += (f'<td class="rate">{num(k + ".rate", f.get("rate"), pct(f.get("rate")))} <span class="cnt">'
                          f'({num(k + ".errors", f.get("errors"))}/{num(k + ".n", f.get("n"))})</span></td>')
            else:
                cells += "<td></td>"
        rows.append(f'<tr class="{cls}">{cells}</tr>')

    if overall is not None:
        row("all probes" if search else "all comparisons", "overall", overall, "overall")
    attr = base.split(".", 1)[-1]
    for g, e in groups.items():
        badge, small = _small_badge(e, rates)
        row(g, f"{base}.{g}", e, "small" if small else "",
            fte_key=f"failures.by_group.{attr}.{g}" if fte is not None else None, badge=badge)
    foot = ("Rows marked <i>small</i> have too few subjects or trials of a kind for a stable rate; they stay in the "
            "table and leave the disparity summaries (see Caveats).")
    if mixed is not None:
        row(mixed_label, base.replace("groups.", "mixed.", 1), mixed, "mixed")
        from . import stats_sections as ss
        foot = f"{esc(mixed_label)}: {esc(ss.mixed_note(m, attr))}, reported on their own. " + foot
    return (f'<div class="tablewrap"><table class="groups"><caption>{caption}</caption><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody><tfoot><tr><td colspan={3 + 2 * len(rates)}>{foot}</td></tr></tfoot>'
            "</table></div>")


SUMMARY_NAMES = {"fnmr_max_min_ratio": "FNMR max/min ratio", "fmr_max_min_ratio": "FMR max/min ratio",
                 "fdr": "FDR", "ir": "IR", "garbe": "GARBE", "ser": "SER", "accuracy_std": "accuracy spread",
                 "fnmr_ratio_to_reference": "FNMR ratio", "fmr_ratio_to_reference": "FMR ratio",
                 "fpir_max_min_ratio": "FPIR max/min ratio", "fnir_max_min_ratio": "FNIR max/min ratio",
                 "fpir_ratio_to_reference": "FPIR ratio", "fnir_ratio_to_reference": "FNIR ratio"}


def _rate_of_summary(name: str) -> str:
    """"fnmr_max_min_ratio" -> "fnmr"; "fpir_ratio_to_reference" -> "fpir"."""
    for suffix in ("_max_min_ratio", "_ratio_to_reference"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _reading(name: str, d: dict, groups: dict, conf: float, ref: str | None = None, group: str | None = None) -> str:
    v, ci, reason = d.get("value"), d.get("ci"), d.get("reason")
    if v is None:
        what = SUMMARY_NAMES.get(name, name) + (f" of {group} to {ref}" if group else "")
        return f"{esc(what)} not defined: {esc(reason or 'no value')}"
    unit = 100.0 if name == "accuracy_std" else 1.0
    cl = (f" ({round(100 * conf):g}% CI {unit * ci[0]:.2f}–{unit * ci[1]:.2f})"
          if ci and ci[0] is not None and ci[1] is not None else "")
    if not cl and d.get("ci_reason"):
        cl = f" (no interval: {esc(d['ci_reason'])})"
    if name.endswith("_ratio_to_reference"):
        r = RATE_LABELS[_rate_of_summary(name)]
        return f"{r} for {esc(group)} is {v:.2f}x that for {esc(ref)}{cl}"
    if name.endswith("_max_min_ratio"):
        rate = _rate_of_summary(name)
        used = [g for g in (d.get("groups") or groups) if _get(groups, g, rate, "rate") is not None]
        if used:
            hi = max(used, key=lambda g: groups[g][rate]["rate"])
            lo = min(used, key=lambda g: groups[g][rate]["rate"])
            return f"the highest group {RATE_LABELS[rate]} ({esc(hi)}) is {v:.2f}x the lowest ({esc(lo)}){cl}"
        return f"the highest group {RATE_LABELS[rate]} is {v:.2f}x the lowest{cl}"
    if name == "fdr":
        return (f"FDR {v:.3f}{cl}: 1 means no gap between groups in FMR or FNMR at the threshold; "
                f"{1 - v:.3f} is the weighted largest gap")
    if name == "ir":
        return f"IR {v:.2f}{cl}: 1 means equal rates across groups; it grows with the max/min ratios of FMR and FNMR"
    if name == "garbe":
        return f"GARBE {v:.3f}{cl}: 0 means equal error rates across groups, 1 maximal inequality (Gini)"
    if name == "ser":
        return f"the highest group error rate is {v:.2f}x the lowest{cl}"
    if name == "accuracy_std":
        return f"group accuracies at the threshold spread with a standard deviation of {100 * v:.2f} percentage points{cl}"
    return f"{esc(name)} = {v:.4g}{cl}"


def _fmt_val(name: str, v) -> str:
    if v is None:
        return "n/a"
    if name == "accuracy_std":
        return f"{100 * v:.2f}"
    return f"{v:.3g}" if name in ("fdr", "garbe") else f"{v:.2f}"


def _disparity_section(m: dict, conf: float) -> str:
    disp = m.get("disparity")
    out = ['<section id="disparity"><h2>Disparity summaries</h2>']
    if disp is None:
        out.append('<p class="absent">Not computed: metrics.json has no "disparity" block. Compare the group rates '
                   "and their intervals in the table above.</p></section>")
        return "".join(out)
    mc = m.get("min_count")
    search = results.run_kind(m) == results.SEARCH
    if mc:
        out.append(f"<p>Over the labelled groups not flagged small (at least {mc['subjects']} "
                   f"{'probe subjects' if search else 'subjects'} and {mc['comparisons']} "
                   f"{'searches' if search else 'comparisons'} of each kind; labels such as unlabelled never enter)"
                   + (", at the operating threshold and the full gallery. " if search else ". ")
                   + ("Intervals: subject-clustered bootstrap percentile intervals (subjects resampled, not "
                      + ("searches" if search else "pairs") + ")"
                      + ("; the max/min interval is that of the ratio of the two groups named, highest over lowest, "
                         "resampled: read it together with the group intervals" if search else "") + "."
                      if m.get("bootstrap") else "No intervals on these summaries: "
                      + esc((m.get("not_computed") or {}).get("bootstrap", "the bootstrap was switched off "
                                                                          "(bootstrap.replicates=0)")) + ".")
                   + "</p>")
    for attr in m.get("groups", {}):
        block = disp.get(attr)
        groups = m["groups"][attr]
        if not block:
            out.append(f'<h3>By {esc(attr)}</h3><p class="absent">Not computed for {esc(attr)} '
                       "(no disparity summary in metrics.json; too few groups that are not small?).</p>")
            continue
        rows = []
        for name, d in block.items():
            key = f"disparity.{attr}.{name}"
            src = f'<br><span class="src">{esc(d.get("definition", ""))} {esc(d.get("source", ""))}</span>'
            if "by_group" in d:
                ref = d.get("reference")
                for g, r in d["by_group"].items():
                    if g == ref:
                        continue
                    v = r.get("value")
                    rows.append(f'<tr><th scope=row>{esc(name)}<br><span class="note">{esc(g)} / {esc(ref)}</span></th>'
                                + f"<td>{esc(_unit(name))}</td>"
                                + num(f"{key}.by_group.{g}.value", v, ratio(v), "td", "rate")
                                + f'<td class="ci">{_ci_cell(f"{key}.by_group.{g}.ci", name, r)}</td>'
                                + f'<td class="reading">{_reading(name, r, groups, conf, ref, g)}{src}</td></tr>')
                continue
            v = d.get("value")
            if "value" not in d:
                continue
            rows.append(f"<tr><th scope=row>{esc(name)}</th><td>{esc(_unit(name))}</td>"
                        + num(f"{key}.value", v, _fmt_val(name, v), "td", "rate")
                        + f'<td class="ci">{_ci_cell(f"{key}.ci", name, d)}</td>'
                        + f'<td class="reading">{_reading(name, d, groups, conf)}{src}</td></tr>')
        out.append(f'<div class="tablewrap"><table class="disparity"><caption>Disparity summaries by {esc(attr)}</caption>'
                   "<thead><tr><th scope=col>Summary</th><th scope=col>Unit</th><th scope=col>Value</th><th scope=col>95% CI</th>"
                   f"<th scope=col>Reading</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    out.append("</section>")
    return "".join(out)


def _unit(name: str) -> str:
    """The unit of a disparity summary's value and interval (stated once, in its own column)."""
    if name == "accuracy_std":
        return "percentage points"
    if name == "fdr":
        return "index 0–1 (1 = fair)"
    if name == "garbe":
        return "index 0–1 (0 = fair)"
    return "ratio (1 = equal)"


def _ci_cell(key: str, name: str, d: dict) -> str:
    """The interval of a disparity entry with both ends tagged, in the value's unit, or why none."""
    from . import stats_sections as ss
    kind = "pp" if name == "accuracy_std" else ("g" if name in ("fdr", "garbe") else "x")
    if d.get("value") is None:
        return f'<span class="why">not estimable: {esc(d.get("reason") or "the value is undefined")}</span>'
    return ss.tagged_ci(key, d.get("ci"), d.get("ci_reason"), kind)


def _ci_plain(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"{ci[0]:.3g} – {ci[1]:.3g}"


def _intersections_section(m: dict) -> str:
    inter = m.get("intersections")
    out = ['<section id="intersections"><h2>Intersections</h2>']
    if inter is None:
        out.append('<p class="absent">Not computed: metrics.json has no "intersections" block.</p>')
    elif not inter and not m.get("intersections_skipped"):
        out.append('<p class="absent">None configured for this run.</p>')
    for name, why in (m.get("intersections_skipped") or {}).items():
        out.append(f'<p class="absent">Not computed: {esc(name)}: {esc(why)}.</p>')
    for name, groups in (inter or {}).items():
        out.append(_group_table(m, f"intersections.{name}", groups, f"By {esc(name)}: every rate at the operating "
                                "threshold"))
    out.append("</section>")
    return "".join(out)


def _fte_figure(m: dict, run_dir: Path, figs: _Figures) -> str:
    by_group = _get(m, "failures", "by_group")
    if not by_group:
        return '<p class="absent">Failure to enrol per group: not computed.</p>'
    svg = _pipeline_svg(run_dir, "fte")
    if svg is None:
        svg = plots.figure_svg(plots.failure_to_enrol_plot(by_group, f"{m.get('experiment', '')}: failure to enrol by group"))
    return figs.block(svg, "Failure-to-enrol rate per group (images without an embedding, "
                      "e.g. no face detected) with exact 95% intervals; failed / images at the right.",
                      "Failure to enrol by group")


def _fte_table(m: dict) -> str:
    f = m.get("failures", {})
    imgs = f.get("images", {})
    fte = imgs.get("fte") or {}
    rows = []
    for attr, groups in f.get("by_group", {}).items():
        for g, e in groups.items():
            k = f"failures.by_group.{attr}.{g}"
            r = e.get("fte") or {}
            rows.append(f"<tr><td>{esc(attr)}</td><th scope=row>{esc(g)}</th>"
                        + num(f"{k}.fte.rate", r.get("rate"), pct(r.get("rate")), "td", "rate")
                        + f'<td class="count">{num(k + ".fte.errors", r.get("errors"))} / {num(k + ".fte.n", r.get("n"))}</td>'
                        + f'<td class="ci">{esc(ci_text(r.get("ci")))}</td><td class="count">{esc(e.get("fallbacks", 0))}</td></tr>')
    reasons = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in (imgs.get("by_reason") or {}).items()) or "none"
    fb = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in (imgs.get("fallbacks") or {}).items())
    return (f'<p>{num("failures.images.fte.errors", fte.get("errors"))} of {num("failures.images.fte.n", fte.get("n"))} '
            f'images failed to enrol ({num("failures.images.fte.rate", fte.get("rate"), pct(fte.get("rate")))}; by '
            f"reason: {reasons})"
            + (f"; embedded through a fallback (not failures, but not the detector's work): {fb}" if fb else "")
            + ".</p>"
            '<div class="tablewrap"><table><caption>Failure to enrol per group (exact 95% CI)</caption><thead><tr>'
            "<th scope=col>Attribute</th><th scope=col>Group</th><th scope=col>Rate</th><th scope=col>failed / images</th>"
            f"<th scope=col>95% CI</th><th scope=col>Fallbacks</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _kv_table(caption: str, items, code: bool = False) -> str:
    rows = "".join(f"<tr><th scope=row>{esc(k)}</th><td>{'<code>' if code else ''}{v}{'</code>' if code else ''}</td></tr>"
                   for k, v in items)
    return f'<div class="tablewrap"><table class="kv"><caption>{caption}</caption><tbody>{rows}</tbody></table></div>'


def _backend_sub(be: dict) -> str:
    """The header's backend note: "euclidean distance", or a scoring backend's direction."""
    return backend_scores_text(be) if be.get("score_direction") else f"{be.get('distance')} distance"


def _threshold_text(m: dict) -> str:
    th = m.get("threshold", {})
    rate = RATE_LABELS.get(th.get("rate") or "fmr", "FMR")
    parts = []
    if th.get("value") is not None:
        parts.append(words(direction_of(m))["kind"] + " " + num("threshold.value", th["value"], f"{th['value']:.6g}"))
    if th.get("label"):
        parts.append(esc(th["label"]))
    if th.get("achieved") is not None:
        parts.append(f'achieved {rate} {num("threshold.achieved", th["achieved"], pct(th["achieved"]))}')
    if th.get("resolvable") is False:
        parts.append(f"<b>the target {rate} is below 1/(number of trials it was set on): it cannot be resolved on "
                     "this data</b>")
    return "; ".join(parts)


def _provenance_section(m: dict, rec: dict) -> str:
    ds, pr, be = m.get("dataset", {}), m.get("protocol", {}), m.get("backend", {})
    th = m.get("threshold", {})
    out = ['<section id="provenance"><h2>Provenance</h2>']
    out.append(_kv_table("Run", [
        ("Dataset", f"{esc(ds.get('name'))}: {esc(ds.get('n_samples'))} images of {esc(ds.get('n_subjects'))} subjects used by the protocol"),
        ("Protocol", f"{esc(pr.get('name'))}: {esc(pr.get('n_comparisons'))} comparisons ({esc(pr.get('n_genuine'))} genuine, "
                     f"{esc(pr.get('n_impostor'))} impostor)" + (f", {esc(pr.get('n_folds'))} folds" if pr.get("n_folds") else "")
         if results.run_kind(m) != results.SEARCH else
         f"{esc(pr.get('name'))} (one-to-many): {esc(pr.get('n_enrolled_subjects'))} enrolled subjects "
         f"({esc(pr.get('n_gallery_images'))} gallery images), {esc(pr.get('n_mated_probes'))} mated and "
         f"{esc(pr.get('n_nonmated_probes'))} non-mated probes, {esc(pr.get('n_comparisons'))} probe-image scores, "
         f"split seed {esc(pr.get('seed'))}"),
        ("Backend", f"{esc(be.get('name'))} (family {esc(be.get('family'))}), {esc(backend_scores_text(be))}"),
        ("Threshold policy", f"{esc(th.get('policy'))}: {_threshold_text(m)}"),
        ("Failure policy", esc(m.get("failure_policy"))),
        ("metrics.json schema", esc(m.get("schema"))),
    ]))
    cal = th.get("calibration")
    if cal:
        out.append(_kv_table("Threshold calibration split", [(k, esc(v)) for k, v in cal.items()]))
    per = th.get("per_group")
    if per:
        for attr, groups in per.items():
            out.append(_kv_table(f"Per-group thresholds by {esc(attr)}", [
                (g, f"{esc('n/a' if v.get('value') is None else format(v['value'], '.6g'))} "
                    f"(achieved FMR {pct(v.get('achieved'))}, {esc(v.get('n'))} impostors"
                    f"{'' if v.get('resolvable', True) else ', not resolvable'}){' ' + esc(v['note']) if v.get('note') else ''}")
                for g, v in groups.items()]))
    # labels
    for attr in ds.get("attributes") or list(ds.get("label_sources", {})):
        cov = _get(ds, "label_coverage", attr) or {}
        tot_s = sum(c.get("samples", 0) for c in cov.values()) or 1
        tot_p = sum(c.get("subjects", 0) for c in cov.values()) or 1
        rows = "".join(
            f"<tr><th scope=row>{esc(g)}</th><td class=count>{num(f'dataset.label_coverage.{attr}.{g}.subjects', c.get('subjects'))}</td>"
            f"<td class=count>{pct(c.get('subjects', 0) / tot_p)}</td>"
            f"<td class=count>{num(f'dataset.label_coverage.{attr}.{g}.samples', c.get('samples'))}</td>"
            f"<td class=count>{pct(c.get('samples', 0) / tot_s)}</td></tr>" for g, c in cov.items())
        prov, level = _get(ds, "label_provenance", attr), _get(ds, "label_level", attr)
        out.append(f"<h3>Labels: {esc(attr)}</h3><p class=src>{esc(_get(ds, 'label_sources', attr) or 'source not recorded')}</p>"
                   + (f"<p class=prov>How the labels were obtained: {esc(prov)}" + (f"; labels are per {esc(level)}" if level else "")
                      + ".</p>" if prov or level else "")
                   +
                   f'<div class="tablewrap"><table><caption>Label coverage of the images the protocol uses ({esc(attr)})</caption>'
                   "<thead><tr><th scope=col>Label</th><th scope=col>Subjects</th><th scope=col>share</th>"
                   f"<th scope=col>Images</th><th scope=col>share</th></tr></thead><tbody>{rows}</tbody></table></div>")
    fp = be.get("fingerprint") or rec.get("backend_fingerprint") or {}
    out.append(_kv_table("Backend fingerprint (keys the embedding cache)",
                         [(k, f"<code>{esc(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)}</code>")
                          for k, v in sorted(fp.items())]))
    if rec:
        items = [("evalkit record", esc(rec.get("evalkit_record"))), ("Command", f"<code>{esc(rec.get('command'))}</code>"),
                 ("Python", esc(rec.get("python"))), ("Platform", esc(rec.get("platform"))), ("Seed", esc(rec.get("seed"))),
                 ("Images digest (SHA-256)", f"<code>{esc(rec.get('images_sha256'))}</code>")]
        items += [(f"package {k}", esc(v if v is not None else "not installed")) for k, v in (rec.get("packages") or {}).items()]
        out.append(_kv_table("Versions and inputs (record.json)", items))
        files = rec.get("dataset_files_sha256") or {}
        if files:
            out.append(_kv_table("Dataset files (SHA-256)", [(Path(k).name, f"<code>{esc(v)}</code>") for k, v in files.items()]))
        t = rec.get("timings_seconds") or {}
        if t:
            out.append("<p class=note>Timings (s): " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in t.items()) + ".</p>")
    else:
        out.append('<p class="absent">record.json not found in the run folder: versions and input hashes not shown.</p>')
    out.append("</section>")
    return "".join(out)


def _caveats_section(m: dict) -> str:
    items = []
    mc = m.get("min_count")
    rates = results.run_rates(m)
    search = results.run_kind(m) == results.SEARCH
    for attr, groups in m.get("groups", {}).items():
        small = [(g, results.entry_small(e, rates)) for g, e in groups.items()]
        small = [(g, r) for g, r in small if r]
        if small:
            rule = (f"fewer than {mc['subjects']} {'probe subjects' if search else 'subjects'} or {mc['comparisons']} "
                    f"{'searches' if search else 'comparisons'} of a kind (evalkit's one small-group rule)")
            items.append(f"<li><b>Sparse groups ({esc(attr)}):</b> {rule}: "
                         + "; ".join(f"<i>{esc(g)}</i> ({esc(r)})" for g, r in small)
                         + ". Their rates are shown, but their intervals are wide"
                         + ("; they do not enter the disparity summaries" if m.get("disparity") is not None else "")
                         + ".</li>")
        none = [(g, r) for g, e in groups.items() for r in rates if _get(e, r, "rate") is None and r in e]
        if none:
            items.append(f"<li><b>Not estimable ({esc(attr)}):</b> " + ", ".join(
                f"<i>{esc(g)}</i> has no {esc(RATE_UNITS[r])} for {RATE_LABELS[r]} (n/a, not zero)" for g, r in none)
                + ".</li>")
    for attr, cov in (_get(m, "dataset", "label_coverage") or {}).items():
        tot_s = sum(c.get("samples", 0) for c in cov.values())
        tot_p = sum(c.get("subjects", 0) for c in cov.values())
        parts = [f"{esc(g)} {cov[g].get('subjects', 0)} of {tot_p} subjects ({pct(cov[g].get('subjects', 0) / tot_p if tot_p else None)}), "
                 f"{cov[g].get('samples', 0)} of {tot_s} images ({pct(cov[g].get('samples', 0) / tot_s if tot_s else None)})"
                 for g in LABEL_GROUPS if g in cov]
        src = _get(m, "dataset", "label_sources", attr)
        src = f" Source: {esc(src)}." if src and search else ""
        if parts:
            items.append(f"<li><b>Label coverage ({esc(attr)}):</b> " + "; ".join(parts) + ". These are explicit groups, "
                         "never dropped; trials involving them count only toward those groups and the overall rates."
                         f"{src}</li>")
        else:
            items.append(f"<li><b>Label coverage ({esc(attr)}):</b> every image the protocol uses carries a label.{src}</li>")
    f = m.get("failures", {})
    comp = f.get("comparisons", {})
    if search:
        items.append("<li><b>Failures to enrol:</b> see the failed searches: " + esc(_get(m, "search", "failed_searches",
                                                                                       "note", default="")) + ".</li>")
    elif m.get("failure_policy") == "exclude":
        items.append(f"<li><b>Failures to enrol:</b> policy <i>exclude</i>: {esc(f.get('excluded_comparisons'))} comparisons "
                     "touching an image without an embedding are left out of every rate (counted here). Failures are "
                     "often skewed by group: compare the failure-to-enrol table.</li>")
    else:
        items.append(f"<li><b>Failures to enrol:</b> policy <i>{esc(m.get('failure_policy'))}</i>: "
                     f"{esc(comp.get('genuine', 0))} genuine and {esc(comp.get('impostor', 0))} impostor comparisons touch an "
                     "image without an embedding and count as non-matches (ISO/IEC 19795-1): they raise FNMR, never FMR.</li>")
    boot = m.get("bootstrap")
    trials = "searches" if search else "comparisons"
    if boot:
        items.append(f"<li><b>Intervals:</b> exact (Clopper-Pearson) intervals treat {trials} as independent; they "
                     "share subjects, so these are too narrow when subjects recur. The subject-clustered bootstrap interval "
                     f"({esc(boot.get('replicates'))} replicates, seed {esc(boot.get('seed'))}, resampling "
                     f"{esc(boot.get('unit', 'subject'))}s) is shown next to it: read that one."
                     + (" The bootstrap intervals resample probe subjects (all of a person's searches together), not "
                        "gallery subjects, so an enrolled subject who attracts many probes (a correlation across "
                        "searches) is not captured." if search else "") + "</li>")
    else:
        items.append(f"<li><b>Intervals:</b> exact (Clopper-Pearson) intervals treat {trials} as independent; they "
                     "share subjects, so they are too narrow when subjects recur. The subject-clustered bootstrap "
                     "interval was not computed for this run.</li>")
    if search:
        items.append("<li><b>Gallery size and candidate list:</b> FPIR grows with the gallery and FNIR depends on the "
                     "candidate-list length; compare runs only at equal sizes and lists.</li>")
    th = m.get("threshold", {})
    if th.get("resolvable") is False:
        items.append(f"<li><b>Threshold:</b> the target {RATE_LABELS.get(th.get('rate'), 'rate')} is below 1/(number of "
                     f"trials it was set on); it cannot be resolved on this data and {words(direction_of(m))['beyond_set']}."
                     "</li>")
    if th.get("policy") == "per_group_fmr":
        items.append("<li><b>Per-group thresholds:</b> each group has its own threshold (BFW style). FMR is equalised by "
                     "construction; the disparity moves into FNMR. This is not the one-threshold deployment view.</li>")
    if str(_get(m, "dataset", "name", default="")).lower().startswith("lfw"):
        items.append("<li><b>LFW:</b> its authors warn that LFW must not be used to conclude that an algorithm suits "
                     "commercial use; the demographic labels are third-party annotations (binary sex; race for a subset of "
                     "identities) and carry their own errors."
                     + (" Most LFW subjects have a single image, so the gallery holds few thousand people and non-mated "
                        "probes are mostly people with one photo; a real mugshot database is far larger, and FPIR grows "
                        "with it." if search else "") + "</li>")
    return f'<section id="caveats"><h2>Caveats</h2><ul>{"".join(items)}</ul></section>'


CSS = """
:root{--ink:#1b1f24;--muted:#5b6570;--rule:#d5dae0;--band:#f4f6f8;--accent:#0072B2;--warn:#D55E00}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans","Segoe UI",Helvetica,Arial,sans-serif;color:var(--ink);margin:0;background:#fff;
line-height:1.45;font-size:14px}
main{max-width:1260px;margin:0 auto;padding:24px 32px 64px}
header{border-bottom:3px solid var(--accent);padding-bottom:10px;margin-bottom:18px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--rule)}
h3{font-size:15px;margin:22px 0 8px}
.sub{color:var(--muted);margin:0}
nav{font-size:13px;margin:10px 0 0}nav a{color:var(--accent);margin-right:14px;text-decoration:none}
.keyfigs{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:10px;margin:16px 0}
.kf{background:var(--band);border-left:4px solid var(--accent);padding:8px 12px}
.kf .v{font-size:20px;font-weight:bold;display:block}.kf .l{color:var(--muted);font-size:12px}
.tablewrap{overflow-x:auto;margin:10px 0 16px}
table{border-collapse:collapse;width:100%;font-size:13px}
caption{caption-side:top;text-align:left;font-weight:bold;padding:4px 0 6px;color:var(--ink)}
th,td{border-bottom:1px solid var(--rule);padding:4px 8px;vertical-align:top;text-align:left}
thead th{background:var(--band);font-weight:600;border-bottom:2px solid #aab3bd}
td.rate,td.count{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.rate{font-weight:600}td.rate .cnt{font-weight:normal;color:var(--muted);font-size:12px}
.badge{display:inline-block;font-size:10.5px;font-weight:normal;color:#fff;background:var(--warn);border-radius:3px;
padding:0 5px;margin-left:4px;vertical-align:1px}
tfoot td{font-size:12px;color:var(--muted);border-bottom:none}td.ci{font-variant-numeric:tabular-nums;color:#333;min-width:120px}td.ci .iv{white-space:nowrap}
tr.small{color:var(--muted)}tr.small td.rate{font-weight:normal}
tr.overall{background:#eef4fa}tr.mixed{font-style:italic}
td.note,.note{color:var(--muted);font-size:12px}.boot{color:#004d80;font-size:12px}
.src{color:var(--muted);font-size:12px}
td.reading{min-width:320px}
table.kv th{width:240px;font-weight:600}table.kv td{word-break:break-all}
code{font-family:"DejaVu Sans Mono",monospace;font-size:12px}
.absent{background:#fff7ec;border-left:4px solid var(--warn);padding:6px 10px}
figure{margin:14px 0 24px;padding:8px;border:1px solid var(--rule);background:#fff}
figure svg.fig{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:12.5px;color:#333;margin-top:6px}
ul li{margin-bottom:6px}
.readings{background:#eef4fa;border-left:4px solid var(--accent);padding:8px 12px;margin:10px 0 16px}
.readings ul{margin:4px 0 0;padding-left:20px}
footer{margin-top:40px;color:var(--muted);font-size:12px;border-top:1px solid var(--rule);padding-top:8px}
@media print{main{max-width:none;padding:0}figure{break-inside:avoid}}
"""


def _key_figures(m: dict) -> str:
    o, th = m.get("overall", {}), m.get("threshold", {})
    search = results.run_kind(m) == results.SEARCH
    cards = []

    def card(value_html, label):
        cards.append(f'<div class="kf"><span class="v">{value_html}</span><span class="l">{label}</span></div>')

    for r in results.run_rates(m):
        e = o.get(r) or {}
        card(num(f"overall.{r}.rate", e.get("rate"), rate_text(e.get("rate"))),
             f"{RATE_LABELS[r]} overall ({esc(e.get('errors'))} of {esc(e.get('n'))} {RATE_UNITS[r]})")
    if th.get("value") is not None:
        card(num("threshold.value", th["value"], f"{th['value']:.4g}"),
             f"threshold ({esc(th.get('policy'))}"
             + (f", target {RATE_LABELS.get(th.get('rate'), '')} {th['target']:g}" if th.get("target") else "") + ")")
    else:
        card(esc(th.get("policy")), "threshold policy (one threshold per group)")
    if search:
        s, pr = m.get("search") or {}, m.get("protocol") or {}
        card(num("search.gallery_size", s.get("gallery_size")),
             f"enrolled subjects in the gallery (candidate list {esc(s.get('candidates'))}; "
             f"{esc(pr.get('n_mated_probes'))} mated, {esc(pr.get('n_nonmated_probes'))} non-mated probes)")
    if m.get("eer") is not None:
        card(num("eer", m["eer"], pct(m["eer"])), "equal error rate (all comparisons)")
    acc = m.get("lfw_accuracy")
    if acc:
        card(num("lfw_accuracy.mean", acc["mean"], pct(acc["mean"])),
             f"LFW {esc(acc.get('n_folds'))}-fold accuracy (± {pct(acc.get('sem'))} s.e.)")
    fi = _get(m, "failures", "images", "fte") or {}
    card(num("failures.images.fte.rate", fi.get("rate"), pct(fi.get("rate"))),
         f"failed to enrol ({esc(fi.get('errors'))} of {esc(fi.get('n'))} images)")
    return f'<div class="keyfigs">{"".join(cards)}</div>'


def _key_readings(m: dict, conf: float) -> str:
    """The plain-language disparity readings that matter most, at the top."""
    disp = m.get("disparity")
    if not disp:
        return ""
    items = []
    rates = results.run_rates(m)
    for attr, block in disp.items():
        groups = m["groups"].get(attr, {})
        for r in rates:
            d = block.get(f"{r}_ratio_to_reference")
            for g, x in ((d or {}).get("by_group") or {}).items():
                if g != d.get("reference"):
                    items.append(_reading(f"{r}_ratio_to_reference", x, groups, conf, d.get("reference"), g))
        for r in rates:
            if f"{r}_max_min_ratio" in block:
                items.append(f"{esc(attr)}: " + _reading(f"{r}_max_min_ratio", block[f"{r}_max_min_ratio"], groups, conf))
    if not items:
        return ""
    return ('<div class="readings"><b>Readings</b> (disparity at the operating threshold, groups not flagged small)'
            "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul></div>")


def _in_dataset_order(m: dict) -> dict:
    """metrics.json is written with sorted keys; show attributes in the dataset's own order."""
    order = list((m.get("dataset") or {}).get("attributes") or [])
    if not order:
        return m
    m = dict(m)
    for block in ("groups", "mixed", "cross_fmr", "disparity", "tests", "intersections"):
        if isinstance(m.get(block), dict):
            d = m[block]
            m[block] = {k: d[k] for k in [*[a for a in order if a in d], *[a for a in d if a not in order]]}
    return m


# --------------------------------------------------------------------------- 1:1-only sections


def _tests_section(m: dict) -> str:
    tests = m.get("tests")
    out = ['<section id="tests"><h2>Does one group\'s rate differ from another\'s?</h2>']
    if tests is None:
        out.append('<p class="absent">Not computed: metrics.json has no "tests" block.</p></section>')
        return "".join(out)
    rows = []
    for attr, by_rate in tests.items():
        for rate, items in by_rate.items():
            for i, t in enumerate(items):
                k = f"tests.{attr}.{rate}.{i}"
                p = t.get("p_value")
                rows.append(f"<tr><td>{esc(attr)}</td><td>{RATE_LABELS.get(rate, esc(rate))}</td><td>{esc(t.get('a'))}</td>"
                            f"<td>{esc(t.get('b'))}</td>" + num(f"{k}.rate_a", t.get("rate_a"), pct(t.get("rate_a")), "td", "rate")
                            + num(f"{k}.rate_b", t.get("rate_b"), pct(t.get("rate_b")), "td", "rate")
                            + num(f"{k}.difference", t.get("difference"),
                                  "n/a" if t.get("difference") is None else f"{100 * t['difference']:+.2f} pp", "td", "rate")
                            + num(f"{k}.p_value", p, "n/a" if p is None else f"{p:.3g}", "td", "rate")
                            + f"<td>{esc(t.get('method'))}{'<br>' + esc(t['reason']) if t.get('reason') else ''}</td></tr>")
    if not rows:
        out.append('<p class="absent">No tests in metrics.json (fewer than two groups that are not small).</p></section>')
        return "".join(out)
    out.append('<div class="tablewrap"><table><caption>Two-sided tests of equal rates between groups at the operating '
               "threshold; p-values respect subject clustering (see method)</caption><thead><tr><th scope=col>Attribute</th>"
               "<th scope=col>Rate</th><th scope=col>A</th><th scope=col>B</th><th scope=col>rate A</th><th scope=col>rate B</th>"
               "<th scope=col>A − B</th><th scope=col>p-value</th><th scope=col>Method</th></tr></thead>"
               f"<tbody>{''.join(rows)}</tbody></table></div></section>")
    return "".join(out)


def _operating_points_section(m: dict) -> str:
    out = ['<section id="operating"><h2>Each group on its own DET curve</h2>']
    any_ = False
    for attr, groups in m.get("groups", {}).items():
        first = next(iter(groups.values()), {})
        if "fnmr_at_fmr" not in first:
            continue
        any_ = True
        targets = list(first["fnmr_at_fmr"])
        head = ("<tr><th scope=col>Group</th><th scope=col>EER</th>"
                + "".join(f"<th scope=col>FNMR @ FMR {float(t):g}</th>" for t in targets)
                + "<th scope=col>Accuracy at the operating threshold</th></tr>")
        rows = []
        for g, e in groups.items():
            k = f"groups.{attr}.{g}"
            cells = num(f"{k}.eer", e.get("eer"), pct(e.get("eer")), "td", "rate")
            for t in targets:
                r = e["fnmr_at_fmr"].get(t) or {}
                if r.get("fnmr") is None:
                    why = r.get("reason") or f"{_get(e, 'fmr', 'n', default=0)} impostors < 1/{float(t):g}"
                    cells += f'<td class="na">not resolvable<br><span class="note">{esc(why)}</span></td>'
                else:
                    cells += num(f"{k}.fnmr_at_fmr.{t}.fnmr", r["fnmr"], pct(r["fnmr"]), "td", "rate")
            cells += num(f"{k}.accuracy", e.get("accuracy"), pct(e.get("accuracy")), "td", "rate")
            rows.append(f"<tr><th scope=row>{esc(g)}</th>{cells}</tr>")
        out.append(f'<div class="tablewrap"><table><caption>By {esc(attr)}: EER and FNMR at fixed FMRs, each on the '
                   "group's own comparisons (a different threshold per cell; these describe the curve, not the "
                   f"deployment)</caption><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")
    if not any_:
        out.append('<p class="absent">Not computed: metrics.json has no per-group "eer" / "fnmr_at_fmr".</p>')
    out.append("</section>")
    return "".join(out)


def _figures_section(m: dict, run_dir: Path, scores, figs: _Figures) -> str:
    """DET, score distributions and cross-group FMR per attribute: the pipeline's own SVGs when the
    run folder has them, else drawn here. ``scores`` is a zero-argument callable returning
    ``read_scores``'s dict (or None), called only when a figure has to be drawn from scores.csv."""
    out = ['<section id="figures"><h2>Figures</h2>']
    exp = m.get("experiment", "")
    distance = _get(m, "backend", "distance") or "distance"
    w = words(direction_of(m))
    sign = w["sign"]   # thresholds in metrics.json are in the backend's units; read_scores' are distance-oriented
    for attr in m.get("groups", {}):
        out.append(f"<h3>By {esc(attr)}</h3>")
        shown = _threshold_for(m, attr)
        thr = shown if sign > 0 or shown is None else (
            {g: None if v is None else sign * v for g, v in shown.items()} if isinstance(shown, dict) else sign * shown)
        # DET
        det = _pipeline_svg(run_dir, f"det_{attr}")
        if det is not None:
            out.append(figs.block(det, f"DET curves by {esc(attr)}: FNMR against FMR, log-log; the "
                                  "marker on each curve is the operating threshold. Zero rates are drawn at 1/2n.",
                                  f"DET curves by {attr}"))
        elif scores() is not None:
            curves = _within(scores(), attr)
            fig = plots.det_figure(curves, f"{exp}: DET by {attr}", threshold=thr, min_count=2)
            out.append(figs.block(plots.figure_svg(fig), f"DET curves by {esc(attr)} (drawn from scores.csv).",
                                  f"DET curves by {attr}"))
        else:
            out.append(f'<p class="absent">DET by {esc(attr)}: not available (no det_{esc(attr)}.svg, no scores.csv).</p>')
        # score distributions
        dist = _pipeline_svg(run_dir, f"scores_{attr}")
        if dist is None and scores() is not None:
            curves = _within(scores(), attr)
            failed = {g: int(np.sum(~np.isfinite(np.concatenate(v)))) for g, v in curves.items()}
            curves = {g: tuple(sign * x for x in v) for g, v in curves.items()}
            xlabel = (f"{distance.capitalize()} distance (lower = more similar; linear scale)" if sign > 0 and
                      not _get(m, "backend", "score_direction") else f"{w['kind'].capitalize()} ({w['alike']}; linear scale)")
            dist = plots.figure_svg(plots.score_distribution_plot(
                curves, f"{exp}: score distributions by {attr}", threshold=shown, xlabel=xlabel, failed=failed))
        if dist is not None:
            tnote = ("dashed line: the operating threshold" if thr is not None else
                     "no threshold line: the per-group thresholds of another attribute vary within these groups")
            out.append(figs.block(dist, f"Genuine and impostor score distributions by {esc(attr)}, "
                                  f"within-group comparisons, each class normalised to its own count; {tnote}.",
                                  f"Score distributions by {attr}"))
        else:
            out.append('<p class="absent">Score distributions: not available (no scores.csv in the run folder).</p>')
        # cross-group FMR (the pipeline draws cross_fmr_<attr>.svg from metrics.json's block)
        heat = _pipeline_svg(run_dir, f"cross_fmr_{attr}")
        src = "metrics.json cross_fmr"
        if heat is None:
            cross = _get(m, "cross_fmr", attr)
            if cross is None and isinstance(thr, (int, float)) and scores() is not None:
                cross = cross_counts(scores(), attr, float(thr))
                src = "counted from scores.csv at the operating threshold (metrics.json has no cross_fmr block)"
            if cross and cross.get("labels"):
                heat = plots.figure_svg(plots.cross_fmr_heatmap(cross, f"{exp}: impostor FMR by group pair ({attr})"))
        if heat is not None:
            out.append(figs.block(heat,
                                  f"Cross-group FMR by {esc(attr)} on a log colour scale: each cell is the share of "
                                  "impostor comparisons between a subject of the row group and one of the column "
                                  "group that match at the operating threshold, with false matches / comparisons. "
                                  f"Hatched: zero false matches; blank: no comparisons. Source: {esc(src)}.",
                                  f"Cross-group FMR heatmap by {attr}"))
        else:
            out.append(f'<p class="absent">Cross-group FMR by {esc(attr)}: not computed.</p>')
    out.append("</section>")
    return "".join(out)


def _within(scores: dict, attr: str) -> dict:
    """group -> (genuine, impostor) scores of comparisons whose two sides are in the same group."""
    ga, gb = scores["groups"][attr]
    same = ga == gb
    out = {}
    for g in sorted(set(ga[same].tolist())):
        sel = same & (ga == g)
        out[g] = (scores["score"][sel & scores["mated"]], scores["score"][sel & ~scores["mated"]])
    return out


# --------------------------------------------------------------------------- the page


NAV = {"verification": [("headline", "Headline"), ("disparity", "Disparity"), ("tests", "Tests"),
                        ("operating", "Per-group curves"), ("intersections", "Intersections"), ("figures", "Figures"),
                        ("fte", "Failure to enrol"), ("provenance", "Provenance"), ("caveats", "Caveats")],
       "search": [("headline", "Headline"), ("disparity", "Disparity"), ("cmc", "CMC"), ("gallery-size", "Gallery size"),
                  ("false-candidates", "False candidates"), ("audit", "Audit"), ("intersections", "Intersections"),
                  ("fte", "Failures"), ("provenance", "Provenance"), ("caveats", "Caveats")]}


def _intro(m: dict) -> str:
    if results.run_kind(m) != results.SEARCH:
        from . import stats_sections as ss
        return (f"<p>Threshold: {_threshold_text(m)}. {esc(ss.membership_sentence(m))} Each rate is shown with the errors and comparisons "
                "behind it and an exact 95% Clopper-Pearson interval; with zero errors, the 95% upper bound.</p>")
    pr, s = m.get("protocol", {}), m.get("search") or {}
    return (f"<p>The mugshot-database scenario: {num('protocol.n_enrolled_subjects', pr.get('n_enrolled_subjects'))} enrolled "
            f"subjects ({num('protocol.n_gallery_images', pr.get('n_gallery_images'))} gallery images); "
            f"{num('protocol.n_mated_probes', pr.get('n_mated_probes'))} mated probes from "
            f"{num('protocol.n_mated_subjects', pr.get('n_mated_subjects'))} enrolled subjects (another image of them) and "
            f"{num('protocol.n_nonmated_probes', pr.get('n_nonmated_probes'))} non-mated probes from "
            f"{num('protocol.n_nonmated_subjects', pr.get('n_nonmated_subjects'))} people enrolled nowhere; "
            f"candidate list {num('search.candidates', s.get('candidates'))}; split seed {esc(pr.get('seed'))}.</p>"
            f"<p>Threshold: {_threshold_text(m)}. <b>FPIR</b>: the share of non-mated searches that return at least one "
            f"candidate {words(direction_of(m))['at_or']}. <b>FNIR</b>: the share of mated searches whose mate is not "
            f"returned in the candidate list {words(direction_of(m))['side']} the threshold; <b>FNIR rank 1</b>: the mate is not the nearest "
            "enrolled subject (no threshold). NIST FRVT/FRTE 1:N definitions (NISTIR 8271). A search belongs to its "
            "probe's group. Each rate shows the errors and searches behind it.</p>")


def render_report(run_dir: str | Path) -> str:
    """The report of a run folder (1:1 or search) as one HTML string (see module docstring)."""
    run_dir = Path(run_dir)
    m, rec = _load(run_dir)
    if (m.get("protocol") or {}).get("kind") == "enrolment":   # enrolment only (evalkit/report/audit.py)
        from .audit import render_enrolment_report

        return render_enrolment_report(run_dir, m, rec, page)
    m = _in_dataset_order(m)
    kind = results.run_kind(m)
    search = kind == results.SEARCH
    scores = functools.cache(lambda: read_scores(run_dir / "scores.csv", m.get("failure_policy", "nonmatch"),
                                                 direction_of(m)))
    conf = _get(rec, "config", "confidence") or _get(m, "bootstrap", "confidence") or 0.95
    figs = _Figures()
    ds, pr, be = m.get("dataset", {}), m.get("protocol", {}), m.get("backend", {})
    title = f"evalkit report: {m.get('experiment', run_dir.name)}"
    what = f"one-to-many search ({esc(pr.get('name'))})" if search else esc(pr.get("name"))
    body = [f"<header><h1>{esc(title)}</h1>"
            f'<p class="sub">{esc(ds.get("name"))} · {what} · backend {esc(be.get("name"))} '
            f'({esc(_backend_sub(be))}) · failure policy {esc(m.get("failure_policy"))} · '
            f'{esc(m.get("schema"))}</p>'
            '<nav aria-label="Sections">' + "".join(f'<a href="#{a}">{t}</a>' for a, t in NAV[kind]) + "</nav></header>"]
    names = " and ".join(RATE_LABELS[r] for r in results.run_rates(m) if r != "fnir_rank1")
    body.append(f'<section id="headline"><h2>Headline: {names} at the operating threshold</h2>')
    body.append(_intro(m))
    body.append(_key_figures(m))
    body.append(_key_readings(m, conf))
    for attr, groups in m.get("groups", {}).items():
        body.append(_group_table(
            m, f"groups.{attr}", groups,
            f"By {'probe ' if search else ''}{esc(attr)}: {names} at the operating threshold"
            + (", full gallery" if search else ""),
            fte=_get(m, "failures", "by_group", attr) or {}, mixed=_get(m, "mixed", attr),
            mixed_label=f"mixed ({attr} differs)", overall=m.get("overall"),
            thresholds={g: v.get("value") for g, v in (_get(m, "threshold", "per_group", attr) or {}).items()} or None))
    body.append("</section>")
    body.append(_disparity_section(m, conf))
    from . import stats_sections as ss
    body.append(ss.html_nist_section(m))
    body.append(ss.html_score_shift_section(m))
    fte = _fte_table(m) + _fte_figure(m, run_dir, figs)
    if search:
        body += search_html.sections(m, run_dir, figs)
        body.append(_intersections_section(m))
        body.append(search_html.failed_section(m, fte))
    else:
        body.append(_tests_section(m))
        body.append(_operating_points_section(m))
        body.append(_intersections_section(m))
        body.append(_figures_section(m, run_dir, scores, figs))
        body.append(f'<section id="fte"><h2>Failure to enrol</h2>{fte}</section>')
    body.append(_provenance_section(m, rec))
    from .audit import scope_html   # impostor-only runs: what the data can and cannot show

    if scope_html(m):
        body.append(scope_html(m))
    body.append(_caveats_section(m))
    body.append('<footer>Written by evalkit from this run folder only (metrics.json, record.json, the figures '
                "the run wrote, scores.csv where a figure is missing). Self-contained: no scripts, fonts or images are "
                "loaded from anywhere.</footer>")
    return page(title, body)


def page(title: str, body: list[str]) -> str:
    """One self-contained HTML page: the report style inline, ``body`` sections in <main>."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(body) + "</main></body></html>\n")


def write_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report.html`` from the run folder's own files; returns its path."""
    run_dir = Path(run_dir)
    text = render_report(run_dir)
    out = run_dir / REPORT_NAME
    out.write_text(text, encoding="utf-8")
    return out
