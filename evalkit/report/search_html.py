"""The HTML report of a one-to-many search run (``protocol.kind == "search"``).

Called by ``evalkit.report.html.render_report`` for search runs; same page style, same rules: one
self-contained file (inline CSS and SVG, no script, no network), written from the run folder only
(metrics.json, record.json and the figures the pipeline wrote: cmc_<attr>.svg,
search_size_<attr>.svg, false_candidates_<attr>.svg, audit_<attr>.svg, fte.svg; a missing figure
is drawn here from metrics.json).

Every number taken from metrics.json carries ``data-key`` (its dotted path in metrics.json, list
elements by index: ``search.groups.sex.female.fpir.rate``,
``search.by_gallery_size.overall.fpir.0.rate``, ``search.audit.0.overall.fpir.rate``) and
``data-value`` (its exact JSON text), so a test can check the page against metrics.json. The
metric definitions are in ``evalkit.metrics.search``; the block schema in
``evalkit.metrics.search_summary``.
"""

from __future__ import annotations

from pathlib import Path

from ..backends.scoring_base import backend_scores_text, direction_of, words
from ..labels import SPECIAL_LABELS
from . import plots
from .html import (_Figures, _fte_figure, _fte_table, _get, _pipeline_svg, _provenance_section,
                   _threshold_text, ci_text, esc, num, page, pct)

RATES = {"fpir": "FPIR", "fnir": "FNIR", "fnir_rank1": "FNIR rank 1"}
RATE_LONG = {"fpir": "FPIR (false positives / non-mated searches)",
             "fnir": "FNIR at the threshold (misses / mated searches)",
             "fnir_rank1": "FNIR rank 1 (mate not first / mated searches)"}


def _attrs(m: dict) -> list[str]:
    s = m["search"]
    order = [*(_get(m, "dataset", "attributes") or []), *s.get("groups", {})]
    return [a for a in dict.fromkeys(order) if a in s.get("groups", {})]


def _rate_text(v) -> str:
    return "n/a (no searches)" if v is None else pct(v)


def _rate_cells(key: str, e: dict | None) -> str:
    """Two cells for one rate entry at ``key``: the rate with errors/n, and its intervals (the
    probe-subject bootstrap one first when there is one, the exact one below; zero errors: the
    exact one-sided upper bound)."""
    if not e:
        return '<td class="rate">n/a</td><td></td>'
    v = e.get("rate")
    cell = (f'<td class="rate">{num(f"{key}.rate", v, _rate_text(v))} <span class="cnt">('
            f'{num(f"{key}.errors", e.get("errors"))}/{num(f"{key}.n", e.get("n"))})</span></td>')
    parts = []
    if v is not None:
        boot = e.get("ci_boot")
        if boot and boot[0] is not None:
            parts.append(f'<span class="boot">{num(f"{key}.ci_boot", boot, ci_text(boot))} (bootstrap)</span>')
        elif e.get("ci_boot_reason"):
            parts.append(f'<span class="note">no bootstrap interval: {esc(e["ci_boot_reason"])}</span>')
        ci = e.get("ci")
        if ci and ci[0] is not None:
            parts.append(f'<span class="iv">{num(f"{key}.ci", ci, ci_text(ci))} (exact)</span>')
        if v == 0 and e.get("upper_bound") is not None:
            ub = e["upper_bound"]
            parts.append(f'<span class="note">0 observed; upper bound {num(f"{key}.upper_bound", ub, pct(ub))}</span>')
    return cell + f'<td class="ci">{"<br>".join(parts)}</td>'


def _small_badge(e: dict) -> str:
    flags = [(RATES[r], e.get(f"small_{r}_reason") or "flagged small") for r in ("fpir", "fnir") if e.get(f"small_{r}")]
    if not flags:
        return ""
    title = "; ".join(f"{r}: {why}" for r, why in flags)
    return f' <span class="badge" title="{esc(title)}">small ({" and ".join(r for r, _ in flags)})</span>'


def _group_table(base: str, groups: dict, caption: str, overall: dict | None = None) -> str:
    head = ("<tr><th scope=col>Probe group</th><th scope=col>Probe subjects (non-mated / mated)</th>"
            + "".join(f"<th scope=col>{RATE_LONG[r]}</th><th scope=col>95% CI</th>" for r in RATES) + "</tr>")
    rows = []
    items = ([("all probes", "search.overall", overall, "overall")] if overall is not None else []) + [
        (g, f"{base}.{g}", e, "small" if (e.get("small_fpir") or e.get("small_fnir")) else "") for g, e in groups.items()]
    for label, key, e, cls in items:
        badge = _small_badge(e) if cls != "overall" else ""
        cells = (f'<th scope=row>{esc(label)}{badge}</th><td class="count">'
                 f'{num(f"{key}.fpir.n_subjects", _get(e, "fpir", "n_subjects"))} / '
                 f'{num(f"{key}.fnir.n_subjects", _get(e, "fnir", "n_subjects"))}</td>')
        cells += "".join(_rate_cells(f"{key}.{r}", e.get(r)) for r in RATES)
        rows.append(f'<tr class="{cls}">{cells}</tr>')
    return (f'<div class="tablewrap"><table class="groups"><caption>{caption}</caption><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody><tfoot><tr><td colspan=8>Rows marked <i>small</i> have too few probe '
            "subjects or searches of a kind for a stable rate; they stay in the table and leave the disparity "
            "summaries.</td></tr></tfoot></table></div>")


def _key_figures(m: dict) -> str:
    s, th, pr = m["search"], m.get("threshold", {}), m.get("protocol", {})
    o = s["overall"]
    cards = []

    def card(value_html, label):
        cards.append(f'<div class="kf"><span class="v">{value_html}</span><span class="l">{label}</span></div>')

    for r, what in (("fpir", "non-mated searches with a false candidate"), ("fnir", "mated searches missed at the threshold"),
                    ("fnir_rank1", "mated searches whose mate is not first")):
        e = o[r]
        card(num(f"search.overall.{r}.rate", e.get("rate"), _rate_text(e.get("rate"))),
             f"{RATES[r]} overall: {esc(e.get('errors'))} of {esc(e.get('n'))} {what}")
    if th.get("value") is not None:
        card(num("threshold.value", th["value"], f"{th['value']:.4g}"),
             f"threshold ({esc(th.get('policy'))}" + (f", target FPIR {th['target_fpir']:g}" if th.get("target_fpir") else "") + ")")
    card(num("search.gallery_size", s.get("gallery_size")),
         f"enrolled subjects in the gallery (candidate list {esc(s.get('candidates'))}; "
         f"{esc(pr.get('n_mated_probes'))} mated, {esc(pr.get('n_nonmated_probes'))} non-mated probes)")
    fi = _get(m, "failures", "images") or {}
    card(num("failures.images.rate", fi.get("rate"), pct(fi.get("rate"))),
         f"failed to enrol ({esc(fi.get('failed'))} of {esc(fi.get('n'))} images)")
    return f'<div class="keyfigs">{"".join(cards)}</div>'


def _reading(rate: str, d: dict, groups: dict) -> str:
    name = RATES[rate]
    v, ci = d.get("value"), d.get("ci")
    if v is None:
        return f"{name} max/min ratio not defined: {esc(d.get('reason') or 'no value')}"
    cl = (f" (95% CI {ci[0]:.2f}–{ci[1]:.2f})" if ci and ci[0] is not None and ci[1] is not None
          else f" (no interval: {esc(d.get('ci_reason') or 'bootstrap off')})")
    used = [g for g in (d.get("groups") or []) if _get(groups, g, rate, "rate") is not None]
    if used:
        hi = max(used, key=lambda g: groups[g][rate]["rate"])
        lo = min(used, key=lambda g: groups[g][rate]["rate"])
        return f"the highest group {name} ({esc(hi)}) is {v:.2f}x the lowest ({esc(lo)}){cl}"
    return f"the highest group {name} is {v:.2f}x the lowest{cl}"


def _readings(m: dict) -> str:
    s = m["search"]
    items = []
    for attr in _attrs(m):
        block = (s.get("disparity") or {}).get(attr) or {}
        for rate in ("fpir", "fnir"):
            d = block.get(f"{rate}_max_min_ratio")
            if d:
                items.append(f"{esc(attr)}: " + _reading(rate, d, s["groups"][attr]))
    if not items:
        return ""
    return ('<div class="readings"><b>Readings</b> (disparity at the operating threshold and the full gallery, '
            "labelled groups not flagged small)<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul></div>")


def _disparity_section(m: dict) -> str:
    s = m["search"]
    mc = m.get("min_count") or {}
    out = ['<section id="disparity"><h2>Disparity summaries</h2>',
           f"<p>Max/min ratios of FPIR and of FNIR across the labelled probe groups not flagged small (at least "
           f"{esc(mc.get('subjects'))} probe subjects and {esc(mc.get('comparisons'))} searches of the kind; unlabelled, "
           "conflict and multiple never enter), at the operating threshold and the full gallery. "
           + ("Intervals: probe-subject cluster bootstrap, percentile. The max/min interval is that of the ratio of "
              "the two groups named, highest over lowest, resampled: read it "
              "together with the group intervals." if m.get("bootstrap") else
              "No intervals: the bootstrap was switched off (bootstrap.replicates=0).") + "</p>"]
    for attr in _attrs(m):
        block = (s.get("disparity") or {}).get(attr)
        if not block:
            out.append(f'<p class="absent">Not computed for {esc(attr)}.</p>')
            continue
        rows = []
        for rate in ("fpir", "fnir"):
            name = f"{rate}_max_min_ratio"
            d = block.get(name)
            if d is None:
                continue
            key = f"search.disparity.{attr}.{name}"
            v = d.get("value")
            ci = d.get("ci")
            rows.append(f"<tr><th scope=row>{RATES[rate]} max/min ratio</th>"
                        + num(f"{key}.value", v, "n/a" if v is None else f"{v:.2f}", "td", "rate")
                        + "<td class=ci>" + (num(f"{key}.ci", ci, f"{ci[0]:.3g} – {ci[1]:.3g}") if ci and ci[0] is not None
                                             else esc(d.get("ci_reason") or "")) + "</td>"
                        + f'<td class="reading">{_reading(rate, d, s["groups"][attr])}<br><span class="src">'
                        f'{esc(d.get("definition", ""))}. {esc(d.get("source", ""))}</span></td></tr>')
        for rate in ("fpir", "fnir"):
            r = block.get(f"{rate}_ratio_to_reference") or {}
            for g, e in (r.get("by_group") or {}).items():
                key = f"search.disparity.{attr}.{rate}_ratio_to_reference.by_group.{g}"
                v, ci = e.get("value"), e.get("ci")
                rows.append(f"<tr><th scope=row>{RATES[rate]} {esc(g)} / {esc(r.get('reference'))}</th>"
                            + num(f"{key}.value", v, "n/a" if v is None else f"{v:.2f}", "td", "rate")
                            + "<td class=ci>" + (num(f"{key}.ci", ci, f"{ci[0]:.3g} – {ci[1]:.3g}")
                                                 if ci and ci[0] is not None
                                                 else esc(e.get("ci_reason") or e.get("reason") or "")) + "</td>"
                            + f'<td class="reading">{RATES[rate]} of {esc(g)} relative to {esc(r.get("reference"))} '
                            f'(reference: {esc(r.get("reference_rule"))})<br><span class="src">'
                            f'{esc(r.get("definition", ""))}. {esc(r.get("source", ""))}</span></td></tr>')
        out.append(f'<div class="tablewrap"><table class="disparity"><caption>Disparity by probe {esc(attr)}</caption>'
                   "<thead><tr><th scope=col>Summary</th><th scope=col>Value</th><th scope=col>95% CI</th>"
                   f"<th scope=col>Reading</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    out.append("</section>")
    return "".join(out)


class _Figs:
    """The pipeline's SVG of a search figure, or the figure drawn here from metrics.json."""

    def __init__(self, m: dict, run_dir: Path, figs: _Figures):
        self.specs = {stem: make for stem, _, make in plots.search_figures(m)}
        self.run_dir, self.figs = run_dir, figs

    def block(self, stem: str, caption: str, label: str) -> str:
        svg = _pipeline_svg(self.run_dir, stem)
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
            cells = (f'<td class="count">{num(f"{key}.n", e.get("n"))} / {num(f"{key}.n_subjects", e.get("n_subjects"))}</td>')
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
                    if v == 0 and e.get("upper_bound") is not None:
                        civ += f'<br><span class="note">≤ {num(f"{k}.upper_bound", e["upper_bound"], pct(e["upper_bound"]))}</span>'
                    cells += (f'<td class="rate">{num(f"{k}.rate", v, _rate_text(v))} <span class="cnt">('
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
                   f"({num(f'{k}.overall.fpir.rate', fp.get('rate'), _rate_text(fp.get('rate')))}) got at least one "
                   f"false candidate</b> at threshold {t:.6g}"
                   + (f" (95% CI {esc(ci_text(ci))})" if ci and ci[0] is not None else "")
                   + f"; {num(f'{k}.overall.false_candidates', o.get('false_candidates'))} false candidates in all. "
                   f"At the same threshold, FNIR is {num(f'{k}.overall.fnir.rate', fn.get('rate'), _rate_text(fn.get('rate')))} "
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
                rows.append(f"<tr><th scope=row>{esc(g)}</th>" + _rate_cells(f"{gk}.fpir", e.get("fpir"))
                            + _rate_cells(f"{gk}.fnir", e.get("fnir"))
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


def _failed_section(m: dict, run_dir: Path, figs: _Figures) -> str:
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
            f"{_fte_table(m)}{_fte_figure(m, run_dir, figs)}</section>")


def _caveats_section(m: dict) -> str:
    s = m["search"]
    mc = m.get("min_count") or {}
    items = []
    for attr in _attrs(m):
        small = [(g, e) for g, e in s["groups"][attr].items() if e.get("small_fpir") or e.get("small_fnir")]
        if small:
            items.append(f"<li><b>Sparse groups ({esc(attr)}):</b> fewer than {esc(mc.get('subjects'))} probe subjects "
                         f"or {esc(mc.get('comparisons'))} searches of a kind: "
                         + "; ".join(f"<i>{esc(g)}</i> ({esc('; '.join(RATES[r] + ': ' + (e.get(f'small_{r}_reason') or '') for r in ('fpir', 'fnir') if e.get(f'small_{r}')))})"
                                     for g, e in small)
                         + ". Shown with their intervals; left out of the disparity summaries.</li>")
        cov = _get(m, "dataset", "label_coverage", attr) or {}
        tot = sum(c.get("subjects", 0) for c in cov.values())
        parts = [f"{esc(g)} {cov[g].get('subjects', 0)} of {tot} subjects" for g in SPECIAL_LABELS if g in cov]
        src = _get(m, "dataset", "label_sources", attr) or "source not recorded"
        items.append(f"<li><b>Labels ({esc(attr)}):</b> third-party annotations: {esc(src)} "
                     + (f"Explicit groups, never dropped: {'; '.join(parts)}." if parts else
                        "Every image the protocol uses carries a label.") + "</li>")
    boot = m.get("bootstrap")
    items.append("<li><b>Intervals:</b> "
                 + (f"the bootstrap ones ({esc(boot.get('replicates'))} replicates, seed {esc(boot.get('seed'))}) "
                    "resample probe subjects, all of a person's searches together; they do not resample gallery "
                    "subjects, so an enrolled subject who attracts many probes (a correlation across searches) is not "
                    "captured. " if boot else "no bootstrap for this run; ")
                 + "The exact (Clopper-Pearson) ones treat searches as independent and are too narrow when a person "
                 "has several probes.</li>")
    items.append("<li><b>Gallery size and candidate list:</b> FPIR grows with the gallery and FNIR depends on the "
                 "candidate-list length; compare runs only at equal sizes and lists.</li>")
    th = m.get("threshold", {})
    if th.get("resolvable") is False:
        items.append("<li><b>Threshold:</b> the target FPIR is below 1/(number of non-mated searches): it cannot be "
                     "resolved on this data.</li>")
    if str(_get(m, "dataset", "name", default="")).lower().startswith("lfw"):
        items.append("<li><b>LFW:</b> its authors warn that LFW must not be used to conclude that an algorithm suits "
                     "commercial use. Most LFW subjects have a single image, so the gallery holds few thousand people "
                     "and non-mated probes are mostly people with one photo; a real mugshot database is far larger, "
                     "and FPIR grows with it.</li>")
    return f'<section id="caveats"><h2>Caveats</h2><ul>{"".join(items)}</ul></section>'


def render_search_report(run_dir: Path, m: dict, rec: dict) -> str:
    """The report of a search run folder as one HTML string (see module docstring)."""
    s = m["search"]
    figs = _Figures()
    sfigs = _Figs(m, run_dir, figs)
    ds, pr, be = m.get("dataset", {}), m.get("protocol", {}), m.get("backend", {})
    title = f"evalkit report: {m.get('experiment', run_dir.name)}"
    body = [f"<header><h1>{esc(title)}</h1>"
            f'<p class="sub">{esc(ds.get("name"))} · one-to-many search ({esc(pr.get("name"))}) · backend '
            f'{esc(be.get("name"))} ({esc(backend_scores_text(be))}) · failure policy {esc(m.get("failure_policy"))} · '
            f'{esc(m.get("schema"))}</p>'
            '<nav aria-label="Sections"><a href="#headline">Headline</a><a href="#disparity">Disparity</a>'
            '<a href="#cmc">CMC</a><a href="#gallery-size">Gallery size</a><a href="#false-candidates">False candidates</a>'
            '<a href="#audit">Audit</a><a href="#intersections">Intersections</a><a href="#fte">Failures</a>'
            '<a href="#provenance">Provenance</a><a href="#caveats">Caveats</a></nav></header>']
    body.append('<section id="headline"><h2>Headline: FPIR and FNIR at the operating threshold</h2>')
    body.append(
        f"<p>The mugshot-database scenario: {num('protocol.n_enrolled_subjects', pr.get('n_enrolled_subjects'))} enrolled "
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
    body.append(_key_figures(m))
    body.append(_readings(m))
    for attr in _attrs(m):
        body.append(_group_table(f"search.groups.{attr}", s["groups"][attr],
                                 f"By probe {esc(attr)}: FPIR and FNIR at the operating threshold, full gallery",
                                 overall=s["overall"]))
    body.append("</section>")
    body.append(_disparity_section(m))
    body.append(_cmc_section(m, sfigs))
    body.append(_size_section(m, sfigs))
    body.append(_false_candidates_section(m, sfigs))
    body.append(_audit_section(m, sfigs))
    inter = s.get("intersections") or {}
    body.append('<section id="intersections"><h2>Intersections</h2>'
                + ("".join(_group_table(f"search.intersections.{name}", groups, f"By probe {esc(name)}")
                           for name, groups in inter.items()) or '<p class="absent">None configured for this run.</p>')
                + "</section>")
    body.append(_failed_section(m, run_dir, figs))
    body.append(_provenance_section(m, rec))
    body.append(_caveats_section(m))
    body.append('<footer>Written by evalkit from this run folder only (metrics.json, record.json, the figures the run '
                "wrote). Self-contained: no scripts, fonts or images are loaded from anywhere.</footer>")
    return page(title, body)
