"""The Markdown summary of a run (summary.md), written only from metrics.json's content.

One code path for 1:1 verification and one-to-many search runs (schema ``evalkit.metrics/3``):
the header, the overall and per-group rate tables (one column per rate the run names in
``rates``), intersections, disparity summaries and caveats are shared; the blocks only one kind
has (per-group DET operating points, cross-group FMR and tests for 1:1; CMC, gallery sizes,
false candidates and audits for search) follow.
"""

from __future__ import annotations

from ..backends.scoring_base import backend_scores_text, direction_of, words
from ..metrics import results
from ..metrics.results import RATE_LABELS
from .html import pct as spct   # a rate as the HTML report shows it


def _pct(x, digits=2):
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _ci(ci, digits=3) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{_pct(ci[0], digits)}, {_pct(ci[1], digits)}]"


def _num(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def sci(ci) -> str:
    return "" if not ci or ci[0] is None or ci[1] is None else f"[{spct(ci[0])}, {spct(ci[1])}]"


def rate_text(e: dict | None) -> str:
    """A RateEstimate as ``rate (errors/n) [interval]``: the subject-clustered bootstrap interval
    when there is one, else the exact one marked "exact"; with zero errors also the exact 95%
    upper bound; ``n/a`` (never 0) when the rate is not estimable."""
    if not e or e.get("rate") is None:
        return f"n/a ({(e or {}).get('n') or 0} trials)"
    txt = f"{spct(e['rate'])} ({e['errors']}/{e['n']})"
    if e.get("ci_boot") and e["ci_boot"][0] is not None:
        txt += " " + sci(e["ci_boot"])
    elif e.get("ci") and e["ci"][0] is not None:
        txt += " " + sci(e["ci"]) + " exact"
    if e.get("rate") == 0 and e.get("upper") is not None:
        txt += f", 95% upper bound {spct(e['upper'])}"
    return txt


def _small_mark(e: dict, rates) -> str:
    flags = [RATE_LABELS[r] for r in rates if (e.get(r) or {}).get("small")]
    return f" (small† for {' and '.join(flags)})" if flags else ""


def _group_table(m: dict, groups: dict, fails: dict | None, overall: dict | None = None,
                 mixed: dict | None = None, mixed_label: str = "") -> list[str]:
    """One row per group: subjects, one column per rate of the run, failure to enrol."""
    rates = results.run_rates(m)
    who = "probe group" if results.run_kind(m) == results.SEARCH else "group"
    head = (f"| {who} | subjects | " + " | ".join(f"{RATE_LABELS[r]} ({results.RATE_UNITS[r]}) [95% CI]" for r in rates)
            + " | failed images |")
    lines = [head, "|---|---:|" + "---|" * len(rates) + "---:|"]
    rows = ([("**all**", overall, ((m.get("failures") or {}).get("images") or {}).get("fte"))] if overall else [])
    rows += [(f"{g}{_small_mark(e, rates)}", e, ((fails or {}).get(g) or {}).get("fte")) for g, e in groups.items()]
    if mixed:
        rows.append((mixed_label, mixed, None))
    for label, e, fte in rows:
        subj = " / ".join(dict.fromkeys(str((e.get(r) or {}).get("subjects", "-")) for r in rates))
        ft = f"{fte['errors']}/{fte['n']}" if fte else ""
        lines.append(f"| {label} | {subj} | " + " | ".join(rate_text(e.get(r)) for r in rates) + f" | {ft} |")
    return lines + [""]


def _threshold_lines(m: dict) -> list[str]:
    th = m["threshold"]
    w = words(direction_of(m))   # a scoring backend's scores may be similarities (backends/scoring_base.py)
    rate = RATE_LABELS.get(th.get("rate") or "fmr", "FMR")
    units = "impostor comparisons" if th.get("rate") != "fpir" else "non-mated searches"
    if th["policy"] in ("global_fmr", "global_fpir"):
        note = "" if th["resolvable"] else (
            f" The target is below 1/{th['n']} {units}: it cannot be resolved on this data; "
            f"{w['beyond_set']}.")
        return [f"- Threshold: **{th['value']:.6g}** ({w['kind']}): {th['label']} (achieved {rate} "
                f"{th['achieved']:.3g}).{note}"]
    if th["policy"] == "per_group_fmr":
        per = next(iter(th["per_group"].values()))
        return [f"- Threshold: **per-group (BFW style), not one threshold for everyone**: each "
                f"{th['attribute']} group at FMR {th['target']:g} on its own impostors ("
                + ", ".join(f"{g}: {v['value']:.6g}" for g, v in per.items())
                + f"); mixed-group comparisons at the global {th['global_value']:.6g}. FMR is equalised by "
                "construction, so read the disparity in FNMR."]
    if th["policy"] == "calibrated":
        c = th["calibration"]
        return [f"- Threshold: **{th['value']:.6g}** ({w['kind']}), set at FMR {th['target']:g} on "
                f"{c['source']} ({c['n_impostor']} impostors) and applied unchanged here "
                f"(FMR over this run's impostors {th['achieved']:.3g})."]
    if th["policy"] == "from_run":   # threshold=from_run (evalkit.metrics.carried)
        src = th["source"]
        return [f"- Threshold: **{th['value']:.6g}** (distance), {th['label']}; source metrics.json SHA-256 "
                f"{src['metrics_sha256'][:16]}..., same backend fingerprint (SHA-256 {src['fingerprint_sha256'][:16]}...); "
                f"{rate} over this run's {th['n']} {units} {th['achieved']:.3g}."]
    return [f"- Threshold: **{th['value']:.6g}** ({th.get('label') or th['policy']}; {rate} over all {th['n']} "
            f"{units} {th['achieved']:.3g})."]


def _protocol_line(m: dict) -> str:
    pr = m["protocol"]
    if results.run_kind(m) != results.SEARCH:
        return (f"- Protocol: **{pr['name']}**, {pr['n_comparisons']} comparisons ({pr['n_genuine']} genuine, "
                f"{pr['n_impostor']} impostor).")
    s = m["search"]
    return (f"- Protocol: **{pr['name']}**, one-to-many search (the mugshot-database scenario): "
            f"{pr['n_enrolled_subjects']} enrolled subjects ({pr['n_gallery_images']} gallery images, "
            f"{pr.get('gallery_images_per_subject', '?')} per subject); {pr['n_mated_probes']} mated probes from "
            f"{pr['n_mated_subjects']} subjects (enrolled, searched with another image) and {pr['n_nonmated_probes']} "
            f"non-mated probes from {pr['n_nonmated_subjects']} subjects (enrolled nowhere); candidate list "
            f"L = {s['candidates']}; gallery sizes "
            f"{', '.join(str(n) for n in pr.get('gallery_sizes') or s['by_gallery_size']['sizes'])}; "
            f"split seed {pr.get('seed')}"
            + (f"; at most {pr['max_probes_per_subject']} probes per subject" if pr.get("max_probes_per_subject") else "")
            + (f"; {pr['max_subjects']} subjects sampled" if pr.get("max_subjects") else "") + ".")


def _failures_line(m: dict) -> list[str]:
    f = m["failures"]
    fte = f["images"]["fte"]
    reasons = ", ".join(f"{k}: {v}" for k, v in f["images"]["by_reason"].items()) or "none"
    line = f"- Failures to enrol: {fte['errors']} of {fte['n']} images ({reasons}); policy **{m['failure_policy']}**"
    if results.run_kind(m) == results.SEARCH:
        fs = m["search"]["failed_searches"]
        line += (f". Failed searches: {fs['mated_probe_failed']} mated and {fs['nonmated_probe_failed']} non-mated "
                 f"probes without an embedding, {fs['mate_not_enrolled']} mated probes whose mate has no gallery "
                 f"embedding, {fs['excluded']} excluded; {fs.get('note', '')}.")
    else:
        line += (f"; comparisons touching a failure: {f['comparisons']['genuine']} genuine, "
                 f"{f['comparisons']['impostor']} impostor"
                 + (f"; excluded: {f['excluded_comparisons']}" if f["excluded_comparisons"] else "") + ".")
    out = [line]
    if f["images"].get("fallbacks"):
        out.append("- Embedded through a fallback (not failures, but not the detector's work either): " + ", ".join(
            f"{k}: {v}" for k, v in f["images"]["fallbacks"].items()) + ".")
    return out


def _rates_note(m: dict) -> str:
    b = m.get("bootstrap")
    if results.run_kind(m) == results.SEARCH:
        s = m["search"]
        w = words(direction_of(m))
        what = ("FPIR: the share of non-mated searches (the person is not enrolled) returning at least one candidate "
                f"{w['at']}. FNIR: the share of mated searches whose mate is not returned within "
                f"the top {s['candidates']} {w['at']}; FNIR at rank 1: the mate is not the "
                "nearest enrolled subject (no threshold). NIST FRVT/FRTE 1:N definitions (NISTIR 8271). Groups are "
                f"the probe's group. Rates are at the full {s['gallery_size']}-subject gallery, with ")
        unit = "probe-subject"
    else:
        what = ("FNMR: genuine comparisons not matched at the threshold; FMR: impostor comparisons matched "
                "(ISO/IEC 19795-1). " + _membership(m) + " Rates are at the threshold above, with ")
        unit = "subject-clustered"
    if b:
        return (what + f"95% {unit} bootstrap intervals per group ({b['replicates']} replicates, seed {b['seed']}); "
                "\"exact\" marks a Clopper-Pearson interval where no bootstrap one exists (those treat trials as "
                "independent).")
    return what + "exact (Clopper-Pearson) 95% intervals (bootstrap off: they treat trials as independent)."


def _membership(m: dict) -> str:
    from . import stats_sections as ss
    return ss.membership_sentence(m)


def _disparity_lines(m: dict) -> list[str]:
    disp = m.get("disparity") or {}
    if not disp:
        return []
    lines = ["## Disparity summaries", "",
             f"Over labelled groups that are not flagged small (min {m['min_count']['subjects']} subjects and "
             f"{m['min_count']['comparisons']} trials of each kind; unlabelled, conflict and multiple never enter). "
             + ("Intervals: subject-clustered bootstrap." if m.get("bootstrap") else
                "No intervals: " + ((m.get("not_computed") or {}).get("bootstrap") or "bootstrap switched off") + "."),
             ""]
    for attr, block in disp.items():
        lines += [f"### {attr}", "", "| summary | unit | value | 95% CI | note |", "|---|---|---:|---|---|"]
        for name, d in block.items():
            unit = _disp_unit(name)
            if "by_group" in d:
                for g, r in d["by_group"].items():
                    if g != d["reference"]:
                        lines.append(f"| {name} ({g} / {d['reference']}) | {unit} | {_num(r.get('value'))} | {_disp_ci(r)} |")
                continue
            if "value" not in d:
                continue
            scale = 100.0 if name == "accuracy_std" else 1.0
            lines.append(f"| {name} | {unit} | {_num(None if d.get('value') is None else scale * d['value'])} | "
                         f"{_disp_ci(d, scale)} |")
        lines.append("")
    from . import stats_sections as ss
    lines += ss.md_nist_lines(m)
    lines += ss.md_score_shift_lines(m)
    return lines


def _disp_unit(name: str) -> str:
    return {"accuracy_std": "percentage points", "fdr": "index 0-1 (1 = fair)",
            "garbe": "index 0-1 (0 = fair)"}.get(name, "ratio (1 = equal)")


def _disp_ci(d: dict, scale: float = 1.0) -> str:
    """'lo–hi | note' for a disparity entry: the interval (in the value's unit), or why there is none."""
    if d.get("ci") and d["ci"][0] is not None:
        return f"{scale * d['ci'][0]:.3g}–{scale * d['ci'][1]:.3g} | {d.get('reason') or ''}"
    why = d.get("reason") or (f"not estimable: {d['ci_reason']}" if d.get("ci_reason") else "")
    return f" | {why}"


def _verification_sections(m: dict) -> list[str]:
    """The blocks of a 1:1 run: per-group operating points, cross-group FMR, tests."""
    lines: list[str] = []
    for attr, groups in m["groups"].items():
        if not groups or "fnmr_at_fmr" not in next(iter(groups.values())):
            continue
        targets = list(next(iter(groups.values()))["fnmr_at_fmr"])
        lines += [f"### {attr}: each group's own DET curve", "",
                  "| group | EER | " + " | ".join(f"FNMR @ FMR {float(t):g}" for t in targets) + " | accuracy at the threshold |",
                  "|---|---:|" + "---:|" * len(targets) + "---:|"]
        for g, v in groups.items():
            cells = [(_pct(v["fnmr_at_fmr"][t]["fnmr"]) if v["fnmr_at_fmr"][t]["fnmr"] is not None
                      else f"n/a ({v['fnmr_at_fmr'][t].get('reason') or 'too few impostors'})") for t in targets]
            lines.append(f"| {g} | {_pct(v.get('eer'))} | " + " | ".join(cells) + f" | {_pct(v.get('accuracy'))} |")
        lines.append("")
    for attr, cx in (m.get("cross_fmr") or {}).items():
        labels = cx["labels"]
        lines += [f"### {attr}: impostor FMR by the two subjects' groups", "",
                  "| | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        for i, a in enumerate(labels):
            cells = [("–" if cx["n_impostor"][i][j] == 0 else f"{_pct(cx['fmr'][i][j], 3)} ({cx['false_matches'][i][j]}/{cx['n_impostor'][i][j]})")
                     for j in range(len(labels))]
            lines.append(f"| **{a}** | " + " | ".join(cells) + " |")
        lines.append("")
    tests = m.get("tests") or {}
    if tests:
        lines += ["## Does one group's rate differ from another's?", "",
                  "| attribute | rate | A | B | rate A | rate B | p-value | method |", "|---|---|---|---|---:|---:|---:|---|"]
        for attr, by_rate in tests.items():
            for rate, rows in by_rate.items():
                for r in rows:
                    lines.append(f"| {attr} | {rate.upper()} | {r['a']} | {r['b']} | {_pct(r['rate_a'])} | {_pct(r['rate_b'])} | "
                                 f"{_num(r.get('p_value'))} | {r.get('method', '').split(' (')[0]} |")
        lines.append("")
    return lines


def _search_cmc(s: dict, attr: str) -> list[str]:
    cmc = s["cmc"]
    K = len(cmc["ranks"])
    ranks = [r for r in dict.fromkeys([1, 5, 10, s["candidates"], K]) if r <= K]
    lines = ["| probe group | mated searches / subjects | " + " | ".join(f"CMC({r})" for r in ranks) + " |",
             "|---|---:|" + "---|" * len(ranks)]
    rows = [("all mated probes", cmc["overall"])] + list(cmc["groups"].get(attr, {}).items())
    for g, e in rows:
        cells = []
        for r in ranks:
            v = e["rate"][r - 1]
            ci = (e.get("ci_boot") or [None] * K)[r - 1]
            cells.append("n/a" if v is None else f"{_pct(v, 1)}" + (f" {_ci(ci, 1)}" if ci and ci[0] is not None else ""))
        lines.append(f"| {g} | {e['n']} / {e['subjects']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _search_by_size(s: dict, attr: str) -> list[str]:
    b = s["by_gallery_size"]
    sizes = b["sizes"]
    lines = []
    for rate in ("fpir", "fnir"):
        lines += [f"{RATE_LABELS[rate]} at the threshold by gallery size (enrolled subjects):", "",
                  "| probe group | " + " | ".join(str(n) for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
        rows = [("all probes", b["overall"][rate])] + [(g, v[rate]) for g, v in b["groups"].get(attr, {}).items()]
        for g, per in rows:
            lines.append(f"| {g} | " + " | ".join(rate_text(e) for e in per) + " |")
        lines.append("")
    return lines


def _false_candidate_lines(fc: dict, what: str = "non-mated probes") -> list[str]:
    cols = fc["candidate_labels"]
    share = fc.get("gallery_share") or {}
    nm = fc["nonmated"]
    rows = fc["probe_labels"]
    lines = [f"| {what} \\ candidate | " + " | ".join(cols) + " | probes |", "|---|" + "---:|" * (len(cols) + 1),
             "| *share of the gallery* | " + " | ".join(_pct(share.get(c), 1) for c in cols) + " | |"]
    total = [0] * len(cols)
    for i, g in enumerate(rows):
        counts = nm["false_candidates"][i]
        tot = sum(counts)
        total = [a + b for a, b in zip(total, counts)]
        lines.append(f"| {g} | " + " | ".join(f"{c}" + (f" ({_pct(c / tot, 0)})" if tot else "") for c in counts)
                     + f" | {nm['n_probes'][i]} |")
    grand = sum(total)
    lines.append("")
    if grand:
        over = [f"{c}: {_pct(t / grand, 1)} of the false candidates vs {_pct(share.get(c), 1)} of the gallery"
                for c, t in zip(cols, total)]
        lines += ["Make-up of all false candidates against the gallery: " + "; ".join(over) + ".", ""]
    else:
        lines += ["No false candidates were returned at this threshold.", ""]
    return lines


def _audit_lines(a: dict, attrs: list[str]) -> list[str]:
    o = a["overall"]
    fp, fn = o["fpir"], o["fnir"]
    lines = [f"### Audit at the fixed threshold {a['threshold']:.6g}", "", f"Source: {a.get('source') or 'not recorded'}.", ""]
    if fp.get("n"):
        lines.append(f"Of {fp['n']} people not in the database (non-mated probes against the {a['gallery_size']}-subject "
                     f"gallery, candidate list {a['candidates']}), **{fp['errors']} ({spct(fp['rate'])}) got at least "
                     f"one false candidate** at threshold {a['threshold']:.6g} (95% CI "
                     f"{sci(fp.get('ci_boot') or fp.get('ci')) or 'n/a'}); {o.get('false_candidates', 0)} false "
                     f"candidates in all. At the same threshold FNIR is {rate_text(fn)}.")
    else:
        lines.append("No non-mated probes to audit.")
    lines.append("")
    for attr in attrs:
        per = (a.get("groups") or {}).get(attr) or {}
        if not per:
            continue
        lines += [f"By probe {attr}:", ""]
        for g, e in per.items():
            sf, sn = e.get("share_of_falsely_matched"), e.get("share_of_nonmated_probes")
            share = (f"makes up {_pct(sf, 1)} of those falsely matched and {_pct(sn, 1)} of the non-mated probes"
                     if sf is not None else f"makes up {_pct(sn, 1)} of the non-mated probes (nobody was falsely matched)")
            lines.append(f"- {g}: {share}; its own FPIR {rate_text(e['fpir'])}; FNIR {rate_text(e['fnir'])}.")
        lines.append("")
    return lines


def _search_sections(m: dict, attrs: list[str]) -> list[str]:
    """The blocks of a search run: CMC, rates by gallery size, false candidates, audits."""
    s = m["search"]
    lines = ["## CMC: rank-k identification rate (no threshold)", ""]
    for attr in attrs:
        lines += [f"### By probe {attr}", "", *_search_cmc(s, attr)]
    lines += ["## FPIR and FNIR by gallery size", "",
              "The same threshold at every size; FPIR grows with the gallery (more enrolled subjects to match falsely).", ""]
    for attr in attrs:
        lines += [f"### By probe {attr}", "", *_search_by_size(s, attr)]
    lines += ["## Who is returned falsely: false candidates for non-mated probes", "",
              "At the operating threshold, full gallery: count of false candidates by probe group (rows) and the group "
              "of the returned enrolled subject (columns), with the row's share; the first row is each candidate "
              "group's share of the gallery.", ""]
    for attr in attrs:
        if attr in s.get("false_candidates", {}):
            lines += [f"### By {attr}", "", *_false_candidate_lines(s["false_candidates"][attr])]
    if s.get("audit"):
        lines += ["## Audit at a vendor's fixed threshold", ""]
        for a in s["audit"]:
            lines += _audit_lines(a, attrs)
    return lines


def render_summary(m: dict) -> str:
    """summary.md of a run, 1:1 verification or one-to-many search, from metrics.json alone."""
    if (m.get("protocol") or {}).get("kind") == "enrolment":   # enrolment only (evalkit/report/audit.py)
        from .audit import render_enrolment_summary

        return render_enrolment_summary(m)
    ds, be = m["dataset"], m["backend"]
    search = results.run_kind(m) == results.SEARCH
    rates = results.run_rates(m)
    attrs = [a for a in dict.fromkeys([*ds.get("attributes", []), *m["groups"]]) if a in m["groups"]]
    lines = [f"# {m['experiment']}", "",
             f"- Dataset: **{ds['name']}**, {ds['n_samples']} images of {ds['n_subjects']} subjects used by the protocol.",
             _protocol_line(m),
             f"- Backend: **{be['name']}** ({be['family']}; {be['fingerprint'].get('model', '')}, detector "
             f"{be['fingerprint'].get('detector', '?')}), {backend_scores_text(be)}.",
             *_threshold_lines(m), *_failures_line(m)]
    if "lfw_accuracy" in m:
        a = m["lfw_accuracy"]
        lines.append(f"- LFW {a['n_folds']}-fold accuracy: **{100 * a['mean']:.2f}% ± {100 * a['sem']:.2f}%** "
                     f"(mean ± standard error; std over folds {100 * a['std']:.2f}%).")
    if m.get("eer") is not None:
        lines.append(f"- Equal error rate: {_pct(m['eer'])}.")
    lines += ["", _rates_note(m), ""]
    lines += ["## Overall", "", *_group_table(m, {}, None, overall=m["overall"])]
    fails = m["failures"]["by_group"]
    who = "probe " if search else ""
    for attr in attrs:
        cov = ds.get("label_coverage", {}).get(attr, {})
        prov, level = (ds.get("label_provenance") or {}).get(attr), (ds.get("label_level") or {}).get(attr)
        lines += [f"## By {who}{attr}", "", f"Labels: {ds.get('label_sources', {}).get(attr, 'source not recorded')}",
                  ""] + ([f"How the labels were obtained: {prov or 'not declared by the dataset config'}"
                          + (f"; labels are per {level}" if level else "") + ".", ""] if prov or level else [])
        lines += _group_table(m, m["groups"][attr], fails.get(attr), mixed=(m.get("mixed") or {}).get(attr),
                              mixed_label=f"mixed ({attr} differs)")
        if cov:
            special = [g for g in ("unlabelled", "conflict", "multiple") if g in cov]
            lines.append("Label coverage of the images used: " + ", ".join(
                f"{g}: {c['subjects']} subjects / {c['samples']} images" for g, c in cov.items()) + "."
                + (f" {', '.join(special)} are explicit groups, never dropped, and never enter the disparity summaries."
                   if special else ""))
            lines.append("")
    for name, groups in (m.get("intersections") or {}).items():
        lines += [f"## By {who}{name}", "", *_group_table(m, groups, fails.get(name))]
    for name, why in (m.get("intersections_skipped") or {}).items():
        lines += [f"Intersection {name} not computed: {why}.", ""]
    lines += _disparity_lines(m)
    lines += _search_sections(m, attrs) if search else _verification_sections(m)
    small = [f"{a}={g} ({'; '.join(RATE_LABELS[r] + ': ' + e[r]['small_reason'] for r in rates if (e.get(r) or {}).get('small'))})"
             for a, gs in m["groups"].items() for g, e in gs.items() if results.entry_small(e, rates)]
    mc = m["min_count"]
    lines += ["## Caveats", ""]
    if small:
        lines.append(f"- † Small groups (fewer than {mc['subjects']} subjects or {mc['comparisons']} trials of a kind, "
                     "by evalkit's one small-group rule): reported, but their flagged rates are left out of the "
                     "disparity summaries: " + "; ".join(small) + ".")
    if search:
        lines += ["- Intervals resample probe subjects (all of a person's searches together), not gallery subjects: an "
                  "enrolled subject who attracts many false candidates also correlates searches, which these intervals "
                  "do not capture.",
                  "- Rates depend on the gallery size (see the table by size) and on the candidate-list length; compare "
                  "runs only at equal sizes."]
    lines.append("- Labels are third-party annotations (" + "; ".join(
        f"{a}: {ds.get('label_sources', {}).get(a, 'source not recorded').split(':')[0]}" for a in attrs)
        + "); unlabelled, conflict and multiple are kept as explicit groups.")
    if str(ds["name"]).lower().startswith("lfw"):
        lines.append("- LFW: its authors warn that LFW must not be used to conclude that an algorithm suits commercial "
                     "use" + ("; most LFW subjects have one image, so this gallery is small and the non-mated probes "
                          "are mostly people with a single photo." if search else "."))
    lines.append("- Groups with few subjects or trials give wide intervals: read the counts before the rates.")
    from .audit import scope_lines   # impostor-only runs: what the data can and cannot show

    lines += scope_lines(m)
    return "\n".join(lines) + "\n"


#: the search summary is the same function (one code path); kept as a name for callers
render_search_summary = render_summary
