"""Report pieces for issue 12's statistics (NIST FRTE table, ISO/IEC 19795-10 score shifts,
intervals that say why they are missing, label provenance and label level), shared by report.html
and summary.md. Written only from metrics.json; every number shown in HTML carries ``data-key`` /
``data-value`` (interval ends included) so the browser test checks it against metrics.json."""

from __future__ import annotations

from .fmt import esc, num

#: measure -> (label, unit, formatter kind)
NIST_ROWS = {
    "overall": ("overall", "rate", "pct"),
    "min": ("lowest group", "rate", "pct"),
    "max": ("highest group", "rate", "pct"),
    "max_min_ratio": ("max / min", "ratio (1 = equal)", "x"),
    "max_minus_min": ("max − min", "percentage points", "pp"),
    "max_over_mean": ("max / mean", "ratio (1 = equal)", "x"),
    "max_over_geomean": ("max / geometric mean", "ratio (1 = equal)", "x"),
    "gini": ("Gini coefficient", "index 0–1 (0 = equal)", "g"),
}


def fmt(kind: str, v) -> str:
    """A value in the unit its row or column states (the unit is not repeated on the number):
    ``pct`` a rate, ``pp`` percentage points (2 decimals), ``x`` a ratio (2 decimals), ``g`` 3
    significant digits; the rules are ``mdtag.FORMATS["stat_<kind>"]`` (one rule for the report,
    the summary and compare)."""
    from .mdtag import FORMATS

    return "n/a" if v is None else FORMATS["stat_" + (kind if kind in ("pct", "pp", "x") else "g")](v)


def tagged_ci(key: str, ci, reason, kind: str) -> str:
    """Interval cell content: both ends tagged with their metrics.json path, or 'not estimable:
    <reason>' (never a zero-width interval, never an empty cell)."""
    if ci and ci[0] is not None and ci[1] is not None:
        return num(f"{key}.0", ci[0], fmt(kind, ci[0])) + " – " + num(f"{key}.1", ci[1], fmt(kind, ci[1]))
    return f'<span class="why">not estimable: {esc(reason or "no interval in metrics.json")}</span>'


def md_ci(ci, reason, kind: str, key: str = "") -> str:
    """summary.md's interval cell: both ends tagged with their metrics.json path (``mdtag``), or
    'not estimable: <reason>'."""
    from .mdtag import tag

    if ci and ci[0] is not None and ci[1] is not None:
        return f"{tag(f'{key}.0', fmt(kind, ci[0]), 'stat_' + kind)}–{tag(f'{key}.1', fmt(kind, ci[1]), 'stat_' + kind)}"
    return f"not estimable: {reason or 'no interval'}"


def md_level(m: dict) -> str:
    """The run's confidence level for a summary.md header ("95% "), tagged (``mdtag``)."""
    from .mdtag import num as tnum

    c = (m.get("bootstrap") or {}).get("confidence")
    return "95% " if c is None else tnum("bootstrap.confidence", c, "level") + " "


def md_num(key: str, v, kind: str) -> str:
    from .mdtag import tag

    return tag(key, fmt(kind, v), "stat_" + kind)


def label_level(m: dict, attr: str) -> str:
    return ((m.get("dataset") or {}).get("label_level") or {}).get(attr) or "subject"


def membership_sentence(m: dict) -> str:
    """How a comparison is assigned to a group, worded for per-subject or per-image labels."""
    levels = {label_level(m, a) for a in m.get("groups", {})}
    if levels == {"subject"}:
        return ("A genuine comparison belongs to a group when both images carry its label; an impostor "
                "comparison when both subjects do.")
    per_image = [a for a in m.get("groups", {}) if label_level(m, a) == "image"]
    return ("A comparison belongs to a group when both of its IMAGES carry the group's label. Labels of "
            f"{', '.join(per_image)} are per image (they change between one person's photographs, e.g. age at "
            "capture), so one person's genuine pair can join two groups; it is then counted as mixed.")


def mixed_note(m: dict, attr: str) -> str:
    if label_level(m, attr) == "image":
        return ("comparisons whose two images differ in label: impostor pairs across groups AND genuine pairs of "
                "one person photographed in two bands (labels here are per image)")
    return "comparisons whose two sides differ in group (mixed-group impostor pairs)"


def provenance(m: dict, attr: str) -> str | None:
    return ((m.get("dataset") or {}).get("label_provenance") or {}).get(attr)


def _nist_rows(m: dict, attr: str):
    block = (m.get("nist") or {}).get(attr) or {}
    return block.get("fnmr"), block.get("fmr")


def html_nist_section(m: dict) -> str:
    nist = m.get("nist")
    if not nist:
        return ""
    out = ['<section id="nist"><h2>NIST FRTE demographic table</h2>']
    out.append("<p>The measures NIST's FRTE demographics tables publish per algorithm, over the groups not flagged "
               "small, at the operating threshold. Intervals: " + esc(_rule(m)) + "</p>")
    for attr in nist:
        fn, fm = _nist_rows(m, attr)
        rows = []
        for name, (label, unit, kind) in NIST_ROWS.items():
            cells = ""
            for rate, b in (("fnmr", fn), ("fmr", fm)):
                e = (b or {}).get(name) or {}
                key = f"nist.{attr}.{rate}.{name}"
                why = "" if e.get("value") is not None else f'<br><span class="why">{esc(e.get("reason"))}</span>'
                cells += num(f"{key}.value", e.get("value"), fmt(kind, e.get("value")), "td", "rate")[:-5] + why + "</td>"
                cells += f'<td class="ci">{tagged_ci(f"{key}.ci", e.get("ci"), e.get("ci_reason"), kind)}</td>'
            worst = ""
            if name == "max":
                worst = f" ({esc((fn or {}).get('worst'))} / {esc((fm or {}).get('worst'))})"
            rows.append(f"<tr><th scope=row>{esc(label)}{worst}</th><td>{esc(unit)}</td>{cells}</tr>")
        out.append(f'<div class="tablewrap"><table class="nist"><caption>NIST FRTE table by {esc(attr)}; worst group '
                   "(FNMR / FMR) named beside the highest</caption><thead><tr><th scope=col>Measure</th>"
                   "<th scope=col>Unit</th><th scope=col>FNMR</th><th scope=col>FNMR 95% CI</th><th scope=col>FMR</th>"
                   f"<th scope=col>FMR 95% CI</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    out.append("</section>")
    return "".join(out)


def _rule(m: dict) -> str:
    for attr in m.get("nist") or {}:
        for rate in ("fnmr", "fmr"):
            r = ((m["nist"][attr].get(rate) or {}).get("max_min_ratio") or {}).get("ci_method")
            if r:
                return r
    return "none"


def html_score_shift_section(m: dict) -> str:
    ss = m.get("score_shifts")
    if not ss:
        return ""
    out = ['<section id="score-shifts"><h2>Comparison-score shifts by group (ISO/IEC 19795-10)</h2>']
    first = next(iter(ss.values()))
    defs = first.get("definitions", {})
    out.append("<p>" + " ".join(f"<b>{esc(k)}</b>: {esc(v)}." for k, v in defs.items())
               + f' <span class="src">{esc(first.get("source", ""))}</span></p>')
    for attr, block in ss.items():
        rows = []
        for g, row in block.get("by_group", {}).items():
            for kind in ("mated", "non_mated"):
                e = row.get(kind) or {}
                k = f"score_shifts.{attr}.by_group.{g}.{kind}"
                rows.append(
                    f"<tr><th scope=row>{esc(g)}</th><td>{esc(kind.replace('_', '-'))}</td>"
                    + num(f"{k}.n", e.get("n"), None, "td", "count")
                    + num(f"{k}.subjects", e.get("subjects"), None, "td", "count")
                    + num(f"{k}.mean_shift", e.get("mean_shift"), fmt("g", e.get("mean_shift")), "td", "rate")
                    + f'<td class="ci">{tagged_ci(f"{k}.ci", e.get("ci"), e.get("ci_reason"), "g")}</td>'
                    + num(f"{k}.standardised_shift", e.get("standardised_shift"), fmt("g", e.get("standardised_shift")),
                          "td", "rate")
                    + f'<td class="ci">{tagged_ci(f"{k}.standardised_ci", e.get("standardised_ci"), e.get("ci_reason"), "g")}</td>'
                    + num(f"{k}.ks", e.get("ks"), fmt("g", e.get("ks")), "td", "rate") + "</tr>")
        out.append(f'<div class="tablewrap"><table class="shifts"><caption>Score shifts by {esc(attr)}</caption><thead><tr>'
                   "<th scope=col>Group</th><th scope=col>Comparisons</th><th scope=col>n</th><th scope=col>Subjects</th>"
                   "<th scope=col>Mean shift (score units)</th><th scope=col>95% CI (score units)</th>"
                   "<th scope=col>Standardised shift (overall SDs)</th><th scope=col>95% CI (overall SDs)</th>"
                   f"<th scope=col>KS distance (0–1)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    out.append("</section>")
    return "".join(out)


def md_nist_lines(m: dict) -> list[str]:
    nist = m.get("nist") or {}
    lines: list[str] = []
    if not nist:
        return lines
    lines += ["## NIST FRTE demographic table", "", f"Intervals: {_rule(m)}", ""]
    for attr in nist:
        fn, fm = _nist_rows(m, attr)
        lv = md_level(m)
        lines += [f"### {attr}", "", f"| measure | unit | FNMR | FNMR {lv}CI | FMR | FMR {lv}CI |", "|---|---|---:|---|---:|---|"]
        for name, (label, unit, kind) in NIST_ROWS.items():
            cells = []
            for rate, b in (("fnmr", fn), ("fmr", fm)):
                e = (b or {}).get(name) or {}
                key = f"nist.{attr}.{rate}.{name}"
                v = md_num(f"{key}.value", e.get("value"), kind) + (
                    f" ({e['reason']})" if e.get("value") is None and e.get("reason") else "")
                cells += [v, md_ci(e.get("ci"), e.get("ci_reason"), kind, f"{key}.ci")]
            if name == "max":
                label += f" ({(fn or {}).get('worst')} / {(fm or {}).get('worst')})"
            lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def md_score_shift_lines(m: dict) -> list[str]:
    ss = m.get("score_shifts") or {}
    lines: list[str] = []
    if not ss:
        return lines
    lines += ["## Comparison-score shifts by group (ISO/IEC 19795-10)", ""]
    for attr, block in ss.items():
        lines += [f"### {attr}", "", f"| group | comparisons | n | subjects | mean shift (score units) | {md_level(m)}CI | standardised (SDs) | KS (0-1) |",
                  "|---|---|---:|---:|---:|---|---:|---:|"]
        for g, row in block.get("by_group", {}).items():
            for kind in ("mated", "non_mated"):
                e = row.get(kind) or {}
                k = f"score_shifts.{attr}.by_group.{g}.{kind}"
                from .mdtag import num as tnum

                lines.append(f"| {g} | {kind.replace('_', '-')} | {tnum(f'{k}.n', e.get('n'), 'int')} | "
                             f"{tnum(f'{k}.subjects', e.get('subjects'), 'int')} | "
                             f"{md_num(f'{k}.mean_shift', e.get('mean_shift'), 'g')} | "
                             f"{md_ci(e.get('ci'), e.get('ci_reason'), 'g', f'{k}.ci')} | "
                             f"{md_num(f'{k}.standardised_shift', e.get('standardised_shift'), 'g')} | "
                             f"{md_num(f'{k}.ks', e.get('ks'), 'g')} |")
        lines.append("")
    return lines
