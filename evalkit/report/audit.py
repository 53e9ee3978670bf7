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

AUDIT_KINDS = ("impostor", "enrolment")


def kind(m: dict) -> str | None:
    k = (m.get("protocol") or {}).get("kind")
    return k if k in AUDIT_KINDS else None


def _pct(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _rate(e: dict) -> str:
    """One RateEstimate-shaped dict as text: rate (errors/n) [ci], the upper bound at zero errors,
    or why it is not measurable."""
    if not e.get("estimable"):
        return f"not measurable: {e.get('reason')}"
    ci = e.get("ci") or [None, None]
    txt = f"{_pct(e['rate'])} ({e['errors']}/{e['n']}) [{_pct(ci[0])}, {_pct(ci[1])}]"
    if e.get("upper") is not None:
        txt += f", 0 observed: 95% upper bound {_pct(e['upper'])}"
    if e.get("small"):
        txt += f" *small: {e['small_reason']}*"
    return txt


def _boot(e: dict) -> str:
    """The subject-clustered bootstrap interval of an estimate, or why there is none."""
    b = e.get("ci_boot")
    if b and b[0] is not None:
        return f"[{_pct(b[0])}, {_pct(b[1])}]"
    return f"n/a ({e.get('ci_boot_reason') or 'not computed'})"


def _boot_sentence(m: dict) -> str:
    b = m.get("bootstrap")
    if not b:
        return "No bootstrap intervals (bootstrap.replicates=0)."
    return (f"Bootstrap: {b['replicates']} replicates, seed {b['seed']}, clustered by {b['unit']} ({b['note']}); "
            "the interval is Clopper-Pearson at the bootstrap's effective sample size, as for the 1:1 rates.")


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
        out.append("- FNMR is reported as not measurable (no genuine comparison), never as 0.")
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


def _entries(m: dict):
    en = m.get("enrolment") or {}
    yield "overall", "all", en.get("overall") or {}
    for block in ("groups", "intersections"):
        for attr, per in (en.get(block) or {}).items():
            for g, e in per.items():
                yield attr, g, e


def _reasons(e: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in (e.get("by_reason") or {}).items()) or "none"


def render_enrolment_summary(m: dict) -> str:
    ds, be = m["dataset"], m["backend"]
    fp = be.get("fingerprint") or {}
    lines = [f"# {m['experiment']}", "",
             f"- Dataset: **{ds['name']}**, {ds['n_samples']} images.",
             f"- Protocol: **{m['protocol']['name']}** (enrolment only: every image enrolled, nothing compared).",
             f"- Backend: **{be['name']}** ({be['family']}; {fp.get('model', '')}, detector {fp.get('detector', '?')}).",
             "", "Failure to enrol (FTE): images the detector / backend could not turn into a template, over the "
             "group's images; exact (Clopper-Pearson) 95% intervals, the one-sided upper bound when none failed, "
             "and the clustered bootstrap 95% interval. " + _boot_sentence(m), ""]
    cur = None
    for attr, g, e in _entries(m):
        if attr != cur:
            title = "Overall" if attr == "overall" else f"By {attr}"
            lines += ["", f"## {title}", ""]
            if attr in (ds.get("label_sources") or {}):
                lines += [f"Labels: {ds['label_sources'][attr]}", ""]
            lines += ["| group | images | FTE [exact 95% CI] | bootstrap 95% CI | reasons |", "|---|---:|---|---|---|"]
            cur = attr
        lines.append(f"| {g} | {e['fte']['n']} | {_rate(e['fte'])} | {_boot(e['fte'])} | {_reasons(e)} |")
    for attr, d in ((m.get("enrolment") or {}).get("disparity") or {}).items():
        r = d["fte_max_min_ratio"]
        lines += ["", f"- FTE max/min ratio by {attr}: " + (f"**{r['value']:.3g}**" if r["value"] is not None
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
    body = [f"<header><h1>{esc(title)}</h1><p class=\"sub\">{esc(ds['name'])} · enrolment only · backend "
            f"{esc(be['name'])} (detector {esc(str(fp.get('detector', '?')))}) · {esc(str(m.get('schema')))}</p></header>",
            '<section id="headline"><h2>Failure to enrol per group</h2><p>Images the detector / backend could not turn '
            "into a template, over the group's images, with the failure reasons; exact 95% Clopper-Pearson intervals "
            f"(the one-sided upper bound when none failed) and the clustered bootstrap interval. {esc(_boot_sentence(m))} "
            "Nothing is compared: this data has no identities.</p>"]
    cur = None
    for attr, g, e in _entries(m):
        if attr != cur:
            if cur is not None:
                body.append("</tbody></table>")
            body.append(f"<h3>{'Overall' if attr == 'overall' else 'By ' + esc(attr)}</h3>"
                        "<table><thead><tr><th>group</th><th>images</th><th>FTE [exact 95% CI]</th><th>bootstrap 95% CI</th>"
                        "<th>reasons</th></tr></thead><tbody>")
            cur = attr
        f = e["fte"]
        body.append(f'<tr><td>{esc(g)}</td><td>{f["n"]}</td><td data-metric="enrolment.{esc(attr)}.{esc(g)}.fte" '
                    f'data-value="{f["rate"]}">{esc(_rate(f))}</td><td>{esc(_boot(f))}</td><td>{esc(_reasons(e))}</td></tr>')
    body.append("</tbody></table></section>")
    png = run_dir / "fte.png"
    if png.is_file():
        b64 = base64.b64encode(png.read_bytes()).decode()
        body.append(f'<section id="figures"><h2>Figure</h2><img alt="failure to enrol per group" '
                    f'src="data:image/png;base64,{b64}" style="max-width:100%"></section>')
    body.append(scope_html(m))
    src = "".join(f"<li><b>{esc(a)}</b>: {esc(s)}</li>" for a, s in (ds.get("label_sources") or {}).items())
    body.append(f'<section id="provenance"><h2>Provenance</h2><ul>{src}</ul><p>Backend fingerprint: '
                f"{esc(str(fp))}</p></section>")
    body.append("<footer>Written by evalkit from this run folder only. Self-contained.</footer>")
    return page(title, body)
