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
        txt += f" [{_pct(ci[0], 3)}, {_pct(ci[1], 3)}]"
    if ub is not None and r == 0:
        txt += f" (0 observed; 95% upper bound {_pct(ub, 3)})"
    return txt


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
    if th["policy"] == "target_fmr":
        note = "" if th["resolvable"] else (
            f" The target is below 1/{th['n_impostor']} impostors: it cannot be resolved on this data; "
            "the threshold sits below every impostor score.")
        lines.append(
            f"- Threshold: **{th['value']:.6g}** (distance), one for everyone, set on all {th['n_impostor']} impostor "
            f"comparisons at target FMR {th['target_fmr']:g} (achieved {th['achieved_fmr']:.3g}).{note}")
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
    header = "| group | subjects | genuine | FNMR | impostor | FMR | failed images |"
    rule = "|---|---:|---:|---|---:|---|---:|"
    o = m["overall"]
    lines += ["## Overall", "", header, rule,
              f"| all | {o['n_subjects']} | {o['n_genuine']} | {_rate(o, 'fnmr')} | {o['n_impostor']} | {_rate(o, 'fmr')} | "
              f"{f['images']['failed']}/{f['images']['n']} |", ""]
    for attr, groups in m["groups"].items():
        src = ds["label_sources"].get(attr, "")
        lines += [f"## By {attr}", "", f"Labels: {src}", "", header, rule]
        fails = f["by_group"].get(attr, {})
        for g, v in groups.items():
            fg = fails.get(g, {})
            lines.append(f"| {g} | {v['n_subjects']} | {v['n_genuine']} | {_rate(v, 'fnmr')} | {v['n_impostor']} | "
                         f"{_rate(v, 'fmr')} | {fg.get('failed', 0)}/{fg.get('n_images', 0)} |")
        mx = m["mixed"][attr]
        lines.append(f"| mixed ({attr} differs) | {mx['n_subjects']} | {mx['n_genuine']} | {_rate(mx, 'fnmr')} | "
                     f"{mx['n_impostor']} | {_rate(mx, 'fmr')} | |")
        lines.append("")
        cov = ds["label_coverage"].get(attr, {})
        if cov:
            lines.append("Label coverage of the images used: " + ", ".join(
                f"{g}: {c['subjects']} subjects / {c['samples']} images" for g, c in cov.items()) + ".")
            lines.append("")
    lines.append("Groups with few subjects or comparisons give wide intervals: read the counts before the rates.")
    return "\n".join(lines) + "\n"
