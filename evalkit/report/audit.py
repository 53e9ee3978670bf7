"""summary.md and report.html parts of the two partial audits (evalkit/audits.py).

An impostor-only run (``protocol.kind == "impostor"``) uses the 1:1 summary and report, plus the
section this module writes on what the data can and cannot show. An enrolment-only run
(``protocol.kind == "enrolment"``) has its own summary and report here: failure to enrol per
group, intersection and reason, with intervals, for the run's detector and backend.
"""

from __future__ import annotations

import base64
from html import escape as esc
from pathlib import Path

from .mdtag import num

AUDIT_KINDS = ("impostor", "enrolment")


def kind(m: dict) -> str | None:
    k = (m.get("protocol") or {}).get("kind")
    return k if k in AUDIT_KINDS else None


def _pct(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _level(confidence) -> str:
    return f"{100 * (confidence if confidence is not None else 0.95):g}%"


def _rate(e: dict, key: str = "", level: str | None = None) -> str:
    """One RateEstimate-shaped dict as text: rate (errors/n) [ci], the upper bound at zero errors,
    or why it is not measurable. ``key``: its metrics.json path, for summary.md's tagged numbers
    (``evalkit.report.mdtag``)."""
    if not e.get("estimable"):
        return f"not measurable: {e.get('reason')}"
    ci = e.get("ci") or [None, None]
    txt = (f"{num(f'{key}.rate', e['rate'], 'pct2')} ({num(f'{key}.errors', e['errors'], 'int')}/"
           f"{num(f'{key}.n', e['n'], 'int')}) [{num(f'{key}.ci.0', ci[0], 'pct2')}, "
           f"{num(f'{key}.ci.1', ci[1], 'pct2')}]")
    if e.get("upper") is not None:
        txt += (f", none observed: {level or _level(None)} upper bound "
                f"{num(f'{key}.upper', e['upper'], 'pct2')}")
    if e.get("small"):
        txt += f" *small: {e['small_reason']}*"
    return txt


def _boot(e: dict, key: str = "") -> str:
    """The subject-clustered bootstrap interval of an estimate, or why there is none."""
    b = e.get("ci_boot")
    if b and b[0] is not None:
        return f"[{num(f'{key}.ci_boot.0', b[0], 'pct2')}, {num(f'{key}.ci_boot.1', b[1], 'pct2')}]"
    return f"n/a ({e.get('ci_boot_reason') or 'not computed'})"


def _boot_sentence(m: dict) -> str:
    b = m.get("bootstrap")
    if not b:
        return "No bootstrap intervals (bootstrap.replicates=0)."
    return (f"Bootstrap: {num('bootstrap.replicates', b['replicates'], 'int')} replicates, seed "
            f"{num('bootstrap.seed', b['seed'], 'int')}, clustered by {b['unit']} ({b['note']}); "
            "the interval is Clopper-Pearson at the bootstrap's effective sample size, as for the rates of pair comparisons.")


def scope_lines(m: dict) -> list[str]:
    """Markdown: what the data can and cannot show (impostor-only and enrolment-only runs)."""
    sc = m.get("scope")
    if not sc:
        return []
    out = ["", "## What this data can and cannot show", ""]
    out += [f"- Can show: {c}." for c in sc.get("can_show", [])]
    out += [f"- Cannot show: {c}." for c in sc.get("cannot_show", [])]
    if sc.get("note"):
        out.append(f"- Note: {sc['note']}.")
    if kind(m) == "impostor":
        out.append("- FNMR is reported as not measurable (no genuine comparison), never as zero.")
    return out


def scope_html(m: dict) -> str:
    sc = m.get("scope")
    if not sc:
        return ""
    items = [f"<li><b>Can show</b>: {esc(c)}.</li>" for c in sc.get("can_show", [])]
    items += [f"<li><b>Cannot show</b>: {esc(c)}.</li>" for c in sc.get("cannot_show", [])]
    if sc.get("note"):
        items.append(f"<li>{esc(sc['note'])}.</li>")
    if kind(m) == "impostor":
        items.append(f'<li data-metric="fnmr">FNMR: {esc(_rate((m.get("overall") or {}).get("fnmr") or {}))}</li>')
    return f'<section id="scope"><h2>What this data can and cannot show</h2><ul>{"".join(items)}</ul></section>'


def _entries(m: dict, keys: bool = False):
    """(attribute, group, entry) of the enrolment block, overall first; with ``keys`` also the
    entry's metrics.json path."""
    en = m.get("enrolment") or {}
    rows = [("overall", "all", en.get("overall") or {}, "enrolment.overall")]
    for block in ("groups", "intersections"):
        for attr, per in (en.get(block) or {}).items():
            for g, e in per.items():
                rows.append((attr, g, e, f"enrolment.{block}.{attr}.{g}"))
    for r in rows:
        yield r if keys else r[:3]


def _reasons(e: dict, key: str = "") -> str:
    return ", ".join(f"{k} {num(f'{key}.by_reason.{k}', v, 'int')}"
                     for k, v in (e.get("by_reason") or {}).items()) or "none"


def render_enrolment_summary(m: dict) -> str:
    ds, be = m["dataset"], m["backend"]
    fp = be.get("fingerprint") or {}
    conf = (m.get("enrolment") or {}).get("confidence")
    lvl = _level(conf) if conf is None else num("enrolment.confidence", conf, "level")
    lines = [f"# {m['experiment']}", "",
             f"- Dataset: **{ds['name']}**, {num('dataset.n_samples', ds['n_samples'], 'int')} images.",
             f"- Protocol: **{m['protocol']['name']}** (enrolment only: every image enrolled, nothing compared).",
             f"- Backend: **{be['name']}** ({be['family']}; {fp.get('model', '')}, detector {fp.get('detector', '?')}).",
             "", f"Failure to enrol (FTE): images the detector / backend could not turn into a template, over the "
             f"group's images; exact (Clopper-Pearson) {lvl} intervals, the one-sided upper bound when none failed, "
             f"and the clustered bootstrap {lvl} interval. " + _boot_sentence(m), ""]
    cur = None
    for attr, g, e, key in _entries(m, keys=True):
        if attr != cur:
            title = "Overall" if attr == "overall" else f"By {attr}"
            lines += ["", f"## {title}", ""]
            if attr in (ds.get("label_sources") or {}):
                lines += [f"Labels: {ds['label_sources'][attr]}", ""]
            lines += [f"| group | images | FTE [exact {lvl} CI] | bootstrap {lvl} CI | reasons |", "|---|---:|---|---|---|"]
            cur = attr
        lines.append(f"| {g} | {num(f'{key}.fte.n', e['fte']['n'], 'int')} | {_rate(e['fte'], f'{key}.fte', lvl)} | "
                     f"{_boot(e['fte'], f'{key}.fte')} | {_reasons(e, key)} |")
    for attr, d in ((m.get("enrolment") or {}).get("disparity") or {}).items():
        r = d["fte_max_min_ratio"]
        k = f"enrolment.disparity.{attr}.fte_max_min_ratio.value"
        lines += ["", f"- FTE max/min ratio by {attr}: " + (f"**{num(k, r['value'], 'g3')}**" if r["value"] is not None
                                                              else f"not computed ({r['reason']})")]
    lines += scope_lines(m)
    return "\n".join(lines) + "\n"


def render_enrolment_report(run_dir: str | Path, m: dict, rec: dict, page) -> str:
    """The enrolment-only report page; ``page(title, body)`` is html.page, passed in so that this
    module does not import html (html imports it: report/ stays free of import cycles)."""
    run_dir = Path(run_dir)
    ds, be = m["dataset"], m["backend"]
    fp = be.get("fingerprint") or {}
    title = f"evalkit report: {m.get('experiment', run_dir.name)}"
    lvl = _level((m.get("enrolment") or {}).get("confidence"))
    body = [f"<header><h1>{esc(title)}</h1><p class=\"sub\">{esc(ds['name'])} · enrolment only · backend "
            f"{esc(be['name'])} (detector {esc(str(fp.get('detector', '?')))}) · {esc(str(m.get('schema')))}</p></header>",
            '<section id="headline"><h2>Failure to enrol per group</h2><p>Images the detector / backend could not turn '
            f"into a template, over the group's images, with the failure reasons; exact {lvl} Clopper-Pearson intervals "
            f"(the one-sided upper bound when none failed) and the clustered bootstrap interval. {esc(_boot_sentence(m))} "
            "Nothing is compared: this data has no identities.</p>"]
    cur = None
    for attr, g, e in _entries(m):
        if attr != cur:
            if cur is not None:
                body.append("</tbody></table>")
            body.append(f"<h3>{'Overall' if attr == 'overall' else 'By ' + esc(attr)}</h3>"
                        f"<table><thead><tr><th>group</th><th>images</th><th>FTE [exact {lvl} CI]</th><th>bootstrap {lvl} CI</th>"
                        "<th>reasons</th></tr></thead><tbody>")
            cur = attr
        f = e["fte"]
        body.append(f'<tr><td>{esc(g)}</td><td>{f["n"]}</td><td data-metric="enrolment.{esc(attr)}.{esc(g)}.fte" '
                    f'data-value="{f["rate"]}">{esc(_rate(f))}</td><td>{esc(_boot(f))}</td><td>{esc(_reasons(e))}</td></tr>')
    body.append("</tbody></table></section>")
    svg, png = run_dir / "fte.svg", run_dir / "fte.png"
    if svg.is_file():   # the default figure format (SVG, inlined like the 1:1 report's)
        body.append(f'<section id="figures"><h2>Figure</h2><figure aria-label="failure to enrol per group">'
                    f'{svg.read_text()}</figure></section>')
    elif png.is_file():
        b64 = base64.b64encode(png.read_bytes()).decode()
        body.append(f'<section id="figures"><h2>Figure</h2><img alt="failure to enrol per group" '
                    f'src="data:image/png;base64,{b64}" style="max-width:100%"></section>')
    body.append(scope_html(m))
    src = "".join(f"<li><b>{esc(a)}</b>: {esc(s)}</li>" for a, s in (ds.get("label_sources") or {}).items())
    body.append(f'<section id="provenance"><h2>Provenance</h2><ul>{src}</ul><p>Backend fingerprint: '
                f"{esc(str(fp))}</p></section>")
    body.append("<footer>Written by evalkit from this run folder only. Self-contained.</footer>")
    return page(title, body)
