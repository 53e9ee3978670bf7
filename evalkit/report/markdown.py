"""A short Markdown summary of a run, written only from metrics.json's content."""

from __future__ import annotations


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
        hdr = ("| group | subjects | genuine | FNMR | impostor | FMR | FNMR CI (subjects) | FMR CI (subjects) | failed images |"
               if has_boot else "| group | subjects | genuine | FNMR | impostor | FMR | failed images |")
        rule = "|---|---:|---:|---|---:|---|---|---|---:|" if has_boot else "|---|---:|---:|---|---:|---|---:|"
        lines += [f"## By {name}", "", hdr, rule, *_group_rows(groups, fails.get(name, {})), ""]
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
    ds, pr, be, th = m["dataset"], m["protocol"], m["backend"], m["threshold"]
    lines = [
        f"# {m['experiment']}",
        "",
        f"- Dataset: **{ds['name']}**, {ds['n_samples']} images of {ds['n_subjects']} subjects used by the protocol.",
        f"- Protocol: **{pr['name']}**, {pr['n_comparisons']} comparisons ({pr['n_genuine']} genuine, {pr['n_impostor']} impostor).",
        f"- Backend: **{be['name']}** ({be['family']}; {be['fingerprint'].get('model', '')}, detector "
        f"{be['fingerprint'].get('detector', '?')}), distance {be['distance']}.",
    ]
    if th["policy"] == "global_fmr":
        note = "" if th["resolvable"] else (
            f" The target is below 1/{th['n_impostor']} impostors: it cannot be resolved on this data; "
            "the threshold sits below every impostor score.")
        lines.append(
            f"- Threshold: **{th['value']:.6g}** (distance), one for everyone, set on all {th['n_impostor']} impostor "
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
        lines.append(f"- Threshold: **{th['value']:.6g}** (distance), set at FMR {th['target_fmr']:g} on "
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
    header = "| group | subjects | genuine | FNMR | impostor | FMR | failed images |"
    rule = "|---|---:|---:|---|---:|---|---:|"
    o = m["overall"]
    lines += ["## Overall", "", header, rule,
              f"| all | {o['n_subjects']} | {o['n_genuine']} | {_rate(o, 'fnmr')} | {o['n_impostor']} | {_rate(o, 'fmr')} | "
              f"{f['images']['failed']}/{f['images']['n']} |", ""]
    if boot:
        b = m.get("bootstrap") or {}
        header = "| group | subjects | genuine | FNMR | impostor | FMR | FNMR CI (subjects) | FMR CI (subjects) | failed images |"
        rule = "|---|---:|---:|---|---:|---|---|---|---:|"
        lines += [f"Per group, the last interval columns come from a subject-clustered bootstrap "
                  f"({b.get('replicates', '?')} replicates, seed {b.get('seed', '?')}): pairs sharing a person are not "
                  "independent, so these are the honest ones.", ""]
    for attr, groups in m["groups"].items():
        src = ds["label_sources"].get(attr, "")
        lines += [f"## By {attr}", "", f"Labels: {src}", "", header, rule]
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
