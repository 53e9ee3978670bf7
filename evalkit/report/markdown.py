"""A short Markdown summary of a run, written only from metrics.json's content."""

from __future__ import annotations

from ..backends.scoring_base import backend_scores_text, direction_of, words
from .html import pct as _html_pct


def _pct(x, digits=2):
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _rate(fields: dict, rate: str) -> str:
    r, ci, ub = fields.get(rate), fields.get(f"{rate}_ci"), fields.get(f"{rate}_upper_bound")
    if r is None:
        return "n/a (no comparisons)"
    txt = _pct(r, 3)
    if ci and ci[0] is not None:
        txt += " " + _ci(ci)
    if ub is not None and r == 0:
        txt += f" (0 observed; 95% upper bound {_pct(ub, 3)})"
    return txt


def _ci(ci, digits=3) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{_pct(ci[0], digits)}, {_pct(ci[1], digits)}]"


def _num(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _group_head(boot: bool) -> list[str]:
    """The header and alignment row of a group table (with the bootstrap interval columns or not)."""
    if boot:
        return ["| group | subjects | genuine | FNMR | impostor | FMR | FNMR CI (subjects) | FMR CI (subjects) | failed images |",
                "|---|---:|---:|---|---:|---|---|---|---:|"]
    return ["| group | subjects | genuine | FNMR | impostor | FMR | failed images |", "|---|---:|---:|---|---:|---|---:|"]


def _group_rows(groups: dict, fails: dict) -> list[str]:
    rows = []
    for g, v in groups.items():
        fg = fails.get(g, {})
        flag = {(True, True): " (small†)", (True, False): " (small† for FNMR)",
                (False, True): " (small† for FMR)"}.get((bool(v.get("small_fnmr")), bool(v.get("small_fmr"))), "")
        boot = ""
        if "fnmr_ci_boot" in v:
            boot = f" | {_ci(v.get('fnmr_ci_boot'))} | {_ci(v.get('fmr_ci_boot'))}"
        rows.append(f"| {g}{flag} | {v['n_subjects']} | {v['n_genuine']} | {_rate(v, 'fnmr')} | {v['n_impostor']} | "
                    f"{_rate(v, 'fmr')}{boot} | {fg.get('failed', 0)}/{fg.get('n_images', 0)} |")
    return rows


def _detail_sections(m: dict) -> list[str]:
    """v2 blocks: per-group operating points, cross-group FMR, intersections, disparity, tests."""
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
    fails = m["failures"]["by_group"]
    for name, groups in (m.get("intersections") or {}).items():
        has_boot = any("fnmr_ci_boot" in e for e in groups.values())
        lines += [f"## By {name}", "", *_group_head(has_boot), *_group_rows(groups, fails.get(name, {})), ""]
    for name, why in (m.get("intersections_skipped") or {}).items():
        lines += [f"Intersection {name} not computed: {why}.", ""]
    disp = m.get("disparity") or {}
    if disp:
        lines += ["## Disparity summaries", "",
                  f"Over groups that are not flagged small (min {m['min_count']['subjects']} subjects and "
                  f"{m['min_count']['comparisons']} comparisons of each kind; unlabelled, conflict and multiple never enter). "
                  + ("Intervals: subject-clustered bootstrap." if m.get("bootstrap") else
                     "No intervals: " + ((m.get("not_computed") or {}).get("bootstrap") or "bootstrap switched off") + "."),
                  ""]
        for attr, block in disp.items():
            lines += [f"### {attr}", "", "| summary | value | 95% CI | note |", "|---|---:|---|---|"]
            for name, d in block.items():
                if "by_group" in d:
                    for g, r in d["by_group"].items():
                        if g != d["reference"]:
                            lines.append(f"| {name} ({g} / {d['reference']}) | {_num(r.get('value'))} | {_disp_ci(r)} |")
                    continue
                lines.append(f"| {name} | {_num(d.get('value'))} | {_disp_ci(d)} |")
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


def _disp_ci(d: dict) -> str:
    """'lo–hi | note' for a disparity entry: the interval, or why there is none."""
    if d.get("ci") and d["ci"][0] is not None:
        return f"{d['ci'][0]:.3g}–{d['ci'][1]:.3g} | {d.get('reason') or ''}"
    why = d.get("reason") or (f"no interval: {d['ci_reason']}" if d.get("ci_reason") else "")
    return f" | {why}"


def render_summary(m: dict) -> str:
    """summary.md of a run: 1:1 verification, or one-to-many search (``protocol.kind == "search"``)."""
    if (m.get("protocol") or {}).get("kind") == "search":
        return render_search_summary(m)
    ds, pr, be, th = m["dataset"], m["protocol"], m["backend"], m["threshold"]
    w = words(direction_of(m))   # a scoring backend's scores may be similarities (backends/scoring_base.py)
    lines = [
        f"# {m['experiment']}",
        "",
        f"- Dataset: **{ds['name']}**, {ds['n_samples']} images of {ds['n_subjects']} subjects used by the protocol.",
        f"- Protocol: **{pr['name']}**, {pr['n_comparisons']} comparisons ({pr['n_genuine']} genuine, {pr['n_impostor']} impostor).",
        f"- Backend: **{be['name']}** ({be['family']}; {be['fingerprint'].get('model', '')}, detector "
        f"{be['fingerprint'].get('detector', '?')}), {backend_scores_text(be)}.",
    ]
    if th["policy"] == "global_fmr":
        note = "" if th["resolvable"] else (
            f" The target is below 1/{th['n_impostor']} impostors: it cannot be resolved on this data; "
            f"{w['beyond_impostors']}.")
        lines.append(
            f"- Threshold: **{th['value']:.6g}** ({w['kind']}), one for everyone, set on all {th['n_impostor']} impostor "
            f"comparisons at target FMR {th['target_fmr']:g} (achieved {th['achieved_fmr']:.3g}).{note}")
    elif th["policy"] == "per_group_fmr":
        per = next(iter(th["per_group"].values()))
        lines.append(f"- Threshold: **per-group (BFW style), not one threshold for everyone**: each "
                     f"{th['attribute']} group at FMR {th['target_fmr']:g} on its own impostors ("
                     + ", ".join(f"{g}: {v['value']:.6g}" for g, v in per.items())
                     + f"); mixed-group comparisons at the global {th['global_value']:.6g}. FMR is equalised by "
                     "construction, so read the disparity in FNMR.")
    elif th["policy"] == "calibrated":
        c = th["calibration"]
        lines.append(f"- Threshold: **{th['value']:.6g}** ({w['kind']}), set at FMR {th['target_fmr']:g} on "
                     f"{c['source']} ({c['n_impostor']} impostors) and applied unchanged here "
                     f"(FMR over this run's impostors {th['achieved_fmr']:.3g}).")
    else:
        lines.append(f"- Threshold: **{th['value']:.6g}** (fixed; FMR over all impostors {th['achieved_fmr']:.3g}).")
    f = m["failures"]
    lines.append(
        f"- Failures to enrol: {f['images']['failed']} of {f['images']['n']} images "
        f"({', '.join(f'{k}: {v}' for k, v in f['images']['by_reason'].items()) or 'none'}); "
        f"policy **{m['failure_policy']}**; comparisons touching a failure: "
        f"{f['comparisons']['genuine']} genuine, {f['comparisons']['impostor']} impostor"
        + (f"; excluded: {f['excluded_comparisons']}" if f["excluded_comparisons"] else "") + ".")
    if f["images"].get("fallbacks"):
        lines.append("- Embedded through a fallback (not failures, but not the detector's work either): " + ", ".join(
            f"{k}: {v}" for k, v in f["images"]["fallbacks"].items()) + ".")
    if "lfw_accuracy" in m:
        a = m["lfw_accuracy"]
        lines.append(f"- LFW {a['n_folds']}-fold accuracy: **{100 * a['mean']:.2f}% ± {100 * a['sem']:.2f}%** "
                     f"(mean ± standard error; std over folds {100 * a['std']:.2f}%).")
    if m.get("eer") is not None:
        lines.append(f"- Equal error rate: {_pct(m['eer'])}.")
    lines += ["", "Rates are at the threshold above, with exact (Clopper-Pearson) 95% intervals.", ""]
    boot = any("fnmr_ci_boot" in v for g in m["groups"].values() for v in g.values())
    o = m["overall"]
    lines += ["## Overall", "", *_group_head(False),
              f"| all | {o['n_subjects']} | {o['n_genuine']} | {_rate(o, 'fnmr')} | {o['n_impostor']} | {_rate(o, 'fmr')} | "
              f"{f['images']['failed']}/{f['images']['n']} |", ""]
    if boot:
        b = m.get("bootstrap") or {}
        lines += [f"Per group, the last interval columns come from a subject-clustered bootstrap "
                  f"({b.get('replicates', '?')} replicates, seed {b.get('seed', '?')}): pairs sharing a person are not "
                  "independent, so these are the honest ones.", ""]
    for attr, groups in m["groups"].items():
        src = ds["label_sources"].get(attr, "")
        lines += [f"## By {attr}", "", f"Labels: {src}", "", *_group_head(boot)]
        lines += _group_rows(groups, f["by_group"].get(attr, {}))
        mx = m["mixed"][attr]
        lines.append(f"| mixed ({attr} differs) | {mx['n_subjects']} | {mx['n_genuine']} | {_rate(mx, 'fnmr')} | "
                     f"{mx['n_impostor']} | {_rate(mx, 'fmr')} |" + (" | |" if boot else "") + " |")
        lines.append("")
        cov = ds["label_coverage"].get(attr, {})
        if cov:
            lines.append("Label coverage of the images used: " + ", ".join(
                f"{g}: {c['subjects']} subjects / {c['samples']} images" for g, c in cov.items()) + ".")
            lines.append("")
    lines += _detail_sections(m)
    small = [f"{a}={g} ({v['small_reason']})" for a, gs in m["groups"].items() for g, v in gs.items() if v.get("small")]
    if small:
        lines += ["† Small groups: reported, but their flagged rates are left out of the disparity summaries: "
                  + "; ".join(small) + ".", ""]
    lines.append("Groups with few subjects or comparisons give wide intervals: read the counts before the rates.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- one-to-many search

SEARCH_RATES = {"fpir": "FPIR", "fnir": "FNIR", "fnir_rank1": "FNIR rank 1"}


#: A rate as a percentage, exactly as the HTML report shows it (2 decimals from 1% up, 3 significant digits below).
spct = _html_pct


def sci(ci) -> str:
    return "" if not ci or ci[0] is None or ci[1] is None else f"[{spct(ci[0])}, {spct(ci[1])}]"


def search_rate(e: dict | None) -> str:
    """A search rate entry as ``rate (errors/n) [interval]``: the probe-subject bootstrap interval
    when there is one, else the exact one marked "exact"; with zero errors also the exact 95% upper
    bound; ``n/a`` (never 0) when no search of that kind exists."""
    if not e or e.get("rate") is None:
        return "n/a (no searches)"
    txt = f"{spct(e['rate'])} ({e['errors']}/{e['n']})"
    if e.get("ci_boot") and e["ci_boot"][0] is not None:
        txt += " " + sci(e["ci_boot"])
    elif e.get("ci") and e["ci"][0] is not None:
        txt += " " + sci(e["ci"]) + " exact"
    if e.get("rate") == 0 and e.get("upper_bound") is not None:
        txt += f", 95% upper bound {spct(e['upper_bound'])}"
    return txt


def _small_mark(e: dict) -> str:
    flags = [r.upper() for r in ("fpir", "fnir") if e.get(f"small_{r}")]
    return f" (small† for {' and '.join(flags)})" if flags else ""


def _search_group_table(groups: dict, overall: dict | None = None) -> list[str]:
    lines = ["| probe group | FPIR (false positives / non-mated searches) [95% CI] | FNIR at the threshold (misses / "
             "mated searches) [95% CI] | FNIR rank 1 [95% CI] | probe subjects (non-mated / mated) |",
             "|---|---|---|---|---:|"]
    rows = ([("all probes", overall)] if overall else []) + list(groups.items())
    for g, e in rows:
        label = f"**{g}**" if g == "all probes" else f"{g}{_small_mark(e)}"
        lines.append(f"| {label} | {search_rate(e['fpir'])} | {search_rate(e['fnir'])} | {search_rate(e['fnir_rank1'])} | "
                     f"{e['fpir']['n_subjects']} / {e['fnir']['n_subjects']} |")
    return lines + [""]


def _search_disparity(s: dict, attr: str) -> list[str]:
    block = (s.get("disparity") or {}).get(attr) or {}
    groups = s["groups"][attr]
    lines = []
    for key, rate in (("fpir_max_min_ratio", "fpir"), ("fnir_max_min_ratio", "fnir")):
        d = block.get(key)
        if d is None:
            continue
        name = SEARCH_RATES[rate]
        if d.get("value") is None:
            lines.append(f"- {name} max/min ratio: undefined ({d.get('reason') or 'no value'}).")
            continue
        used = [g for g in (d.get("groups") or []) if groups.get(g, {}).get(rate, {}).get("rate") is not None]
        hi = max(used, key=lambda g: groups[g][rate]["rate"]) if used else "?"
        lo = min(used, key=lambda g: groups[g][rate]["rate"]) if used else "?"
        ci = d.get("ci")
        civ = (f" (95% CI {ci[0]:.2f}–{ci[1]:.2f})" if ci and ci[0] is not None
               else f" (no interval: {d.get('ci_reason') or 'bootstrap off'})")
        lines.append(f"- {name} max/min ratio: **{d['value']:.2f}**{civ}: the highest group ({hi}) over the lowest "
                     f"({lo}), over {', '.join(d.get('groups') or [])}.")
    for rate in ("fpir", "fnir"):
        r = block.get(f"{rate}_ratio_to_reference") or {}
        for g, e in (r.get("by_group") or {}).items():
            name = SEARCH_RATES[rate]
            if e.get("value") is None:
                lines.append(f"- {name} {g} / {r['reference']}: undefined ({e.get('reason') or 'no value'}).")
                continue
            ci = e.get("ci")
            civ = (f" (95% CI {ci[0]:.2f}–{ci[1]:.2f})" if ci and ci[0] is not None
                   else f" (no interval: {e.get('ci_reason') or 'bootstrap off'})")
            lines.append(f"- {name} {g} / {r['reference']} (reference: {r.get('reference_rule')}): "
                         f"**{e['value']:.2f}**{civ}.")
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
        lines.append(f"| {g} | {e['n']} / {e['n_subjects']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _search_by_size(s: dict, attr: str) -> list[str]:
    b = s["by_gallery_size"]
    sizes = b["sizes"]
    lines = []
    for rate in ("fpir", "fnir"):
        lines += [f"{SEARCH_RATES[rate]} at the threshold by gallery size (enrolled subjects):", "",
                  "| probe group | " + " | ".join(str(n) for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
        rows = [("all probes", b["overall"][rate])] + [(g, v[rate]) for g, v in b["groups"].get(attr, {}).items()]
        for g, per in rows:
            lines.append(f"| {g} | " + " | ".join(search_rate(e) for e in per) + " |")
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
                     f"candidates in all. At the same threshold FNIR is {search_rate(fn)}.")
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
            lines.append(f"- {g}: {share}; its own FPIR {search_rate(e['fpir'])}; FNIR {search_rate(e['fnir'])}.")
        lines.append("")
    return lines


def render_search_summary(m: dict) -> str:
    """summary.md of a one-to-many search run (metrics.json ``search`` block, see
    ``evalkit.metrics.search_summary``), written from metrics.json's content only."""
    ds, pr, be, th, s = m["dataset"], m["protocol"], m["backend"], m["threshold"], m["search"]
    attrs = [a for a in dict.fromkeys([*ds.get("attributes", []), *s["groups"]]) if a in s["groups"]]
    lines = [f"# {m['experiment']}", "",
             f"- Dataset: **{ds['name']}**, {ds['n_samples']} images of {ds['n_subjects']} subjects used by the protocol.",
             f"- Protocol: **{pr['name']}**, one-to-many search (the mugshot-database scenario): "
             f"{pr['n_enrolled_subjects']} enrolled subjects ({pr['n_gallery_images']} gallery images, "
             f"{pr.get('gallery_images_per_subject', '?')} per subject); {pr['n_mated_probes']} mated probes from "
             f"{pr['n_mated_subjects']} subjects (enrolled, searched with another image) and {pr['n_nonmated_probes']} "
             f"non-mated probes from {pr['n_nonmated_subjects']} subjects (enrolled nowhere); candidate list "
             f"L = {s['candidates']}; gallery sizes {', '.join(str(n) for n in pr.get('gallery_sizes') or s['by_gallery_size']['sizes'])}; "
             f"split seed {pr.get('seed')}"
             + (f"; at most {pr['max_probes_per_subject']} probes per subject" if pr.get("max_probes_per_subject") else "")
             + (f"; {pr['max_subjects']} subjects sampled" if pr.get("max_subjects") else "") + ".",
             f"- Backend: **{be['name']}** ({be['family']}; {be['fingerprint'].get('model', '')}, detector "
             f"{be['fingerprint'].get('detector', '?')}), {backend_scores_text(be)}."]
    w = words(direction_of(m))
    if th["policy"] == "global_fpir":
        note = "" if th.get("resolvable", True) else (
            f" The target is below 1/{th['n_nonmated']} non-mated searches: it cannot be resolved on this data.")
        lines.append(f"- Threshold: **{th['value']:.6g}** ({w['kind']}): {th['label']} (achieved FPIR "
                     f"{th['achieved_fpir']:.3g}).{note}")
    else:
        lines.append(f"- Threshold: **{th['value']:.6g}** ({th.get('label') or th['policy']}; FPIR over all "
                     f"{th.get('n_nonmated')} non-mated searches {th['achieved_fpir']:.3g}).")
    f = m["failures"]
    fs = s["failed_searches"]
    lines.append(f"- Failures to enrol: {f['images']['failed']} of {f['images']['n']} images "
                 f"({', '.join(f'{k}: {v}' for k, v in f['images']['by_reason'].items()) or 'none'}); policy "
                 f"**{m['failure_policy']}**. Failed searches: {fs['mated_probe_failed']} mated and "
                 f"{fs['nonmated_probe_failed']} non-mated probes without an embedding, {fs['mate_not_enrolled']} mated "
                 f"probes whose mate has no gallery embedding, {fs['excluded']} excluded; {fs.get('note', '')}.")
    lines += ["",
              "FPIR: the share of non-mated searches (the person is not enrolled) returning at least one candidate at a "
              f"{w['at'][5:]}. FNIR: the share of mated searches whose mate is not returned within the "
              f"top {s['candidates']} {w['at']}; FNIR rank 1: the mate is not the nearest enrolled "
              "subject (no threshold). NIST FRVT/FRTE 1:N definitions (NISTIR 8271). Groups are the probe's group. "
              f"Rates are at the full {s['gallery_size']}-subject gallery, with "
              + ("95% probe-subject cluster bootstrap intervals (" + f"{m['bootstrap']['replicates']} replicates, seed "
                 f"{m['bootstrap']['seed']}); \"exact\" marks a Clopper-Pearson interval where no bootstrap one exists."
                 if m.get("bootstrap") else "exact (Clopper-Pearson) 95% intervals (bootstrap off: they treat "
                 "searches as independent)."), ""]
    lines += ["## Overall", "", *_search_group_table({}, s["overall"])]
    for attr in attrs:
        cov = ds.get("label_coverage", {}).get(attr, {})
        lines += [f"## By probe {attr}", "", f"Labels: {ds.get('label_sources', {}).get(attr, 'source not recorded')}", ""]
        lines += _search_group_table(s["groups"][attr])
        special = [g for g in ("unlabelled", "conflict", "multiple") if g in cov]
        if cov:
            lines.append("Label coverage of the images used: " + ", ".join(
                f"{g}: {c['subjects']} subjects / {c['samples']} images" for g, c in cov.items()) + "."
                + (f" {', '.join(special)} are explicit groups, never dropped, and never enter the disparity summaries."
                   if special else ""))
            lines.append("")
        d = _search_disparity(s, attr)
        if d:
            lines += [f"Disparity by {attr} (labelled groups not flagged small; NISTIR 8280 max/min; the max/min "
                      "interval is that of the two groups named, highest over lowest, resampled; read it with the "
                      "group intervals):", "", *d, ""]
    for name, groups in (s.get("intersections") or {}).items():
        lines += [f"## By probe {name}", "", *_search_group_table(groups)]
    lines += ["## CMC: rank-k identification rate (no threshold)", ""]
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
    small = [f"{a}={g} ({'; '.join(SEARCH_RATES[r] + ': ' + v[f'small_{r}_reason'] for r in ('fpir', 'fnir') if v.get(f'small_{r}'))})"
             for a in attrs for g, v in s["groups"][a].items() if v.get("small_fpir") or v.get("small_fnir")]
    mc = m["min_count"]
    lines += ["## Caveats", ""]
    if small:
        lines.append(f"- † Small groups (fewer than {mc['subjects']} probe subjects or {mc['comparisons']} searches of "
                     "a kind): reported, but left out of the disparity summaries: " + "; ".join(small) + ".")
    lines += ["- Intervals resample probe subjects (all of a person's searches together), not gallery subjects: an "
              "enrolled subject who attracts many false candidates also correlates searches, which these intervals "
              "do not capture.",
              "- Rates depend on the gallery size (see the table by size) and on the candidate-list length; compare "
              "runs only at equal sizes.",
              "- Labels are third-party annotations (" + "; ".join(
                  f"{a}: {ds.get('label_sources', {}).get(a, 'source not recorded').split(':')[0]}" for a in attrs)
              + "); unlabelled, conflict and multiple are kept as explicit groups."]
    if str(ds["name"]).lower().startswith("lfw"):
        lines.append("- LFW: its authors warn that LFW must not be used to conclude that an algorithm suits commercial "
                     "use; most LFW subjects have one image, so this gallery is small and the non-mated probes are "
                     "mostly people with a single photo.")
    lines.append("- Groups with few subjects or searches give wide intervals: read the counts before the rates.")
    return "\n".join(lines) + "\n"
