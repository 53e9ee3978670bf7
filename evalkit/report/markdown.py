"""The Markdown summary of a run (summary.md), written only from metrics.json's content.

One code path for 1:1 verification and one-to-many search runs (schema ``evalkit.metrics/3``):
the header, the overall and per-group rate tables (one column per rate the run names in
``rates``), intersections, disparity summaries and caveats are shared; the blocks only one kind
has (per-group DET operating points, cross-group FMR and tests for 1:1; CMC, gallery sizes,
false candidates and audits for search) follow.

Every number goes through ``mdtag.num`` with the metrics.json path it comes from, so a test
(tests/report/test_summary_numbers.py) checks each against metrics.json and finds any that is not
tagged (``render_summary_traced``).
"""

from __future__ import annotations

from ..backends.scoring_base import backend_scores_text, direction_of, words
from ..metrics import results
from ..metrics.results import RATE_LABELS
from .html import pct as spct   # a rate as the HTML report shows it
from .mdtag import OVER, SUM, key_num, num, tracing


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


def _level(m: dict) -> str:
    """The run's confidence level ("95% "), tagged; empty when metrics.json does not record it."""
    c = (m.get("bootstrap") or {}).get("confidence")
    return "" if c is None else num("bootstrap.confidence", c, "level") + " "


def _tci(key: str, ci) -> str:
    """``[lo, hi]`` of the interval at ``key``, each end tagged (as report.html shows rates)."""
    return f"[{num(f'{key}.0', ci[0], 'pct')}, {num(f'{key}.1', ci[1], 'pct')}]"


def rate_text(e: dict | None, key: str = "", level: str = "95% ") -> str:
    """A RateEstimate (at metrics.json path ``key``) as ``rate (errors/n) [interval]``: the
    subject-clustered bootstrap interval when there is one, else the exact one marked "exact";
    with zero errors also the exact upper bound at ``level``; ``n/a`` (never 0) when the rate is
    not estimable."""
    if not e:
        return "n/a (no trials)"
    if e.get("rate") is None:
        return f"n/a ({num(f'{key}.n', e.get('n') or 0, 'int')} trials)"
    txt = f"{num(f'{key}.rate', e['rate'], 'pct')} ({num(f'{key}.errors', e['errors'], 'int')}/{num(f'{key}.n', e['n'], 'int')})"
    if e.get("ci_boot") and e["ci_boot"][0] is not None:
        txt += " " + _tci(f"{key}.ci_boot", e["ci_boot"])
    elif e.get("ci") and e["ci"][0] is not None:
        txt += " " + _tci(f"{key}.ci", e["ci"]) + " exact"
    if e.get("rate") == 0 and e.get("upper") is not None:
        txt += f", {level}upper bound {num(f'{key}.upper', e['upper'], 'pct')}"
    return txt


def _small_mark(e: dict, rates) -> str:
    flags = [RATE_LABELS[r] for r in rates if (e.get(r) or {}).get("small")]
    return f" (small† for {' and '.join(flags)})" if flags else ""


def _group_table(m: dict, groups: dict, fails: dict | None, overall: dict | None = None,
                 mixed: dict | None = None, mixed_label: str = "", key: str = "", fail_key: str = "",
                 mixed_key: str = "") -> list[str]:
    """One row per group: subjects, one column per rate of the run, failure to enrol. ``key``,
    ``fail_key``, ``mixed_key``: the metrics.json paths of ``groups``, ``fails`` and ``mixed``."""
    rates = results.run_rates(m)
    who = "probe group" if results.run_kind(m) == results.SEARCH else "group"
    lvl = _level(m) or "95% "
    head = (f"| {who} | subjects | " + " | ".join(f"{RATE_LABELS[r]} ({results.RATE_UNITS[r]}) [{lvl}CI]" for r in rates)
            + " | failed images |")
    lines = [head, "|---|---:|" + "---|" * len(rates) + "---:|"]
    rows = ([("**all**", overall, ((m.get("failures") or {}).get("images") or {}).get("fte"), "overall",
              "failures.images.fte")] if overall else [])
    rows += [(f"{g}{_small_mark(e, rates)}", e, ((fails or {}).get(g) or {}).get("fte"), f"{key}.{g}",
              f"{fail_key}.{g}.fte") for g, e in groups.items()]
    if mixed:
        rows.append((mixed_label, mixed, None, mixed_key, ""))
    for label, e, fte, k, fk in rows:
        shown: dict = {}   # each distinct subject count once (as before tagging), tagged by its first rate
        for r in rates:
            v = (e.get(r) or {}).get("subjects", "-")
            shown.setdefault(str(v), num(f"{k}.{r}.subjects", v, "int") if v != "-" else "-")
        subj = " / ".join(shown.values())
        ft = f"{num(f'{fk}.errors', fte['errors'], 'int')}/{num(f'{fk}.n', fte['n'], 'int')}" if fte else ""
        lines.append(f"| {label} | {subj} | " + " | ".join(rate_text(e.get(r), f"{k}.{r}", lvl) for r in rates)
                     + f" | {ft} |")
    return lines + [""]


def _threshold_lines(m: dict) -> list[str]:
    th = m["threshold"]
    w = words(direction_of(m))   # a scoring backend's scores may be similarities (backends/scoring_base.py)
    rate = RATE_LABELS.get(th.get("rate") or "fmr", "FMR")
    units = "impostor comparisons" if th.get("rate") != "fpir" else "non-mated searches"
    if th["policy"] in ("global_fmr", "global_fpir"):
        note = "" if th["resolvable"] else (
            f" The target is below one in {num('threshold.n', th['n'], 'int')} {units}: it cannot be resolved on this "
            f"data; {w['beyond_set']}.")
        return [f"- Threshold: **{num('threshold.value', th['value'], 'g6')}** ({w['kind']}): {th['label']} (achieved "
                f"{rate} {num('threshold.achieved', th['achieved'], 'g3')}).{note}"]
    if th["policy"] == "per_group_fmr":
        pattr, per = next(iter(th["per_group"].items()))
        return [f"- Threshold: **per-group (BFW style), not one threshold for everyone**: each "
                f"{th['attribute']} group at FMR {num('threshold.target', th['target'], 'g')} on its own impostors ("
                + ", ".join(f"{g}: {num(f'threshold.per_group.{pattr}.{g}.value', v['value'], 'g6')}" for g, v in per.items())
                + f"); mixed-group comparisons at the global {num('threshold.global_value', th['global_value'], 'g6')}. "
                "FMR is equalised by construction, so read the disparity in FNMR."]
    if th["policy"] == "calibrated":
        c = th["calibration"]
        return [f"- Threshold: **{num('threshold.value', th['value'], 'g6')}** ({w['kind']}), set at FMR "
                f"{num('threshold.target', th['target'], 'g')} on {c['source']} "
                f"({num('threshold.calibration.n_impostor', c['n_impostor'], 'int')} impostors) and applied unchanged here "
                f"(FMR over this run's impostors {num('threshold.achieved', th['achieved'], 'g3')})."]
    if th["policy"] == "from_run":   # threshold=from_run (evalkit.metrics.carried)
        src = th["source"]
        return [f"- Threshold: **{num('threshold.value', th['value'], 'g6')}** (distance), {th['label']}; source "
                f"metrics.json SHA-256 {num('threshold.source.metrics_sha256', src['metrics_sha256'], 'sha16')}..., same "
                f"backend fingerprint (SHA-256 {num('threshold.source.fingerprint_sha256', src['fingerprint_sha256'], 'sha16')}"
                f"...); {rate} over this run's {num('threshold.n', th['n'], 'int')} {units} "
                f"{num('threshold.achieved', th['achieved'], 'g3')}."]
    return [f"- Threshold: **{num('threshold.value', th['value'], 'g6')}** ({th.get('label') or th['policy']}; {rate} "
            f"over all {num('threshold.n', th['n'], 'int')} {units} {num('threshold.achieved', th['achieved'], 'g3')})."]


def _protocol_line(m: dict) -> str:
    pr = m["protocol"]

    def P(k):   # a protocol count, tagged
        return num(f"protocol.{k}", pr[k], "int")
    if results.run_kind(m) != results.SEARCH:
        return (f"- Protocol: **{pr['name']}**, {P('n_comparisons')} comparisons ({P('n_genuine')} genuine, "
                f"{P('n_impostor')} impostor).")
    s = m["search"]
    sizes_key = "protocol.gallery_sizes" if pr.get("gallery_sizes") else "search.by_gallery_size.sizes"
    sizes = pr.get("gallery_sizes") or s["by_gallery_size"]["sizes"]
    return (f"- Protocol: **{pr['name']}**, one-to-many search (the mugshot-database scenario): "
            f"{P('n_enrolled_subjects')} enrolled subjects ({P('n_gallery_images')} gallery images, "
            f"{P('gallery_images_per_subject') if 'gallery_images_per_subject' in pr else '?'} per subject); "
            f"{P('n_mated_probes')} mated probes from "
            f"{P('n_mated_subjects')} subjects (enrolled, searched with another image) and {P('n_nonmated_probes')} "
            f"non-mated probes from {P('n_nonmated_subjects')} subjects (enrolled nowhere); candidate list "
            f"L = {num('search.candidates', s['candidates'], 'int')}; gallery sizes "
            f"{', '.join(num(f'{sizes_key}.{i}', n, 'int') if n is not None else 'all' for i, n in enumerate(sizes))}; "
            f"split seed {P('seed') if pr.get('seed') is not None else 'None'}"
            + (f"; at most {P('max_probes_per_subject')} probes per subject" if pr.get("max_probes_per_subject") else "")
            + (f"; {P('max_subjects')} subjects sampled" if pr.get("max_subjects") else "") + ".")


def _failures_line(m: dict) -> list[str]:
    f = m["failures"]
    fte = f["images"]["fte"]
    reasons = ", ".join(f"{k}: {num(f'failures.images.by_reason.{k}', v, 'int')}"
                        for k, v in f["images"]["by_reason"].items()) or "none"
    line = (f"- Failures to enrol: {num('failures.images.fte.errors', fte['errors'], 'int')} of "
            f"{num('failures.images.fte.n', fte['n'], 'int')} images ({reasons}); policy **{m['failure_policy']}**")
    if results.run_kind(m) == results.SEARCH:
        fs = m["search"]["failed_searches"]

        def F(k):
            return num(f"search.failed_searches.{k}", fs[k], "int")
        line += (f". Failed searches: {F('mated_probe_failed')} mated and {F('nonmated_probe_failed')} non-mated "
                 f"probes without an embedding, {F('mate_not_enrolled')} mated probes whose mate has no gallery "
                 f"embedding, {F('excluded')} excluded; {fs.get('note', '')}.")
    else:
        line += (f"; comparisons touching a failure: {num('failures.comparisons.genuine', f['comparisons']['genuine'], 'int')} "
                 f"genuine, {num('failures.comparisons.impostor', f['comparisons']['impostor'], 'int')} impostor"
                 + (f"; excluded: {num('failures.excluded_comparisons', f['excluded_comparisons'], 'int')}"
                    if f["excluded_comparisons"] else "") + ".")
    out = [line]
    if f["images"].get("fallbacks"):
        out.append("- Embedded through a fallback (not failures, but not the detector's work either): " + ", ".join(
            f"{k}: {num(f'failures.images.fallbacks.{k}', v, 'int')}" for k, v in f["images"]["fallbacks"].items()) + ".")
    return out


def _rates_note(m: dict) -> str:
    b = m.get("bootstrap")
    if results.run_kind(m) == results.SEARCH:
        s = m["search"]
        w = words(direction_of(m))
        what = ("FPIR: the share of non-mated searches (the person is not enrolled) returning at least one candidate "
                f"{w['at']}. FNIR: the share of mated searches whose mate is not returned within "
                f"the top {num('search.candidates', s['candidates'], 'int')} {w['at']}; FNIR at rank 1: the mate is not "
                "the nearest enrolled subject (no threshold). NIST FRVT/FRTE 1:N definitions (NISTIR 8271). Groups are "
                f"the probe's group. Rates are at the full {num('search.gallery_size', s['gallery_size'], 'int')}-subject "
                "gallery, with ")
        unit = "probe-subject"
    else:
        what = ("FNMR: genuine comparisons not matched at the threshold; FMR: impostor comparisons matched "
                "(ISO/IEC 19795-1). " + _membership(m) + " Rates are at the threshold above, with ")
        unit = "subject-clustered"
    if b:
        return (what + f"{_level(m)}{unit} bootstrap intervals per group ({num('bootstrap.replicates', b['replicates'], 'int')} "
                f"replicates, seed {num('bootstrap.seed', b['seed'], 'int')}); "
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
             f"Over labelled groups that are not flagged small (min {num('min_count.subjects', m['min_count']['subjects'], 'int')} "
             f"subjects and {num('min_count.comparisons', m['min_count']['comparisons'], 'int')} trials of each kind; "
             "unlabelled, conflict and multiple never enter). "
             + ("Intervals: subject-clustered bootstrap." if m.get("bootstrap") else
                "No intervals: " + ((m.get("not_computed") or {}).get("bootstrap") or "bootstrap switched off") + "."),
             ""]
    for attr, block in disp.items():
        lines += [f"### {attr}", "", f"| summary | unit | value | {_level(m) or '95% '}CI | note |", "|---|---|---:|---|---|"]
        for name, d in block.items():
            unit = _disp_unit(name)
            key = f"disparity.{attr}.{name}"
            if "by_group" in d:
                for g, r in d["by_group"].items():
                    if g != d["reference"]:
                        k = f"{key}.by_group.{g}"
                        lines.append(f"| {name} ({g} / {d['reference']}) | {unit} | {num(f'{k}.value', r.get('value'), 'g3')} "
                                     f"| {_disp_ci(r, k)} |")
                continue
            if "value" not in d:
                continue
            kind = "pp3" if name == "accuracy_std" else "g3"   # the accuracy spread in percentage points
            lines.append(f"| {name} | {unit} | {num(f'{key}.value', d.get('value'), kind)} | {_disp_ci(d, key, kind)} |")
        lines.append("")
    from . import stats_sections as ss
    lines += ss.md_nist_lines(m)
    lines += ss.md_score_shift_lines(m)
    return lines


def _disp_unit(name: str) -> str:
    return {"accuracy_std": "percentage points", "fdr": "index 0-1 (1 = fair)",
            "garbe": "index 0-1 (0 = fair)"}.get(name, "ratio (1 = equal)")


def _disp_ci(d: dict, key: str, kind: str = "g3") -> str:
    """'lo–hi | note' for a disparity entry at ``key``: the interval (in the value's unit), or why
    there is none."""
    if d.get("ci") and d["ci"][0] is not None:
        return f"{num(f'{key}.ci.0', d['ci'][0], kind)}–{num(f'{key}.ci.1', d['ci'][1], kind)} | {d.get('reason') or ''}"
    why = d.get("reason") or (f"not estimable: {d['ci_reason']}" if d.get("ci_reason") else "")
    return f" | {why}"


def _verification_sections(m: dict) -> list[str]:
    """The blocks of a 1:1 run: per-group operating points, cross-group FMR, tests."""
    lines: list[str] = []
    for attr, groups in m["groups"].items():
        if not groups or "fnmr_at_fmr" not in next(iter(groups.values())):
            continue
        targets = list(next(iter(groups.values()))["fnmr_at_fmr"])
        g0 = next(iter(groups))
        lines += [f"### {attr}: each group's own DET curve", "",
                  "| group | EER | " + " | ".join(
                      f"FNMR @ FMR {key_num(f'groups.{attr}.{g0}.fnmr_at_fmr.{t}', f'{float(t):g}')}" for t in targets)
                  + " | accuracy at the threshold |",
                  "|---|---:|" + "---:|" * len(targets) + "---:|"]
        for g, v in groups.items():
            k = f"groups.{attr}.{g}"
            cells = [(num(f"{k}.fnmr_at_fmr.{t}.fnmr", v["fnmr_at_fmr"][t]["fnmr"], "pct2")
                      if v["fnmr_at_fmr"][t]["fnmr"] is not None
                      else f"n/a ({v['fnmr_at_fmr'][t].get('reason') or 'too few impostors'})") for t in targets]
            lines.append(f"| {g} | {num(f'{k}.eer', v.get('eer'), 'pct2')} | " + " | ".join(cells)
                         + f" | {num(f'{k}.accuracy', v.get('accuracy'), 'pct2')} |")
        lines.append("")
    for attr, cx in (m.get("cross_fmr") or {}).items():
        labels = cx["labels"]
        lines += [f"### {attr}: impostor FMR by the two subjects' groups", "",
                  "| | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        k = f"cross_fmr.{attr}"
        for i, a in enumerate(labels):
            cells = [("–" if cx["n_impostor"][i][j] == 0 else
                      f"{num(f'{k}.fmr.{i}.{j}', cx['fmr'][i][j], 'pct3')} ({num(f'{k}.false_matches.{i}.{j}', cx['false_matches'][i][j], 'int')}"
                      f"/{num(f'{k}.n_impostor.{i}.{j}', cx['n_impostor'][i][j], 'int')})")
                     for j in range(len(labels))]
            lines.append(f"| **{a}** | " + " | ".join(cells) + " |")
        lines.append("")
    tests = m.get("tests") or {}
    if tests:
        lines += ["## Does one group's rate differ from another's?", "",
                  "| attribute | rate | A | B | rate A | rate B | p-value | method |", "|---|---|---|---|---:|---:|---:|---|"]
        for attr, by_rate in tests.items():
            for rate, rows in by_rate.items():
                for i, r in enumerate(rows):
                    k = f"tests.{attr}.{rate}.{i}"
                    lines.append(f"| {attr} | {rate.upper()} | {r['a']} | {r['b']} | {num(f'{k}.rate_a', r['rate_a'], 'pct2')} | "
                                 f"{num(f'{k}.rate_b', r['rate_b'], 'pct2')} | {num(f'{k}.p_value', r.get('p_value'), 'g3')} | "
                                 f"{r.get('method', '').split(' (')[0]} |")
        lines.append("")
    return lines


def _search_cmc(s: dict, attr: str) -> list[str]:
    cmc = s["cmc"]
    K = len(cmc["ranks"])
    ranks = [r for r in dict.fromkeys([1, 5, 10, s["candidates"], K]) if r <= K]
    lines = ["| probe group | mated searches / subjects | "
             + " | ".join(f"CMC({num(f'search.cmc.ranks.{r - 1}', cmc['ranks'][r - 1], 'int')})" for r in ranks) + " |",
             "|---|---:|" + "---|" * len(ranks)]
    rows = [("all mated probes", cmc["overall"], "search.cmc.overall")] + [
        (g, e, f"search.cmc.groups.{attr}.{g}") for g, e in cmc["groups"].get(attr, {}).items()]
    for g, e, k in rows:
        cells = []
        for r in ranks:
            v = e["rate"][r - 1]
            ci = (e.get("ci_boot") or [None] * K)[r - 1]
            cells.append("n/a" if v is None else num(f"{k}.rate.{r - 1}", v, "pct1")
                         + (f" [{num(f'{k}.ci_boot.{r - 1}.0', ci[0], 'pct1')}, {num(f'{k}.ci_boot.{r - 1}.1', ci[1], 'pct1')}]"
                            if ci and ci[0] is not None else ""))
        lines.append(f"| {g} | {num(f'{k}.n', e['n'], 'int')} / {num(f'{k}.subjects', e['subjects'], 'int')} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def _search_by_size(s: dict, attr: str, level: str = "95% ") -> list[str]:
    b = s["by_gallery_size"]
    sizes = b["sizes"]
    lines = []
    for rate in ("fpir", "fnir"):
        lines += [f"{RATE_LABELS[rate]} at the threshold by gallery size (enrolled subjects):", "",
                  "| probe group | " + " | ".join(num(f"search.by_gallery_size.sizes.{i}", n, "int") for i, n in enumerate(sizes))
                  + " |", "|---|" + "---|" * len(sizes)]
        rows = [("all probes", b["overall"][rate], f"search.by_gallery_size.overall.{rate}")] + [
            (g, v[rate], f"search.by_gallery_size.groups.{attr}.{g}.{rate}") for g, v in b["groups"].get(attr, {}).items()]
        for g, per, k in rows:
            lines.append(f"| {g} | " + " | ".join(rate_text(e, f"{k}.{i}", level) for i, e in enumerate(per)) + " |")
        lines.append("")
    return lines


def _false_candidate_lines(fc: dict, what: str = "non-mated probes", key: str = "") -> list[str]:
    cols = fc["candidate_labels"]
    share = fc.get("gallery_share") or {}
    nm = fc["nonmated"]
    rows = fc["probe_labels"]
    fk = f"{key}.nonmated.false_candidates"
    lines = [f"| {what} \\ candidate | " + " | ".join(cols) + " | probes |", "|---|" + "---:|" * (len(cols) + 1),
             "| *share of the gallery* | " + " | ".join(num(f"{key}.gallery_share.{c}", share.get(c), "pct1") for c in cols)
             + " | |"]
    total = [0] * len(cols)
    for i, g in enumerate(rows):
        counts = nm["false_candidates"][i]
        tot = sum(counts)
        total = [a + b for a, b in zip(total, counts)]
        row_keys = SUM.join(f"{fk}.{i}.{j}" for j in range(len(counts)))   # a share of the row's total
        lines.append(f"| {g} | " + " | ".join(num(f"{fk}.{i}.{j}", c, "int")
                                              + (f" ({num(f'{fk}.{i}.{j}{OVER}{row_keys}', c / tot, 'pct0')})" if tot else "")
                                              for j, c in enumerate(counts))
                     + f" | {num(f'{key}.nonmated.n_probes.{i}', nm['n_probes'][i], 'int')} |")
    grand = sum(total)
    lines.append("")
    if grand:
        every = SUM.join(f"{fk}.{i}.{j}" for i in range(len(rows)) for j in range(len(cols)))
        over = [f"{c}: {num(SUM.join(f'{fk}.{i}.{j}' for i in range(len(rows))) + OVER + every, t / grand, 'pct1')} of "
                f"the false candidates vs {num(f'{key}.gallery_share.{c}', share.get(c), 'pct1')} of the gallery"
                for j, (c, t) in enumerate(zip(cols, total))]
        lines += ["Make-up of all false candidates against the gallery: " + "; ".join(over) + ".", ""]
    else:
        lines += ["No false candidates were returned at this threshold.", ""]
    return lines


def _audit_lines(a: dict, attrs: list[str], key: str = "", level: str = "95% ") -> list[str]:
    o = a["overall"]
    fp, fn = o["fpir"], o["fnir"]
    ok, fpk = f"{key}.overall", f"{key}.overall.fpir"
    thr = num(f"{key}.threshold", a["threshold"], "g6")
    lines = [f"### Audit at the fixed threshold {thr}", "", f"Source: {a.get('source') or 'not recorded'}.", ""]
    if fp.get("n"):
        which = "ci_boot" if fp.get("ci_boot") else "ci"
        iv = fp.get(which)
        ci = _tci(f"{fpk}.{which}", iv) if iv and iv[0] is not None and iv[1] is not None else "n/a"
        lines.append(f"Of {num(f'{fpk}.n', fp['n'], 'int')} people not in the database (non-mated probes against the "
                     f"{num(f'{key}.gallery_size', a['gallery_size'], 'int')}-subject gallery, candidate list "
                     f"{num(f'{key}.candidates', a['candidates'], 'int')}), **{num(f'{fpk}.errors', fp['errors'], 'int')} "
                     f"({num(f'{fpk}.rate', fp['rate'], 'pct')}) got at least one false candidate** at threshold {thr} "
                     f"({level}CI {ci}); {num(f'{ok}.false_candidates', o.get('false_candidates', 0), 'int')} false "
                     f"candidates in all. At the same threshold FNIR is {rate_text(fn, f'{ok}.fnir', level)}.")
    else:
        lines.append("No non-mated probes to audit.")
    lines.append("")
    for attr in attrs:
        per = (a.get("groups") or {}).get(attr) or {}
        if not per:
            continue
        lines += [f"By probe {attr}:", ""]
        for g, e in per.items():
            k = f"{key}.groups.{attr}.{g}"
            sf, sn = e.get("share_of_falsely_matched"), e.get("share_of_nonmated_probes")
            tsf = num(f"{k}.share_of_falsely_matched", sf, "pct1")
            tsn = num(f"{k}.share_of_nonmated_probes", sn, "pct1")
            share = (f"makes up {tsf} of those falsely matched and {tsn} of the non-mated probes"
                     if sf is not None else f"makes up {tsn} of the non-mated probes (nobody was falsely matched)")
            lines.append(f"- {g}: {share}; its own FPIR {rate_text(e['fpir'], f'{k}.fpir', level)}; "
                         f"FNIR {rate_text(e['fnir'], f'{k}.fnir', level)}.")
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
        lines += [f"### By probe {attr}", "", *_search_by_size(s, attr, _level(m) or "95% ")]
    lines += ["## Who is returned falsely: false candidates for non-mated probes", "",
              "At the operating threshold, full gallery: count of false candidates by probe group (rows) and the group "
              "of the returned enrolled subject (columns), with the row's share; the first row is each candidate "
              "group's share of the gallery.", ""]
    for attr in attrs:
        if attr in s.get("false_candidates", {}):
            lines += [f"### By {attr}", "", *_false_candidate_lines(s["false_candidates"][attr],
                                                                     key=f"search.false_candidates.{attr}")]
    if s.get("audit"):
        lines += ["## Audit at a vendor's fixed threshold", ""]
        for i, a in enumerate(s["audit"]):
            lines += _audit_lines(a, attrs, f"search.audit.{i}", _level(m) or "95% ")
    return lines


def render_summary(m: dict) -> str:
    """summary.md of a run, 1:1 verification or one-to-many search, from metrics.json alone: ``m``
    is first taken as metrics.json holds it (keys sorted, plain JSON values), so the summary the
    run writes from memory equals one rendered later from the file, number for number and in the
    same order."""
    import json

    m = json.loads(json.dumps(m, sort_keys=True, allow_nan=False))
    if (m.get("protocol") or {}).get("kind") == "enrolment":   # enrolment only (evalkit/report/audit.py)
        from .audit import render_enrolment_summary

        return render_enrolment_summary(m)
    ds, be = m["dataset"], m["backend"]
    search = results.run_kind(m) == results.SEARCH
    rates = results.run_rates(m)
    attrs = [a for a in dict.fromkeys([*ds.get("attributes", []), *m["groups"]]) if a in m["groups"]]
    lines = [f"# {m['experiment']}", "",
             f"- Dataset: **{ds['name']}**, {num('dataset.n_samples', ds['n_samples'], 'int')} images of "
             f"{num('dataset.n_subjects', ds['n_subjects'], 'int')} subjects used by the protocol.",
             _protocol_line(m),
             f"- Backend: **{be['name']}** ({be['family']}; {be['fingerprint'].get('model', '')}, detector "
             f"{be['fingerprint'].get('detector', '?')}), {backend_scores_text(be)}.",
             *_threshold_lines(m), *_failures_line(m)]
    if "lfw_accuracy" in m:
        a = m["lfw_accuracy"]
        lines.append(f"- LFW {num('lfw_accuracy.n_folds', a['n_folds'], 'int')}-fold accuracy: "
                     f"**{num('lfw_accuracy.mean', a['mean'], 'pct2')} ± {num('lfw_accuracy.sem', a['sem'], 'pct2')}** "
                     f"(mean ± standard error; std over folds {num('lfw_accuracy.std', a['std'], 'pct2')}).")
    if m.get("eer") is not None:
        lines.append(f"- Equal error rate: {num('eer', m['eer'], 'pct2')}.")
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
                              mixed_label=f"mixed ({attr} differs)", key=f"groups.{attr}",
                              fail_key=f"failures.by_group.{attr}", mixed_key=f"mixed.{attr}")
        if cov:
            special = [g for g in ("unlabelled", "conflict", "multiple") if g in cov]
            ck = f"dataset.label_coverage.{attr}"
            lines.append("Label coverage of the images used: " + ", ".join(
                f"{g}: {num(f'{ck}.{g}.subjects', c['subjects'], 'int')} subjects / "
                f"{num(f'{ck}.{g}.samples', c['samples'], 'int')} images" for g, c in cov.items()) + "."
                + (f" {', '.join(special)} are explicit groups, never dropped, and never enter the disparity summaries."
                   if special else ""))
            lines.append("")
    for name, groups in (m.get("intersections") or {}).items():
        lines += [f"## By {who}{name}", "", *_group_table(m, groups, fails.get(name), key=f"intersections.{name}",
                                                           fail_key=f"failures.by_group.{name}")]
    for name, why in (m.get("intersections_skipped") or {}).items():
        lines += [f"Intersection {name} not computed: {why}.", ""]
    lines += _disparity_lines(m)
    lines += _search_sections(m, attrs) if search else _verification_sections(m)
    small = [f"{a}={g} ({'; '.join(RATE_LABELS[r] + ': ' + e[r]['small_reason'] for r in rates if (e.get(r) or {}).get('small'))})"
             for a, gs in m["groups"].items() for g, e in gs.items() if results.entry_small(e, rates)]
    mc = m["min_count"]
    lines += ["## Caveats", ""]
    if small:
        lines.append(f"- † Small groups (fewer than {num('min_count.subjects', mc['subjects'], 'int')} subjects or "
                     f"{num('min_count.comparisons', mc['comparisons'], 'int')} trials of a kind, "
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


def render_summary_traced(m: dict) -> str:
    """summary.md with every number tagged (``evalkit.report.mdtag``): for the test that checks
    each against metrics.json. ``mdtag.strip`` of it is :func:`render_summary`'s text."""
    with tracing():
        return render_summary(m)
