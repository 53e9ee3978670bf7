"""The sections of the HTML report that only a one-to-many search run has (``kind == "search"``):
CMC, FPIR/FNIR by gallery size, false candidates, the audit at a vendor's threshold, failed
searches. ``evalkit.report.html.render_report`` writes everything else (headline, group tables,
disparity, intersections, failure to enrol, provenance, caveats) for both kinds of run through one
code path, and calls :func:`sections` and :func:`failed_section`. This module imports nothing from
``evalkit.report.html`` (no import cycle), only the shared formatting of ``evalkit.report.fmt``.

Figures: the pipeline's cmc_<attr>.svg, search_size_<attr>.svg, false_candidates_<attr>.svg,
audit_<attr>.svg; a missing one is drawn here from metrics.json. Every number carries ``data-key``
(its dotted path in metrics.json, list elements by index: ``search.by_gallery_size.overall.fpir.0.rate``,
``search.audit.0.overall.fpir.rate``) and ``data-value`` (its exact JSON text). Definitions:
``evalkit.metrics.search``.
"""

from __future__ import annotations

from pathlib import Path

from . import plots
from .fmt import Figures, ci_text, esc, get, num, pct, pipeline_svg, rate_cells, rate_text

RATES = {"fpir": "FPIR", "fnir": "FNIR", "fnir_rank1": "FNIR rank 1"}


def _attrs(m: dict) -> list[str]:
    order = [*(get(m, "dataset", "attributes") or []), *m.get("groups", {})]
    return [a for a in dict.fromkeys(order) if a in m.get("groups", {})]


class _Figs:
    """The pipeline's SVG of a search figure, or the figure drawn here from metrics.json."""

    def __init__(self, m: dict, run_dir: Path, figs: Figures):
        self.specs = {stem: make for stem, _, make in plots.search_figures(m)}
        self.run_dir, self.figs = run_dir, figs

    def block(self, stem: str, caption: str, label: str) -> str:
        svg = pipeline_svg(self.run_dir, stem)
        if svg is None and stem in self.specs:
            svg = plots.figure_svg(self.specs[stem]())
            caption += " (drawn from metrics.json: the run folder has no figure file)"
        if svg is None:
            return f'<p class="absent">{esc(label)}: not available.</p>'
        return self.figs.block(svg, caption, label)


def _cmc_section(m: dict, figs: _Figs) -> str:
    s = m["search"]
    cmc = s["cmc"]
    K = len(cmc["ranks"])
    ranks = [r for r in dict.fromkeys([1, 5, 10, s["candidates"], K]) if r <= K]
    out = ['<section id="cmc"><h2>CMC: rank-k identification rate</h2>',
           "<p>CMC(k): the share of mated searches whose mate is among the k nearest enrolled subjects, with no "
           "threshold (ISO/IEC 19795-1); 1 − CMC(1) is FNIR at rank 1. Full gallery; intervals: probe-subject "
           "bootstrap.</p>"]
    for attr in _attrs(m):
        rows = []
        items = [("all mated probes", "search.cmc.overall", cmc["overall"])] + [
            (g, f"search.cmc.groups.{attr}.{g}", e) for g, e in cmc["groups"].get(attr, {}).items()]
        for g, key, e in items:
            cells = (f'<td class="count">{num(f"{key}.n", e.get("n"))} / {num(f"{key}.subjects", e.get("subjects"))}</td>')
            for r in ranks:
                v = e["rate"][r - 1]
                ci = (e.get("ci_boot") or [None] * K)[r - 1]
                cells += (f'<td class="rate">{num(f"{key}.rate.{r - 1}", v, pct(v))}'
                          + (f'<br><span class="boot">{num(f"{key}.ci_boot.{r - 1}", ci, ci_text(ci))}</span>'
                             if ci and ci[0] is not None else "") + "</td>")
            rows.append(f"<tr><th scope=row>{esc(g)}</th>{cells}</tr>")
        out.append(f"<h3>By probe {esc(attr)}</h3>")
        out.append(f'<div class="tablewrap"><table><caption>CMC by probe {esc(attr)} at ranks '
                   f'{", ".join(str(r) for r in ranks)}</caption><thead><tr><th scope=col>Probe group</th>'
                   "<th scope=col>Mated searches / subjects</th>"
                   + "".join(f"<th scope=col>CMC({r})</th>" for r in ranks)
                   + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
        out.append(figs.block(f"cmc_{attr}", f"CMC by probe {esc(attr)}: identification rate against rank (log "
                              "scale), bands: 95% probe-subject bootstrap intervals; dashed grey: groups flagged small "
                              "for FNIR.", f"CMC by {attr}"))
    out.append("</section>")
    return "".join(out)


def _size_section(m: dict, figs: _Figs) -> str:
    s = m["search"]
    b = s["by_gallery_size"]
    sizes = b["sizes"]
    out = ['<section id="gallery-size"><h2>FPIR and FNIR by gallery size</h2>',
           "<p>The same threshold on nested galleries (each larger gallery contains the smaller ones). FPIR grows with "
           "the gallery: every enrolled subject is one more chance of a false candidate. FNIR counts only mated probes "
           "whose mate is enrolled in that gallery.</p>"]
    for attr in _attrs(m):
        out.append(f"<h3>By probe {esc(attr)}</h3>")
        for rate in ("fpir", "fnir"):
            rows = []
            items = [("all probes", f"search.by_gallery_size.overall.{rate}", b["overall"][rate])] + [
                (g, f"search.by_gallery_size.groups.{attr}.{g}.{rate}", v[rate]) for g, v in b["groups"].get(attr, {}).items()]
            for g, key, per in items:
                cells = ""
                for j, e in enumerate(per):
                    k = f"{key}.{j}"
                    v = e.get("rate")
                    iv = e.get("ci_boot") if e.get("ci_boot") and e["ci_boot"][0] is not None else None
                    civ = (f'<br><span class="boot">{num(f"{k}.ci_boot", iv, ci_text(iv))}</span>' if iv else
                           (f'<br><span class="iv">{num(f"{k}.ci", e["ci"], ci_text(e["ci"]))} exact</span>'
                            if e.get("ci") and e["ci"][0] is not None else ""))
                    if v == 0 and e.get("upper") is not None:
                        civ += f'<br><span class="note">≤ {num(f"{k}.upper", e["upper"], pct(e["upper"]))}</span>'
                    cells += (f'<td class="rate">{num(f"{k}.rate", v, rate_text(v))} <span class="cnt">('
                              f'{num(f"{k}.errors", e.get("errors"))}/{num(f"{k}.n", e.get("n"))})</span>{civ}</td>')
                rows.append(f"<tr><th scope=row>{esc(g)}</th>{cells}</tr>")
            out.append(f'<div class="tablewrap"><table><caption>{RATES[rate]} at the threshold by gallery size '
                       f'(enrolled subjects), by probe {esc(attr)}</caption><thead><tr><th scope=col>Probe group</th>'
                       + "".join(f"<th scope=col>{num(f'search.by_gallery_size.sizes.{j}', n)}</th>" for j, n in enumerate(sizes))
                       + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
        out.append(figs.block(f"search_size_{attr}", f"FPIR (left) and FNIR (right) at the operating threshold against "
                              f"the gallery size, by probe {esc(attr)}; bars: 95% intervals (bootstrap, else exact); "
                              "open triangles: zero observed, drawn at the 95% upper bound.",
                              f"FPIR and FNIR against gallery size by {attr}"))
    out.append("</section>")
    return "".join(out)


def _fc_table(key: str, fc: dict, caption: str) -> str:
    """False candidates by probe group x candidate group (non-mated probes), with each candidate
    group's share of the gallery and of all the false candidates."""
    cols = fc["candidate_labels"]
    nm = fc["nonmated"]
    share = fc.get("gallery_share") or {}
    head = ("<tr><th scope=col>Probe group (non-mated probes)</th>"
            + "".join(f"<th scope=col>{esc(c)}</th>" for c in cols) + "<th scope=col>Non-mated probes</th></tr>")
    rows = ['<tr class="overall"><th scope=row><i>share of the gallery</i></th>'
            + "".join(f'<td class="count">{num(f"{key}.gallery_share.{c}", share.get(c), pct(share.get(c)))}</td>' for c in cols)
            + "<td></td></tr>"]
    totals = [0] * len(cols)
    for i, g in enumerate(fc["probe_labels"]):
        counts = nm["false_candidates"][i]
        totals = [a + c for a, c in zip(totals, counts)]
        rows.append(f"<tr><th scope=row>{esc(g)}</th>"
                    + "".join(f'<td class="count">{num(f"{key}.nonmated.false_candidates.{i}.{j}", c)}</td>'
                              for j, c in enumerate(counts))
                    + f'<td class="count">{num(f"{key}.nonmated.n_probes.{i}", nm["n_probes"][i])}</td></tr>')
    grand = sum(totals)
    rows.append('<tr class="mixed"><th scope=row>share of all false candidates</th>'
                + "".join(f'<td class="count">{pct(t / grand) if grand else "–"}</td>' for t in totals) + "<td></td></tr>")
    return (f'<div class="tablewrap"><table><caption>{caption}</caption><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _false_candidates_section(m: dict, figs: _Figs) -> str:
    s = m["search"]
    out = ['<section id="false-candidates"><h2>Who is returned falsely: false candidates</h2>',
           "<p>Enrolled subjects returned at the operating threshold (within the candidate list, full gallery) to "
           "non-mated probes, people who are not in the gallery, by the probe's group (rows) and the returned "
           "subject's group (columns). Compare the last row with the first: a candidate group returned more often "
           "than its share of the gallery is over-represented among the false candidates.</p>"]
    for attr in _attrs(m):
        fc = (s.get("false_candidates") or {}).get(attr)
        if not fc:
            continue
        out.append(f"<h3>By {esc(attr)}</h3>")
        out.append(_fc_table(f"search.false_candidates.{attr}", fc,
                             f"False candidates for non-mated probes by {esc(attr)} (counts)"))
        out.append(figs.block(f"false_candidates_{attr}", f"False candidates for non-mated probes by {esc(attr)}: "
                              "counts and the share of each row's false candidates; column labels carry each group's "
                              "share of the gallery.", f"False candidates by {attr}"))
    out.append("</section>")
    return "".join(out)


def _audit_section(m: dict, figs: _Figs) -> str:
    s = m["search"]
    audit = s.get("audit") or []
    out = ['<section id="audit"><h2>Audit at a vendor\'s fixed threshold</h2>']
    if not audit:
        out.append('<p class="absent">No fixed threshold audited (protocol.audit_thresholds is empty and no '
                   "DeepFace default applies).</p></section>")
        return "".join(out)
    for i, a in enumerate(audit):
        k = f"search.audit.{i}"
        o = a["overall"]
        fp, fn = o["fpir"], o["fnir"]
        t = a["threshold"]
        out.append(f"<h3>Threshold {num(f'{k}.threshold', t, f'{t:.6g}')}</h3>"
                   f'<p class="src">Source: {esc(a.get("source") or "not recorded")}</p>')
        ci = fp.get("ci_boot") or fp.get("ci")
        out.append(f'<p class="readings">Of {num(f"{k}.overall.fpir.n", fp.get("n"))} people not in the database '
                   f"(non-mated probes against the {num(f'{k}.gallery_size', a.get('gallery_size'))}-subject gallery, "
                   f"candidate list {esc(a.get('candidates'))}), <b>{num(f'{k}.overall.fpir.errors', fp.get('errors'))} "
                   f"({num(f'{k}.overall.fpir.rate', fp.get('rate'), rate_text(fp.get('rate')))}) got at least one "
                   f"false candidate</b> at threshold {t:.6g}"
                   + (f" (95% CI {esc(ci_text(ci))})" if ci and ci[0] is not None else "")
                   + f"; {num(f'{k}.overall.false_candidates', o.get('false_candidates'))} false candidates in all. "
                   f"At the same threshold, FNIR is {num(f'{k}.overall.fnir.rate', fn.get('rate'), rate_text(fn.get('rate')))} "
                   f"({num(f'{k}.overall.fnir.errors', fn.get('errors'))} of {num(f'{k}.overall.fnir.n', fn.get('n'))} "
                   "mated searches missed).</p>")
        for attr in _attrs(m):
            per = (a.get("groups") or {}).get(attr) or {}
            if not per:
                continue
            items, rows = [], []
            for g, e in per.items():
                gk = f"{k}.groups.{attr}.{g}"
                sf, sn = e.get("share_of_falsely_matched"), e.get("share_of_nonmated_probes")
                if sf is None:
                    items.append(f"<li><b>{esc(g)}</b> makes up {num(f'{gk}.share_of_nonmated_probes', sn, pct(sn))} of "
                                 "the non-mated probes; nobody was falsely matched at this threshold.</li>")
                else:
                    items.append(f"<li><b>{esc(g)}</b> makes up {num(f'{gk}.share_of_falsely_matched', sf, pct(sf))} of "
                                 f"those falsely matched and {num(f'{gk}.share_of_nonmated_probes', sn, pct(sn))} of the "
                                 "non-mated probes.</li>")
                rows.append(f"<tr><th scope=row>{esc(g)}</th>" + rate_cells(f"{gk}.fpir", e.get("fpir"))
                            + rate_cells(f"{gk}.fnir", e.get("fnir"))
                            + f'<td class="count">{num(f"{gk}.false_candidates", e.get("false_candidates"))}</td></tr>')
            out.append(f"<h4>By probe {esc(attr)}</h4><ul>{''.join(items)}</ul>")
            out.append(f'<div class="tablewrap"><table><caption>Audit at threshold {t:.6g} by probe {esc(attr)}</caption>'
                       "<thead><tr><th scope=col>Probe group</th><th scope=col>FPIR (falsely matched / non-mated)</th>"
                       "<th scope=col>95% CI</th><th scope=col>FNIR (missed / mated)</th><th scope=col>95% CI</th>"
                       f"<th scope=col>False candidates</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
            fc = (a.get("false_candidates") or {}).get(attr)
            if fc:
                out.append(_fc_table(f"{k}.false_candidates.{attr}", fc,
                                     f"False candidates at threshold {t:.6g} by {esc(attr)} (counts)"))
    for attr in _attrs(m):
        out.append(figs.block(f"audit_{attr}", f"Per probe {esc(attr)} group: its share of the non-mated probes that "
                              "were falsely matched (at least one false candidate) next to its share of all non-mated "
                              "probes, one panel per audited threshold; right: the group's FPIR at that threshold.",
                              f"Audit at fixed thresholds by {attr}"))
    out.append("</section>")
    return "".join(out)


def failed_section(m: dict, fte_html: str) -> str:
    """Failed searches, then the failure-to-enrol table and figure (``fte_html``, shared with 1:1 runs)."""
    fs = m["search"].get("failed_searches") or {}
    k = "search.failed_searches"
    rows = "".join(f"<tr><th scope=row>{esc(label)}</th><td class=count>{num(f'{k}.{f}', fs.get(f))}</td></tr>"
                   for f, label in (("mated_probe_failed", "mated probes without an embedding"),
                                    ("mate_not_enrolled", "mated probes whose mate has no gallery embedding"),
                                    ("nonmated_probe_failed", "non-mated probes without an embedding"),
                                    ("excluded", "searches left out of the rates")))
    return (f'<section id="fte"><h2>Failed searches and failure to enrol</h2><p>Failure policy '
            f"<i>{esc(fs.get('policy') or m.get('failure_policy'))}</i>: {esc(fs.get('note', ''))}.</p>"
            f'<div class="tablewrap"><table class="kv"><caption>Failed searches</caption><tbody>{rows}</tbody></table></div>'
            f"{fte_html}</section>")


def sections(m: dict, run_dir: Path, figs: Figures) -> list[str]:
    """The sections only a search run has: CMC, gallery size, false candidates, audit."""
    sfigs = _Figs(m, run_dir, figs)
    return [_cmc_section(m, sfigs), _size_section(m, sfigs), _false_candidates_section(m, sfigs),
            _audit_section(m, sfigs)]
