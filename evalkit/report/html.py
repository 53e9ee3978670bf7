"""The HTML report of a run: one self-contained file (inline CSS and SVG, no script, no network).

``write_report(run_dir)`` reads only the run folder -- metrics.json (required), record.json and
the figures the pipeline wrote (det_<attribute>.svg, scores_<attribute>.svg,
cross_fmr_<attribute>.svg, fte.svg), which it inlines as they are -- and writes ``report.html``
next to them. A figure the folder lacks (a run with ``det_plot=false``, an older folder) is drawn
here instead: from metrics.json, or from scores.csv, which is read only then. It works on metrics.json schema "evalkit.metrics/1" and "/2": every
block of v2 (disparity, tests, intersections, per-group operating points, cross-group FMR,
bootstrap intervals) is shown when present and marked "not computed" when absent.

Key numbers carry machine-readable attributes: ``data-key`` is the dotted path of the value in
metrics.json (e.g. ``groups.sex.female.fnmr``) and ``data-value`` its exact JSON text, so a test
can compare the page with metrics.json without parsing formatted text.
"""

from __future__ import annotations

import csv
import functools
import html
import json
import math
import re
from pathlib import Path

import numpy as np

from ..backends.scoring_base import backend_scores_text, direction_of, words
from ..labels import SPECIAL_LABELS as LABEL_GROUPS
from . import plots

REPORT_NAME = "report.html"
SMALL_FALLBACK = 30   # comparisons of each kind under which a group is called small when metrics.json has no flag
RATE = {"fmr": "FMR", "fnmr": "FNMR"}


# --------------------------------------------------------------------------- formatting


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def pct(x) -> str:
    """A rate as a percentage: 2 decimals from 1% up, 3 significant digits below."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0%"
    v = 100 * x
    return f"{v:.2f}%" if abs(v) >= 1 else f"{v:#.3g}%"


def ratio(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def jvalue(v) -> str:
    """The exact JSON text of a value (floats round-trip: repr)."""
    return json.dumps(v)


def num(key: str, value, text: str | None = None, tag: str = "span", cls: str = "") -> str:
    """An element carrying ``data-key``/``data-value`` for a number taken from metrics.json."""
    shown = esc(text if text is not None else value)
    c = f' class="{cls}"' if cls else ""
    return f'<{tag}{c} data-key="{esc(key)}" data-value="{esc(jvalue(value))}">{shown}</{tag}>'


def rate_text(v) -> str:
    return "n/a (no comparisons)" if v is None else pct(v)


def ci_text(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"{pct(ci[0])} – {pct(ci[1])}"


def _get(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


# --------------------------------------------------------------------------- inputs


def _load(run_dir: Path) -> tuple[dict, dict]:
    mpath = run_dir / "metrics.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: write_report needs a finished run folder")
    m = json.loads(mpath.read_text())
    rpath = run_dir / "record.json"
    rec = json.loads(rpath.read_text()) if rpath.is_file() else {}
    return m, rec


def read_scores(path: Path, failure_policy: str = "nonmatch", direction: str = "distance") -> dict | None:
    """scores.csv -> {score, mated, failed, groups: attr -> (labels a, labels b)} as arrays, with
    the failure policy applied as metrics do: failed comparisons are +inf (nonmatch) or dropped
    (exclude). None when the file is absent. Scores come back in the distance orientation the
    rates use: a similarity run's scores are negated (``direction``; backends/scoring_base.py)."""
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    from ..scoring import apply_failure_policy

    attrs = [c[:-2] for c in rows[0] if c.endswith("_a") and c not in ("sample_a", "subject_a")]
    failed = np.array([r["failed"] == "1" for r in rows], dtype=bool)
    score = np.array([math.inf if r["score"] == "" else words(direction)["sign"] * float(r["score"]) for r in rows],
                     dtype=float)
    mated = np.array([r["mated"] == "1" for r in rows], dtype=bool)
    groups = {a: (np.array([r[f"{a}_a"] for r in rows]), np.array([r[f"{a}_b"] for r in rows])) for a in attrs}
    score, keep = apply_failure_policy(score, failed, failure_policy)
    return {"score": score[keep], "mated": mated[keep], "failed": failed[keep],
            "groups": {a: (ga[keep], gb[keep]) for a, (ga, gb) in groups.items()}}


def cross_counts(scores: dict, attr: str, threshold: float) -> dict:
    """The cross-group impostor table (same shape as metrics.json ``cross_fmr[attr]``) counted from
    scores.csv at one threshold: cell [i][j] = impostor comparisons with one subject in labels[i]
    and the other in labels[j] (symmetric), and the false matches (score <= threshold) among them.
    Used only when metrics.json has no ``cross_fmr`` block (schema v1); counted by the metrics'
    own ``summary.cross_fmr`` (empty cells: None, as in metrics.json)."""
    from ..metrics.summary import cross_fmr

    ga, gb = scores["groups"][attr]
    cx = cross_fmr(scores["score"] - threshold, scores["mated"], ga, gb)
    cx["fmr"] = [[None if math.isnan(v) else v for v in row] for row in cx["fmr"]]
    return cx


# --------------------------------------------------------------------------- SVG inlining


def inline_svg(svg: str, prefix: str, label: str) -> str:
    """Make a matplotlib SVG safe to inline: drop the XML prologue, DOCTYPE, metadata and namespace
    URLs (HTML parsing needs none), prefix ids so several figures cannot clash, scale to width."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{esc(label)}" class="fig" ', 1)
    return svg.strip()


class _Figures:
    def __init__(self):
        self.n = 0

    def block(self, svg: str, caption: str, label: str) -> str:
        self.n += 1
        return (f'<figure id="fig{self.n}">{inline_svg(svg, f"f{self.n}", label)}'
                f"<figcaption><b>Figure {self.n}.</b> {caption}</figcaption></figure>")


# --------------------------------------------------------------------------- sections


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


def _is_small(e: dict) -> str | None:
    if "small" in e:
        return e.get("small_reason") or ("flagged small" if e["small"] else None)
    why = []
    if e.get("n_genuine", 0) < SMALL_FALLBACK:
        why.append(f"{e.get('n_genuine', 0)} genuine comparisons < {SMALL_FALLBACK}")
    if e.get("n_impostor", 0) < SMALL_FALLBACK:
        why.append(f"{e.get('n_impostor', 0)} impostor comparisons < {SMALL_FALLBACK}")
    return "; ".join(why) or None


def _rate_cells(key: str, e: dict, rate: str, errors: str, n: str) -> str:
    """Two cells: the rate with its counts next to it, and its interval(s)."""
    v = e.get(rate)
    cell = (f'<td class="rate">{num(f"{key}.{rate}", v, rate_text(v))} <span class="cnt">('
            f'{num(f"{key}.{errors}", e.get(errors))}/{num(f"{key}.{n}", e.get(n))})</span></td>')
    txt = ""
    if v is not None:
        txt = f'<span class="iv">{esc(ci_text(e.get(f"{rate}_ci")))}</span>'
        if v == 0 and e.get(f"{rate}_upper_bound") is not None:
            ub = e[f"{rate}_upper_bound"]
            txt += f'<br><span class="note">0 observed; upper bound {num(f"{key}.{rate}_upper_bound", ub, pct(ub))}</span>'
    boot = e.get(f"{rate}_ci_boot")
    if boot and boot[0] is not None:
        txt += f'<br><span class="boot">bootstrap {esc(ci_text(boot))}</span>'
    return cell + f'<td class="ci">{txt}</td>'


def _group_table(base: str, groups: dict, caption: str, fte: dict | None = None,
                 mixed: dict | None = None, mixed_label: str = "", overall: dict | None = None,
                 thresholds: dict | None = None) -> str:
    has_boot = any("fnmr_ci_boot" in e for e in groups.values())
    ci_head = "95% CI (exact" + ("; bootstrap below" if has_boot else "") + ")"
    head = ("<tr><th scope=col>Group</th><th scope=col>Subjects</th>"
            "<th scope=col>FNMR (false non-matches/genuine)</th>"
            f"<th scope=col>{ci_head}</th><th scope=col>FMR (false matches/impostor)</th><th scope=col>{ci_head}</th>"
            + ("<th scope=col>Threshold</th>" if thresholds else "")
            + ("<th scope=col>Failed to enrol (failed/images)</th>" if fte is not None else "") + "</tr>")
    rows = []

    def row(label, key, e, cls="", fte_key=None, badge=""):
        cells = (f'<th scope=row>{esc(label)}{badge}</th>'
                 f'<td class="count">{num(key + ".n_subjects", e.get("n_subjects"))}</td>')
        cells += _rate_cells(key, e, "fnmr", "false_nonmatches", "n_genuine")
        cells += _rate_cells(key, e, "fmr", "false_matches", "n_impostor")
        if thresholds:
            t = thresholds.get(label)
            cells += f'<td class="count">{"" if t is None else esc(f"{t:.4g}")}</td>'
        if fte is not None:
            f = fte.get(label) if fte_key else None
            if f:
                cells += (f'<td class="rate">{num(fte_key + ".rate", f.get("rate"), pct(f.get("rate")))} <span class="cnt">'
                          f'({num(fte_key + ".failed", f.get("failed"))}/{num(fte_key + ".n_images", f.get("n_images"))})'
                          "</span></td>")
            else:
                cells += "<td></td>"
        rows.append(f'<tr class="{cls}">{cells}</tr>')

    if overall is not None:
        row("all comparisons", "overall", overall, "overall")
    attr = base.split(".", 1)[-1]
    for g, e in groups.items():
        small = _is_small(e)
        badge = f' <span class="badge" title="{esc(small)}">small</span>' if small else ""
        row(g, f"{base}.{g}", e, "small" if small else "",
            fte_key=f"failures.by_group.{attr}.{g}" if fte is not None else None, badge=badge)
    foot = ""
    if mixed is not None:
        row(mixed_label, base.replace("groups.", "mixed.", 1), mixed, "mixed")
        foot = (f"<tfoot><tr><td colspan=8>{esc(mixed_label)}: comparisons whose two sides differ in group "
                "(mixed-group impostor pairs), reported on their own. Rows marked <i>small</i> have too few subjects "
                "or comparisons for a stable rate (see Caveats).</td></tr></tfoot>")
    return (f'<div class="tablewrap"><table class="groups"><caption>{caption}</caption><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody>{foot}</table></div>')


SUMMARY_NAMES = {"fnmr_max_min_ratio": "FNMR max/min ratio", "fmr_max_min_ratio": "FMR max/min ratio",
                 "fdr": "FDR", "ir": "IR", "garbe": "GARBE", "ser": "SER", "accuracy_std": "accuracy spread",
                 "fnmr_ratio_to_reference": "FNMR ratio", "fmr_ratio_to_reference": "FMR ratio"}


def _reading(name: str, d: dict, groups: dict, conf: float, ref: str | None = None, group: str | None = None) -> str:
    v, ci, reason = d.get("value"), d.get("ci"), d.get("reason")
    if v is None:
        what = SUMMARY_NAMES.get(name, name) + (f" of {group} to {ref}" if group else "")
        return f"{esc(what)} not defined: {esc(reason or 'no value')}"
    cl = f" ({round(100 * conf):g}% CI {ci[0]:.2f}–{ci[1]:.2f})" if ci and ci[0] is not None and ci[1] is not None else ""
    if name.endswith("_ratio_to_reference"):
        r = RATE[name.split("_")[0]]
        return f"{r} for {esc(group)} is {v:.2f}x that for {esc(ref)}{cl}"
    if name.endswith("_max_min_ratio"):
        rate = name.split("_")[0]
        used = [g for g in (d.get("groups") or groups) if g in groups and groups[g].get(rate) is not None]
        if used:
            hi = max(used, key=lambda g: groups[g][rate])
            lo = min(used, key=lambda g: groups[g][rate])
            return f"the highest group {RATE[rate]} ({esc(hi)}) is {v:.2f}x the lowest ({esc(lo)}){cl}"
        return f"the highest group {RATE[rate]} is {v:.2f}x the lowest{cl}"
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
        return pct(v)
    return f"{v:.3g}" if name in ("fdr", "garbe") else f"{v:.2f}"


def _disparity_section(m: dict, conf: float) -> str:
    disp = m.get("disparity")
    out = ['<section id="disparity"><h2>Disparity summaries</h2>']
    if disp is None:
        out.append(f'<p class="absent">Not computed: metrics.json (schema {esc(m.get("schema"))}) has no '
                   '"disparity" block. Compare the group rates and their intervals in the table above.</p></section>')
        return "".join(out)
    mc = m.get("min_count")
    if mc:
        out.append(f"<p>Over the groups not flagged small (at least {mc['subjects']} subjects and "
                   f"{mc['comparisons']} comparisons of each kind; labels such as unlabelled never enter). "
                   + ("Intervals: subject-clustered bootstrap percentile intervals (subjects resampled, not pairs)."
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
                                + num(f"{key}.by_group.{g}.value", v, ratio(v), "td", "rate")
                                + f'<td class="ci">{esc(_ci_plain(r.get("ci")))}</td>'
                                + f'<td class="reading">{_reading(name, r, groups, conf, ref, g)}{src}</td></tr>')
                continue
            v = d.get("value")
            rows.append(f"<tr><th scope=row>{esc(name)}</th>" + num(f"{key}.value", v, _fmt_val(name, v), "td", "rate")
                        + f'<td class="ci">{esc(_ci_plain(d.get("ci")))}</td>'
                        + f'<td class="reading">{_reading(name, d, groups, conf)}{src}</td></tr>')
        out.append(f'<div class="tablewrap"><table class="disparity"><caption>Disparity summaries by {esc(attr)}</caption>'
                   "<thead><tr><th scope=col>Summary</th><th scope=col>Value</th><th scope=col>95% CI</th>"
                   f"<th scope=col>Reading</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    out.append("</section>")
    return "".join(out)


def _ci_plain(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"{ci[0]:.3g} – {ci[1]:.3g}"


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
                rows.append(f"<tr><td>{esc(attr)}</td><td>{RATE.get(rate, esc(rate))}</td><td>{esc(t.get('a'))}</td>"
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
                    why = r.get("reason") or f"{e.get('n_impostor', 0)} impostors < 1/{float(t):g}"
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
        out.append(_group_table(f"intersections.{name}", groups,
                                f"By {esc(name)}: FNMR and FMR at the operating threshold"))
    out.append("</section>")
    return "".join(out)


def _pipeline_svg(run_dir: Path, stem: str) -> str | None:
    """The text of a figure the pipeline wrote into the run folder (<stem>.svg), or None."""
    p = run_dir / f"{stem}.svg"
    return p.read_text() if p.is_file() else None


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
    rows = []
    for attr, groups in f.get("by_group", {}).items():
        for g, e in groups.items():
            k = f"failures.by_group.{attr}.{g}"
            rows.append(f"<tr><td>{esc(attr)}</td><th scope=row>{esc(g)}</th>"
                        + num(f"{k}.rate", e.get("rate"), pct(e.get("rate")), "td", "rate")
                        + f'<td class="count">{num(k + ".failed", e.get("failed"))} / {num(k + ".n_images", e.get("n_images"))}</td>'
                        + f'<td class="ci">{esc(ci_text(e.get("ci")))}</td><td class="count">{esc(e.get("fallbacks", 0))}</td></tr>')
    reasons = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in (imgs.get("by_reason") or {}).items()) or "none"
    fb = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in (imgs.get("fallbacks") or {}).items())
    return (f'<p>{num("failures.images.failed", imgs.get("failed"))} of {num("failures.images.n", imgs.get("n"))} images '
            f'failed to enrol ({num("failures.images.rate", imgs.get("rate"), pct(imgs.get("rate")))}; by reason: {reasons})'
            + (f"; embedded through a fallback (not failures, but not the detector's work): {fb}" if fb else "")
            + ".</p>"
            '<div class="tablewrap"><table><caption>Failure to enrol per group (exact 95% CI)</caption><thead><tr>'
            "<th scope=col>Attribute</th><th scope=col>Group</th><th scope=col>Rate</th><th scope=col>failed / images</th>"
            f"<th scope=col>95% CI</th><th scope=col>Fallbacks</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _kv_table(caption: str, items, code: bool = False) -> str:
    rows = "".join(f"<tr><th scope=row>{esc(k)}</th><td>{'<code>' if code else ''}{v}{'</code>' if code else ''}</td></tr>"
                   for k, v in items)
    return f'<div class="tablewrap"><table class="kv"><caption>{caption}</caption><tbody>{rows}</tbody></table></div>'


def _threshold_text(m: dict) -> str:
    th = m.get("threshold", {})
    pol = th.get("policy")
    label = th.get("label")
    parts = []
    if th.get("value") is not None:
        parts.append(words(direction_of(m))["kind"] + " " + num("threshold.value", th["value"], f"{th['value']:.6g}"))
    if label:
        parts.append(esc(label))
    elif pol in ("target_fmr", "global_fmr"):
        parts.append(f"one threshold for everyone, set on all {esc(th.get('n_impostor'))} impostor comparisons at "
                     f"target FMR {th.get('target_fmr'):g}")
    elif pol == "fixed":
        parts.append("a fixed " + words(direction_of(m))["kind"])
    if th.get("achieved_fmr") is not None:
        parts.append(f'achieved FMR {num("threshold.achieved_fmr", th["achieved_fmr"], pct(th["achieved_fmr"]))}')
    if th.get("achieved_fpir") is not None:   # one-to-many search runs
        parts.append(f'achieved FPIR {num("threshold.achieved_fpir", th["achieved_fpir"], pct(th["achieved_fpir"]))}')
    if th.get("resolvable") is False:
        parts.append("<b>the target FMR is below 1/(number of impostors): it cannot be resolved on this data</b>")
    return "; ".join(parts)


def _provenance_section(m: dict, rec: dict) -> str:
    ds, pr, be = m.get("dataset", {}), m.get("protocol", {}), m.get("backend", {})
    th = m.get("threshold", {})
    out = ['<section id="provenance"><h2>Provenance</h2>']
    out.append(_kv_table("Run", [
        ("Dataset", f"{esc(ds.get('name'))}: {esc(ds.get('n_samples'))} images of {esc(ds.get('n_subjects'))} subjects used by the protocol"),
        ("Protocol", f"{esc(pr.get('name'))}: {esc(pr.get('n_comparisons'))} comparisons ({esc(pr.get('n_genuine'))} genuine, "
                     f"{esc(pr.get('n_impostor'))} impostor)" + (f", {esc(pr.get('n_folds'))} folds" if pr.get("n_folds") else "")
         if pr.get("kind") != "search" else
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
                    f"(achieved FMR {pct(v.get('achieved_fmr'))}, {esc(v.get('n_impostor'))} impostors"
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
        out.append(f"<h3>Labels: {esc(attr)}</h3><p class=src>{esc(_get(ds, 'label_sources', attr) or 'source not recorded')}</p>"
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
    for attr, groups in m.get("groups", {}).items():
        small = [(g, _is_small(e)) for g, e in groups.items()]
        small = [(g, r) for g, r in small if r]
        if small:
            rule = (f"fewer than {mc['subjects']} subjects or {mc['comparisons']} comparisons of a kind" if mc
                    else f"fewer than {SMALL_FALLBACK} genuine or impostor comparisons (metrics.json carries no flag)")
            items.append(f"<li><b>Sparse groups ({esc(attr)}):</b> {rule}: "
                         + "; ".join(f"<i>{esc(g)}</i> ({esc(r)})" for g, r in small)
                         + ". Their rates are shown, but their intervals are wide"
                         + ("; they do not enter the disparity summaries" if m.get("disparity") is not None else "")
                         + ".</li>")
        none = [g for g, e in groups.items() if e.get("fmr") is None or e.get("fnmr") is None]
        if none:
            items.append(f"<li><b>No comparisons ({esc(attr)}):</b> " + ", ".join(
                f"<i>{esc(g)}</i> has no {'impostor' if groups[g].get('fmr') is None else 'genuine'} comparisons "
                "(n/a, not zero)" for g in none) + ".</li>")
    for attr, cov in (_get(m, "dataset", "label_coverage") or {}).items():
        tot_s = sum(c.get("samples", 0) for c in cov.values())
        tot_p = sum(c.get("subjects", 0) for c in cov.values())
        parts = [f"{esc(g)} {cov[g].get('subjects', 0)} of {tot_p} subjects ({pct(cov[g].get('subjects', 0) / tot_p if tot_p else None)}), "
                 f"{cov[g].get('samples', 0)} of {tot_s} images ({pct(cov[g].get('samples', 0) / tot_s if tot_s else None)})"
                 for g in LABEL_GROUPS if g in cov]
        if parts:
            items.append(f"<li><b>Label coverage ({esc(attr)}):</b> " + "; ".join(parts) + ". These are explicit groups, "
                         "never dropped; comparisons involving them count only toward those groups and the overall rates.</li>")
        else:
            items.append(f"<li><b>Label coverage ({esc(attr)}):</b> every image the protocol uses carries a label.</li>")
    f = m.get("failures", {})
    comp = f.get("comparisons", {})
    if m.get("failure_policy") == "exclude":
        items.append(f"<li><b>Failures to enrol:</b> policy <i>exclude</i>: {esc(f.get('excluded_comparisons'))} comparisons "
                     "touching an image without an embedding are left out of every rate (counted here). Failures are "
                     "often skewed by group: compare the failure-to-enrol table.</li>")
    else:
        items.append(f"<li><b>Failures to enrol:</b> policy <i>{esc(m.get('failure_policy'))}</i>: "
                     f"{esc(comp.get('genuine', 0))} genuine and {esc(comp.get('impostor', 0))} impostor comparisons touch an "
                     "image without an embedding and count as non-matches (ISO/IEC 19795-1): they raise FNMR, never FMR.</li>")
    has_boot = any("fnmr_ci_boot" in e for groups in m.get("groups", {}).values() for e in groups.values())
    boot = m.get("bootstrap")
    if has_boot and boot:
        items.append(f"<li><b>Intervals:</b> exact (Clopper-Pearson) intervals treat comparisons as independent; pairs "
                     "share subjects, so these are too narrow when subjects recur. The subject-clustered bootstrap interval "
                     f"({esc(boot.get('replicates'))} replicates, seed {esc(boot.get('seed'))}, resampling "
                     f"{esc(boot.get('unit', 'subject'))}s) is shown next to it: read that one.</li>")
    else:
        items.append("<li><b>Intervals:</b> exact (Clopper-Pearson) intervals treat comparisons as independent; pairs share "
                     "subjects, so they are too narrow when subjects recur. The subject-clustered bootstrap interval was "
                     "not computed for this run.</li>")
    th = m.get("threshold", {})
    if th.get("resolvable") is False:
        items.append("<li><b>Threshold:</b> the target FMR is below 1/(number of impostors); it cannot be resolved on "
                     f"this data and {words(direction_of(m))['beyond_impostors']}.</li>")
    if th.get("policy") == "per_group_fmr":
        items.append("<li><b>Per-group thresholds:</b> each group has its own threshold (BFW style). FMR is equalised by "
                     "construction; the disparity moves into FNMR. This is not the one-threshold deployment view.</li>")
    if str(_get(m, "dataset", "name", default="")).lower().startswith("lfw"):
        items.append("<li><b>LFW:</b> its authors warn that LFW must not be used to conclude that an algorithm suits "
                     "commercial use; the demographic labels are third-party annotations (binary sex; race for a subset of "
                     "identities) and carry their own errors.</li>")
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
    cards = []

    def card(value_html, label):
        cards.append(f'<div class="kf"><span class="v">{value_html}</span><span class="l">{label}</span></div>')

    card(num("overall.fnmr", o.get("fnmr"), rate_text(o.get("fnmr"))),
         f"FNMR overall ({esc(o.get('false_nonmatches'))} of {esc(o.get('n_genuine'))} genuine)")
    card(num("overall.fmr", o.get("fmr"), rate_text(o.get("fmr"))),
         f"FMR overall ({esc(o.get('false_matches'))} of {esc(o.get('n_impostor'))} impostor)")
    if th.get("value") is not None:
        card(num("threshold.value", th["value"], f"{th['value']:.4g}"),
             f"threshold ({esc(th.get('policy'))}" + (f", target FMR {th['target_fmr']:g}" if th.get("target_fmr") else "") + ")")
    else:
        card(esc(th.get("policy")), "threshold policy (one threshold per group)")
    if m.get("eer") is not None:
        card(num("eer", m["eer"], pct(m["eer"])), "equal error rate (all comparisons)")
    acc = m.get("lfw_accuracy")
    if acc:
        card(num("lfw_accuracy.mean", acc["mean"], pct(acc["mean"])),
             f"LFW {esc(acc.get('n_folds'))}-fold accuracy (± {pct(acc.get('sem'))} s.e.)")
    fi = _get(m, "failures", "images") or {}
    card(num("failures.images.rate", fi.get("rate"), pct(fi.get("rate"))),
         f"failed to enrol ({esc(fi.get('failed'))} of {esc(fi.get('n'))} images)")
    return f'<div class="keyfigs">{"".join(cards)}</div>'


def _key_readings(m: dict, conf: float) -> str:
    """The plain-language disparity readings that matter most, at the top (v2 only)."""
    disp = m.get("disparity")
    if not disp:
        return ""
    items = []
    for attr, block in disp.items():
        groups = m["groups"].get(attr, {})
        for name in ("fnmr_ratio_to_reference", "fmr_ratio_to_reference"):
            d = block.get(name)
            for g, r in ((d or {}).get("by_group") or {}).items():
                if g != d.get("reference"):
                    items.append(_reading(name, r, groups, conf, d.get("reference"), g))
        for name in ("fnmr_max_min_ratio", "fmr_max_min_ratio"):
            if name in block:
                items.append(f"{esc(attr)}: " + _reading(name, block[name], groups, conf))
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
    for block in ("groups", "mixed", "cross_fmr", "disparity", "tests"):
        if isinstance(m.get(block), dict):
            d = m[block]
            m[block] = {k: d[k] for k in [*[a for a in order if a in d], *[a for a in d if a not in order]]}
    return m


def render_report(run_dir: str | Path) -> str:
    """The report of a run folder as one HTML string (see module docstring)."""
    run_dir = Path(run_dir)
    m, rec = _load(run_dir)
    if (m.get("protocol") or {}).get("kind") == "search":   # one-to-many: its own report
        from .search_html import render_search_report

        return render_search_report(run_dir, m, rec)
    m = _in_dataset_order(m)
    scores = functools.cache(lambda: read_scores(run_dir / "scores.csv", m.get("failure_policy", "nonmatch"),
                                                 direction_of(m)))
    conf = _get(rec, "config", "confidence") or _get(m, "bootstrap", "confidence") or 0.95
    figs = _Figures()
    ds, pr, be = m.get("dataset", {}), m.get("protocol", {}), m.get("backend", {})
    title = f"evalkit report: {m.get('experiment', run_dir.name)}"
    body = [f"<header><h1>{esc(title)}</h1>"
            f'<p class="sub">{esc(ds.get("name"))} · {esc(pr.get("name"))} · backend {esc(be.get("name"))} '
            f'({esc(backend_scores_text(be))}) · failure policy {esc(m.get("failure_policy"))} · '
            f'{esc(m.get("schema"))}</p>'
            '<nav aria-label="Sections"><a href="#headline">Headline</a><a href="#disparity">Disparity</a>'
            '<a href="#tests">Tests</a><a href="#operating">Per-group curves</a><a href="#intersections">Intersections</a>'
            '<a href="#figures">Figures</a><a href="#fte">Failure to enrol</a><a href="#provenance">Provenance</a>'
            '<a href="#caveats">Caveats</a></nav></header>']
    body.append('<section id="headline"><h2>Headline: error rates at the operating threshold</h2>')
    body.append(f"<p>Threshold: {_threshold_text(m)}. A genuine comparison belongs to a group when both images carry its "
                "label; an impostor comparison when both subjects do. Each rate is shown with the errors and comparisons "
                "behind it and an exact 95% Clopper-Pearson interval; with zero errors, the 95% upper bound.</p>")
    body.append(_key_figures(m))
    body.append(_key_readings(m, conf))
    for attr, groups in m.get("groups", {}).items():
        body.append(_group_table(
            f"groups.{attr}", groups, f"By {esc(attr)}: FNMR and FMR at the operating threshold",
            fte=_get(m, "failures", "by_group", attr) or {}, mixed=_get(m, "mixed", attr),
            mixed_label=f"mixed ({attr} differs)", overall=m.get("overall"),
            thresholds={g: v.get("value") for g, v in (_get(m, "threshold", "per_group", attr) or {}).items()} or None))
    body.append("</section>")
    body.append(_disparity_section(m, conf))
    body.append(_tests_section(m))
    body.append(_operating_points_section(m))
    body.append(_intersections_section(m))
    body.append(_figures_section(m, run_dir, scores, figs))
    body.append(f'<section id="fte"><h2>Failure to enrol</h2>{_fte_table(m)}{_fte_figure(m, run_dir, figs)}</section>')
    body.append(_provenance_section(m, rec))
    body.append(_caveats_section(m))
    body.append('<footer>Written by evalkit from this run folder only (metrics.json, record.json, the figures '
                "the run wrote, scores.csv where a figure is missing). Self-contained: no scripts, fonts or images are loaded from anywhere.</footer>")
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
