"""Publication plots, one style for all: DET curves, score distributions, the cross-group FMR
heatmap, failure to enrol per group, and a figure comparing several runs group by group.

Style: the Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008, "Color Universal Design"),
viridis for the heatmap (perceptually uniform, readable with colour-vision deficiencies), text
kept as text in SVG and TrueType in PDF (editable), every axis label naming the rate and its scale.

DET: FNMR against FMR on log axes, one curve per group (ISO/IEC 19795-1 DET; Martin et al. 1997
used normal-deviate axes, evalkit uses log-log as NIST FRTE reports do).

Functions named ``*_figure`` / ``*_plot`` (except ``det_plot``) return a matplotlib Figure; write
it with ``save_figure(fig, stem)`` -> [stem.png, stem.svg, stem.pdf]. Output is deterministic:
no dates in the files, fixed SVG id salt.
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from ..metrics import rates

# Okabe-Ito colour-blind-safe palette
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]
FORMATS = ("png", "svg", "pdf")

#: The shared publication style (matplotlib rcParams).
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.prop_cycle": None,          # filled in by _rc()
    "lines.linewidth": 1.6,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "svg.fonttype": "none",           # text stays text: searchable, accessible, editable
    "svg.hashsalt": "evalkit",        # deterministic ids in SVG output
    "pdf.fonttype": 42,               # TrueType in PDF (editable in vector tools)
    "figure.dpi": 100,
}


def _rc() -> dict:
    from cycler import cycler

    rc = dict(STYLE)
    rc["axes.prop_cycle"] = cycler(color=PALETTE)
    return rc


@contextmanager
def publication_style():
    """Context in which figures are created and saved with the shared style."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context(_rc()):
        yield


def _new_figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with publication_style():
        return plt.subplots(*args, **kwargs)


def save_figure(fig, stem: str | Path, formats=FORMATS, close: bool = True) -> list[Path]:
    """Write ``fig`` as <stem>.png, <stem>.svg and <stem>.pdf (or ``formats``) with the shared
    style and no timestamps; returns the paths in that order and closes the figure."""
    import matplotlib.pyplot as plt

    written = []
    with publication_style():
        for ext in formats:
            p = Path(f"{stem}.{ext}")
            meta = {"Date": None} if ext == "svg" else {"CreationDate": None} if ext == "pdf" else None
            fig.savefig(p, format=ext, metadata=meta)
            written.append(p)
    if close:
        plt.close(fig)
    return written


def figure_svg(fig, close: bool = True) -> str:
    """The figure as SVG text (for inlining in HTML), deterministic, with the shared style."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with publication_style():
        fig.savefig(buf, format="svg", metadata={"Date": None})
    if close:
        plt.close(fig)
    return buf.getvalue()


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# --------------------------------------------------------------------------- DET


def det_figure(curves: dict, title: str, threshold=None, min_count: int = 1):
    """curves: group -> (genuine scores, impostor scores); ``threshold`` a number, or a dict
    group -> number (per-group threshold policies). Groups with fewer than ``min_count`` genuine
    or impostor comparisons are listed in the legend as too sparse rather than drawn. Points with
    a zero rate cannot sit on a log axis and are clipped to 1/(2n) of that group."""
    fig, ax = _new_figure(figsize=(6, 5) if len(curves) <= 4 else (8.6, 5))
    for i, (group, (gen, imp)) in enumerate(sorted(curves.items())):
        colour = _colour(i)
        gen, imp = np.asarray(gen, float), np.asarray(imp, float)
        if len(gen) < min_count or len(imp) < min_count:
            ax.plot([], [], color=colour, label=f"{group} (too few: {len(gen)} gen / {len(imp)} imp)")
            continue
        _, fmr, fnmr = rates.det_curve(gen, imp)
        fmr = np.clip(fmr, 0.5 / len(imp), 1)
        fnmr = np.clip(fnmr, 0.5 / len(gen), 1)
        ax.step(fmr, fnmr, where="post", color=colour, label=f"{group} ({len(gen)} gen / {len(imp)} imp)")
        t = threshold.get(group) if isinstance(threshold, dict) else threshold
        if t is not None:
            r_fmr = max(rates.fmr(imp, t), 0.5 / len(imp))
            r_fnmr = max(rates.fnmr(gen, t), 0.5 / len(gen))
            ax.plot([r_fmr], [r_fnmr], MARKERS[i % len(MARKERS)], color=colour, ms=5)
    if any(line.get_xydata().size for line in ax.lines):   # log axes need a drawn point
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no group has enough comparisons for a curve", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("False match rate (FMR, log scale; zero shown at 1/2n)")
    ax.set_ylabel("False non-match rate (FNMR, log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if threshold is not None:
        ax.plot([], [], "o", color="0.3", ms=5, ls="none", label="operating threshold")
    if len(curves) > 4:   # many groups: the legend goes beside the axes, off the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    else:
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def det_plot(curves: dict, path_stem: str | Path, title: str, threshold=None, min_count: int = 1,
             formats=("png", "svg")) -> list[Path]:
    """curves: group -> (genuine scores, impostor scores). Writes <stem>.png and <stem>.svg
    (pass ``formats=FORMATS`` for the PDF too); see ``det_figure``."""
    return save_figure(det_figure(curves, title, threshold, min_count), path_stem, formats)


# --------------------------------------------------------------------------- score distributions


def score_distribution_plot(scores: dict, title: str, threshold=None, xlabel: str = "Distance score",
                            failed: dict | None = None, ncols: int = 3):
    """Small multiples, one panel per group: histograms of genuine and impostor scores (each
    normalised to its own count, so unequal class sizes stay comparable) with the operating
    threshold as a vertical line.

    scores: group -> (genuine scores, impostor scores), finite values only.
    threshold: a number, or dict group -> number (per-group policies), or None.
    failed: group -> number of comparisons without a score (failures to enrol), named in the panel.
    """
    groups = sorted(scores)
    n = max(len(groups), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _new_figure(nrows, ncols, figsize=(3.0 * ncols + 0.6, 2.3 * nrows + 0.7), squeeze=False,
                            sharex=True)
    finite = [np.asarray(v, float) for g in groups for v in scores[g]]
    allv = np.concatenate(finite) if finite else np.array([])
    allv = allv[np.isfinite(allv)]
    lo, hi = (float(allv.min()), float(allv.max())) if len(allv) else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    bins = np.linspace(lo, hi, 41)
    for k, g in enumerate(groups):
        ax = axes[k // ncols][k % ncols]
        gen, imp = (np.asarray(v, float) for v in scores[g])
        gen, imp = gen[np.isfinite(gen)], imp[np.isfinite(imp)]
        for vals, colour, label in ((gen, PALETTE[0], "genuine"), (imp, PALETTE[1], "impostor")):
            if len(vals):
                w = np.full(len(vals), 1.0 / len(vals))
                ax.hist(vals, bins=bins, weights=w, histtype="stepfilled", alpha=0.35, color=colour)
                ax.hist(vals, bins=bins, weights=w, histtype="step", color=colour, lw=1.2,
                        label=f"{label} (n={len(vals)})")
        t = threshold.get(g) if isinstance(threshold, dict) else threshold
        if t is not None and math.isfinite(t):
            ax.axvline(t, color="0.15", ls="--", lw=1.0, label="threshold")
        extra = f"; {failed[g]} failed, not shown" if failed and failed.get(g) else ""
        ax.set_title(f"{g}{extra}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", frameon=False)
        if k % ncols == 0:
            ax.set_ylabel("Share of class (linear)")
    for k in range(len(groups), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for c in range(ncols):
        # the lowest visible axis of each column shows its tick labels
        r = max(r for r in range(nrows) if r * ncols + c < max(len(groups), 1))
        axes[r][c].tick_params(labelbottom=True)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel(xlabel, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- cross-group FMR


def cross_fmr_heatmap(cross: dict, title: str, annotate: bool = True):
    """Heatmap of the cross-group FMR matrix (metrics.json ``cross_fmr[attr]``: labels,
    false_matches, n_impostor, fmr) on a logarithmic colour scale. A cell with comparisons but no
    false match (FMR 0, not representable on a log scale) is drawn hatched grey and annotated
    "0/n"; a cell without comparisons is blank and annotated "none"."""
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Patch, Rectangle

    labels = list(cross["labels"])
    k = len(labels)
    fm = np.asarray(cross["false_matches"], dtype=float).reshape(k, k)
    n = np.asarray(cross["n_impostor"], dtype=float).reshape(k, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        fmr = np.where(n > 0, fm / np.maximum(n, 1), np.nan)
    positive = fmr[np.isfinite(fmr) & (fmr > 0)]
    side = max(3.2, 0.75 * k + 2.2)
    fig, ax = _new_figure(figsize=(side + 1.2, side))
    ax.grid(False)
    if len(positive):
        vmin, vmax = float(positive.min()), float(positive.max())
        if vmax <= vmin:
            vmin, vmax = vmin / 10, vmax * 10 if vmax * 10 <= 1 else 1.0
        norm = LogNorm(vmin=vmin, vmax=vmax)
        shown = np.ma.masked_where(~(np.isfinite(fmr) & (fmr > 0)), fmr)
        im = ax.imshow(shown, cmap="viridis", norm=norm, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("FMR at the operating threshold (log colour scale)")
    else:
        ax.imshow(np.zeros((k, k)), cmap="Greys", vmin=0, vmax=10, interpolation="nearest")
        norm = None
    for i in range(k):
        for j in range(k):
            if n[i, j] == 0:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor="0.85", lw=0.5))
                txt, colour = "none", "0.45"
            elif fm[i, j] == 0:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.88", edgecolor="0.6", hatch="///",
                                       lw=0.5))
                txt, colour = f"0/{int(n[i, j])}", "0.1"
            else:
                txt = f"{fmr[i, j]:.2g}\n{int(fm[i, j])}/{int(n[i, j])}"
                colour = "white" if norm is not None and norm(fmr[i, j]) < 0.6 else "black"
            if annotate:
                ax.text(j, i, txt, ha="center", va="center", fontsize=7 if k <= 8 else 5, color=colour)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_xlabel("Group of one subject")
    ax.set_ylabel("Group of the other subject")
    ax.set_title(title)
    fig.legend(handles=[Patch(facecolor="0.88", edgecolor="0.6", hatch="///", label="0 false matches (FMR 0)"),
                        Patch(facecolor="white", edgecolor="0.6", label="no impostor comparisons")],
               loc="lower center", ncol=2, frameon=False, fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# --------------------------------------------------------------------------- failure to enrol


def failure_to_enrol_plot(by_group: dict, title: str):
    """Failure-to-enrol rate per group with its interval, one panel per attribute.

    by_group: metrics.json ``failures.by_group``: attribute -> group -> {fte: RateEstimate, fallbacks}.
    """
    attrs = list(by_group)
    heights = [max(len(by_group[a]), 1) for a in attrs] or [1]
    fig, axes = _new_figure(len(heights), 1, figsize=(6.4, 0.9 + 0.32 * sum(heights) + 0.6 * len(heights)),
                            squeeze=False, gridspec_kw={"height_ratios": heights})
    if not attrs:
        axes[0][0].text(0.5, 0.5, "no attributes", ha="center", va="center", transform=axes[0][0].transAxes)
    for ax, attr in zip((a[0] for a in axes), attrs):
        groups = list(by_group[attr])
        fte = {g: by_group[attr][g]["fte"] for g in groups}
        y = np.arange(len(groups))
        rate = np.array([fte[g]["rate"] if fte[g]["rate"] is not None else np.nan for g in groups], float) * 100
        lo = np.array([(fte[g].get("ci") or [None, None])[0] for g in groups], float) * 100
        hi = np.array([(fte[g].get("ci") or [None, None])[1] for g in groups], float) * 100
        ax.barh(y, np.nan_to_num(rate), color=PALETTE[0], alpha=0.8, height=0.6)
        err = np.vstack([np.nan_to_num(rate - lo), np.nan_to_num(hi - rate)])
        ax.errorbar(np.nan_to_num(rate), y, xerr=np.clip(err, 0, None), fmt="none", ecolor="0.2", capsize=3, lw=1)
        xmax = float(np.nanmax(np.concatenate([hi, rate, [1.0]])))
        for yi, g in zip(y, groups):
            e = fte[g]
            ax.text(xmax * 1.02, yi, f"{e['errors']}/{e['n']}", va="center", fontsize=7)
        ax.set_xlim(0, xmax * 1.18)
        ax.set_yticks(y, groups)
        ax.invert_yaxis()
        ax.set_title(f"by {attr}", fontsize=9, loc="left")
        ax.set_xlabel("Failure-to-enrol rate (% of the group's images, linear scale; bars: 95% CI)")
        ax.grid(True, axis="x")
        ax.grid(False, axis="y")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- several runs


RATE_NAMES = {"fmr": "False match rate (FMR)", "fnmr": "False non-match rate (FNMR)",
              "fte": "Failure to enrol (FTE)",
              # one-to-many search; short, three panels a row
              "fpir": "FPIR", "fnir": "FNIR", "fnir_rank1": "FNIR at rank 1"}


def _groups_of(runs: dict, attr: str) -> list[str]:
    groups: list[str] = []
    for m in runs.values():
        for g in m.get("groups", {}).get(attr, {}):
            if g not in groups:
                groups.append(g)
    return groups


def _compare_panel(ax, runs: dict, attr: str, rate: str, scale: str, groups: list[str]) -> None:
    """One panel: each group of ``attr`` a row, each run a marker with its interval (hollow when
    the group is flagged small for this rate); a zero rate on a log scale is an open triangle at
    its 95% upper bound; a rate without comparisons is left out and named in the legend."""
    nruns = max(len(runs), 1)
    step = 0.7 / nruns
    for r, (name, m) in enumerate(runs.items()):
        colour, marker = _colour(r), MARKERS[r % len(MARKERS)]
        per = m.get("groups", {}).get(attr, {})
        missing = []
        for gi, g in enumerate(groups):
            e = (per.get(g) or {}).get(rate) or {}
            y = gi - 0.35 + step * (r + 0.5)
            if e.get("rate") is None:
                missing.append(g)
                continue
            v = e["rate"]
            ci = e.get("ci") or [None, None]
            face = "white" if e.get("small") else colour
            if v == 0 and scale == "log":
                ub = e.get("upper") or (ci[1] if ci and ci[1] else None)
                if ub:
                    ax.plot([ub], [y], marker="<", mfc="white", color=colour, ms=6, ls="none")
                continue
            if ci and ci[0] is not None:
                lo = ci[0] if (scale == "linear" or ci[0] > 0) else v
                ax.plot([lo, ci[1]], [y, y], color=colour, lw=1.2)
            ax.plot([v], [y], marker=marker, color=colour, mfc=face, ms=5, ls="none")
        th = m.get("threshold", {})
        bits = [f"thr {th['value']:.4g}" if th.get("value") is not None else (th.get("policy") or "")]
        if th.get("target") is not None:
            bits.append(f"at {str(th.get('rate') or 'fmr').upper()} {th['target']:g}")
        label = f"{name} ({' '.join(b for b in bits if b)})"
        if missing:
            label += f"; n/a: {', '.join(missing)}"
        ax.plot([], [], marker=marker, color=colour, ls="-", label=label)
    if scale == "log":
        ax.set_xscale("log")
        ax.plot([], [], marker="<", mfc="white", color="0.3", ls="none", label="0 errors: 95% upper bound")
    ax.set_yticks(range(len(groups)), groups)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.grid(True, which="both", axis="x")
    ax.grid(False, axis="y")
    ax.set_xlabel(f"{RATE_NAMES[rate]} at each run's threshold ({scale} scale; lines: 95% CI; hollow: small group)")
    ax.set_ylabel(attr)


def _check_rate_scale(rate: str, scale: str) -> None:
    if rate not in RATE_NAMES:
        raise ValueError(f"rate must be one of {sorted(RATE_NAMES)}, not {rate!r}")
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', not {scale!r}")


def compare_groups_plot(runs: dict, attr: str, rate: str = "fnmr", scale: str = "log", title: str | None = None):
    """Several runs (e.g. backends) group by group, one rate of one attribute: each group a row,
    each run a marker with its interval, at that run's own operating threshold.

    runs: run name -> metrics.json dict. rate: "fmr" or "fnmr". See ``_compare_panel``.
    """
    _check_rate_scale(rate, scale)
    groups = _groups_of(runs, attr)
    if not groups:
        raise ValueError(f"no run has groups for attribute {attr!r}")
    nruns = max(len(runs), 1)
    fig, ax = _new_figure(figsize=(6.4, 1.0 + 0.45 * len(groups) * max(1, nruns / 2)))
    _compare_panel(ax, runs, attr, rate, scale, groups)
    ax.set_title(title or f"{rate.upper()} by {attr}, {len(runs)} runs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def compare_runs_figure(runs: dict, attrs=None, scale: str = "log", title: str | None = None,
                        rates=("fnmr", "fmr")):
    """The ``evalkit compare`` figure: for every attribute (default: all the runs have) one row of
    panels, one per rate (default FNMR and FMR; search runs: ``rates=("fnir", "fpir", "fnir_rank1")``),
    each as ``compare_groups_plot`` draws it."""
    for rate in rates:
        _check_rate_scale(rate, scale)
    if attrs is None:   # the datasets' own attribute order (metrics.json is written with sorted keys)
        attrs = []
        for m in runs.values():
            for a in [*(m.get("dataset") or {}).get("attributes", []), *m.get("groups", {})]:
                if a not in attrs:
                    attrs.append(a)
    groups_of = {a: g for a in attrs if (g := _groups_of(runs, a))}
    if not groups_of:
        raise ValueError("the runs have no groups to compare")
    heights = [len(groups) * max(1, len(runs) / 2) * 0.45 + 1.6 for groups in groups_of.values()]
    fig, axes = _new_figure(len(groups_of), len(rates), figsize=(6.4 * len(rates), sum(heights) + 1.2), squeeze=False,
                            gridspec_kw={"height_ratios": heights})
    for i, (attr, groups) in enumerate(groups_of.items()):
        for j, rate in enumerate(rates):
            ax = axes[i][j]
            _compare_panel(ax, runs, attr, rate, scale, groups)
            short = RATE_NAMES[rate].split("(")[-1].rstrip(")") if "(" in RATE_NAMES[rate] else RATE_NAMES[rate]
            ax.set_title(f"{short} by {attr}", fontsize=9, loc="left")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False, fontsize=7)
    fig.suptitle(title or f"{len(runs)} runs, group by group, each at its own threshold", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- one-to-many search


def _small_of(groups_block: dict | None, rate: str) -> dict:
    """group -> reason for the groups of one attribute flagged small for ``rate`` (fpir | fnir) in
    metrics.json ``groups[attr]``."""
    out = {}
    for g, e in (groups_block or {}).items():
        r = (e or {}).get(rate) or {}
        if r.get("small"):
            out[g] = r.get("small_reason") or "flagged small"
    return out


def cmc_figure(cmc_block: dict, attr: str, title: str, small: dict | None = None):
    """Cumulative match characteristic per probe group of one attribute: the rank-k identification
    rate CMC(k) (ISO/IEC 19795-1; no threshold) against the rank k = 1..K, with the probe-subject
    bootstrap band (``ci_boot``) when metrics.json has it, and the overall curve in black.

    cmc_block: metrics.json ``search.cmc`` ({ranks, overall, groups: attr -> group -> {n,
    subjects, hits, rate, ci_boot}}). small: group -> reason (``groups[attr][g].fnir.small_reason``): those groups are drawn dashed in grey tones and labelled small.
    Groups without mated searches are named in the legend, not drawn."""
    ranks = np.asarray(cmc_block["ranks"], float)
    groups = (cmc_block.get("groups") or {}).get(attr) or {}
    small = small or {}
    fig, ax = _new_figure(figsize=(7.6, 4.6))

    def curve(e, colour, label, dashed=False, band=True, lw=None):
        rate = np.array([np.nan if r is None else r for r in e["rate"]], float)
        ax.step(ranks, rate, where="post", color=colour, ls="--" if dashed else "-", label=label,
                lw=lw or (1.1 if dashed else 1.6), alpha=0.75 if dashed else 1.0)
        ci = e.get("ci_boot")
        if band and ci:
            lo = np.array([np.nan if c is None or c[0] is None else c[0] for c in ci], float)
            hi = np.array([np.nan if c is None or c[1] is None else c[1] for c in ci], float)
            ax.fill_between(ranks, lo, hi, step="post", color=colour, alpha=0.08 if dashed else 0.15, lw=0)

    o = cmc_block.get("overall")
    if o and o.get("n"):
        curve(o, "black", f"all mated probes ({o['n']} searches / {o['subjects']} subjects)", lw=2.0)
    grey = ["0.35", "0.55", "0.7", "0.45", "0.62"]
    colour_i = small_i = 0
    empty = []
    for g, e in groups.items():
        if not e.get("n"):
            empty.append(g)
            continue
        label = f"{g} ({e['n']} searches / {e['subjects']} subjects)"
        if g in small:
            curve(e, grey[small_i % len(grey)], label + ", small", dashed=True)
            small_i += 1
        else:
            curve(e, _colour(colour_i), label)
            colour_i += 1
    if empty:
        ax.plot([], [], ls="none", label="no mated searches: " + ", ".join(empty))
    ax.set_xscale("log")
    ticks = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if k <= ranks[-1]]
    if int(ranks[-1]) not in ticks:
        ticks.append(int(ranks[-1]))
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.minorticks_off()
    ax.set_xlim(1, max(ranks[-1], 2))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Rank k (log scale)")
    ax.set_ylabel("Identification rate CMC(k) (mate within the top k; linear)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.text(0.01, 0.005, "Bands: 95% probe-subject bootstrap intervals. Dashed grey: small group "
             "(few probe subjects or mated searches).", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _size_panel(ax, sizes, entries: dict, rate: str, small: dict, log_y: bool) -> None:
    """One rate against gallery size, a line per group with interval bars (bootstrap, else exact);
    a zero rate on a log axis is an open downward triangle at its 95% upper bound."""
    k = max(len(entries), 1)
    spread = 0.06   # groups side by side on the log-x axis so bars do not overlap
    colour_i = 0
    for gi, (g, per_size) in enumerate(entries.items()):
        if all(e.get("rate") is None for e in per_size):
            ax.plot([], [], ls="none", label=f"{g}: no {'non-mated' if rate == 'fpir' else 'mated'} searches")
            continue
        colour = "black" if g == "all probes" else ("0.5" if g in small else _colour(colour_i))
        if g != "all probes" and g not in small:
            colour_i += 1
        x = np.asarray(sizes, float) * 10 ** (spread * (gi - (k - 1) / 2) / max(k, 1))
        v = np.array([np.nan if e.get("rate") is None else e["rate"] for e in per_size], float)
        ci = [e.get("ci_boot") or e.get("ci") or [None, None] for e in per_size]
        lo = np.array([np.nan if c[0] is None else c[0] for c in ci], float)
        hi = np.array([np.nan if c[1] is None else c[1] for c in ci], float)
        zero = v == 0
        shown = v.copy()
        if log_y:
            shown[zero] = np.nan
            lo = np.where(lo > 0, lo, v)
        n_last = per_size[-1]
        label = (f"{g} ({n_last.get('n')} searches / {n_last.get('subjects')} subjects at the full gallery"
                 + (", small)" if g in small else ")"))
        ls = "--" if g in small else "-"
        ax.plot(x, shown, ls=ls, marker=MARKERS[gi % len(MARKERS)], color=colour, mfc="white" if g in small else colour,
                ms=4.5, label=label, lw=1.2)
        ok = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi) & ~(zero & log_y)
        if ok.any():
            ax.errorbar(x[ok], v[ok], yerr=[np.clip(v[ok] - lo[ok], 0, None), np.clip(hi[ok] - v[ok], 0, None)],
                        fmt="none", ecolor=colour, capsize=2.5, lw=0.9, alpha=0.8)
        if log_y and zero.any() and g not in small:   # a small group's bound (e.g. 1 search: 95%) says nothing
            ub = np.array([(e.get("upper") or (e.get("ci") or [None, None])[1] or np.nan) for e in per_size], float)
            ax.plot(x[zero], ub[zero], marker="v", mfc="white", color=colour, ms=6 if g not in small else 4.5,
                    ls="none", alpha=1.0 if g not in small else 0.6)
        if not log_y and zero.any():
            ax.plot(x[zero], v[zero], marker="o", mfc="white", color=colour, ms=4.5, ls="none")
    ax.set_xscale("log")
    ax.set_xticks(list(sizes), [str(int(s)) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("Gallery size (enrolled subjects, log scale)")


def gallery_size_figure(by_size_block: dict, attr: str, title: str, small: dict | None = None):
    """FPIR and FNIR at the operating threshold against the gallery size (nested galleries), a
    line per probe group of ``attr`` plus all probes, with 95% interval bars (probe-subject
    bootstrap ``ci_boot``, else exact Clopper-Pearson ``ci``).

    by_size_block: metrics.json ``search.by_gallery_size`` ({sizes, overall: {fpir: [entry per
    size], fnir: [...]}, groups: attr -> group -> same}). small: {"fpir": {group: reason}, "fnir":
    {...}} from ``search.groups[attr]``: those groups are grey and dashed. FPIR is drawn on a log
    axis when every positive value is below 0.2 (small rates differ by factors); a zero FPIR,
    which a log axis cannot hold, is an open downward triangle at its 95% upper bound (the exact
    one-sided bound with no false positives). FNIR is linear."""
    sizes = [int(s) for s in by_size_block["sizes"]]
    groups = (by_size_block.get("groups") or {}).get(attr) or {}
    small = small or {}
    fig, axes = _new_figure(1, 2, figsize=(12.4, 5.2 + 0.17 * (len(groups) + 2)), squeeze=False)
    for j, (rate, name) in enumerate((("fpir", "False positive identification rate (FPIR)"),
                                      ("fnir", "False negative identification rate (FNIR)"))):
        ax = axes[0][j]
        entries = {"all probes": by_size_block["overall"][rate]}
        entries.update({g: v[rate] for g, v in groups.items()})
        pos = [e["rate"] for per in entries.values() for e in per if e.get("rate")]
        log_y = rate == "fpir" and bool(pos) and max(pos) < 0.2
        _size_panel(ax, sizes, entries, rate, (small.get(rate) or {}), log_y)
        if log_y:
            ax.set_yscale("log")
            ax.plot([], [], marker="v", mfc="white", color="0.3", ls="none", label="0 observed: 95% upper bound")
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel(f"{name}\nat the threshold ({'log' if log_y else 'linear'} scale; bars: 95% CI)")
        ax.set_title(f"{rate.upper()} by {attr}", fontsize=9, loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def false_candidates_heatmap(fc_block: dict, title: str, which: str = "nonmated"):
    """Who is falsely returned for whom: probe group (rows) x candidate group (columns) of the
    false candidates returned at the threshold to ``which`` probes (nonmated: people not in the
    gallery), from metrics.json ``search.false_candidates[attr]``. Each cell is coloured by its
    share of the row's false candidates and annotated with the count and that share; each column
    label carries the candidate group's share of the enrolled gallery, so a group returned more
    often than its gallery share is visible by comparing a row's shares with the labels."""
    from matplotlib.patches import Patch, Rectangle

    rows = list(fc_block["probe_labels"] if which == "nonmated" else fc_block[which]["probe_labels"])
    cols = list(fc_block["candidate_labels"])
    fc = np.asarray(fc_block[which]["false_candidates"], float).reshape(len(rows), len(cols))
    n_probes = list(fc_block[which]["n_probes"])
    share = fc_block.get("gallery_share") or {}
    with np.errstate(invalid="ignore", divide="ignore"):
        row_share = fc / fc.sum(axis=1, keepdims=True)
    k, m = len(rows), len(cols)
    fig, ax = _new_figure(figsize=(max(4.6, 1.05 * m + 2.6), max(3.0, 0.55 * k + 2.0)))
    ax.grid(False)
    shown = np.ma.masked_invalid(row_share)
    im = ax.imshow(shown, cmap="viridis", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("Share of the row's false candidates (linear)")
    for i in range(k):
        for j in range(m):
            if not np.isfinite(row_share[i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.93", edgecolor="0.8", lw=0.5))
                txt, colour = "0", "0.45"
            else:
                txt = f"{int(fc[i, j])}\n{100 * row_share[i, j]:.0f}%"
                colour = "white" if row_share[i, j] < 0.6 else "black"
            ax.text(j, i, txt, ha="center", va="center", fontsize=7 if m <= 8 else 5.5, color=colour)
    ax.set_xticks(range(m), [f"{c}\n{100 * share[c]:.1f}% of gallery" if c in share else c for c in cols],
                  rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), [f"{r} ({n} probes)" for r, n in zip(rows, n_probes)])
    ax.set_xlim(-0.5, m - 0.5)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_xlabel("Group of the falsely returned enrolled subject (and its share of the gallery)")
    ax.set_ylabel(f"Group of the {'non-mated' if which == 'nonmated' else 'mated'} probe")
    fig.suptitle(title, x=0.02, ha="left")   # over the whole figure: the colour bar label stays clear
    fig.legend(handles=[Patch(facecolor="0.93", edgecolor="0.8", label="row without false candidates")],
               loc="lower center", frameon=False, fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def audit_figure(audit: list, attr: str, title: str):
    """The audit at vendors' fixed thresholds (metrics.json ``search.audit``), one panel per
    threshold: per probe group of ``attr``, its share of the non-mated probes that were falsely
    matched (at least one false candidate) next to its share of all non-mated probes. A group
    whose first bar is longer than its second is over-represented among the falsely matched."""
    audit = list(audit)
    groups: list[str] = []
    for a in audit:
        for g in (a.get("groups") or {}).get(attr) or {}:
            if g not in groups:
                groups.append(g)
    n = max(len(audit), 1)
    fig, axes = _new_figure(1, n, figsize=(5.6 * n + 0.6, 1.9 + 0.42 * max(len(groups), 1)), squeeze=False)
    if not audit:
        axes[0][0].text(0.5, 0.5, "no audit threshold", ha="center", va="center", transform=axes[0][0].transAxes)
    for ax, a in zip(axes[0], audit):
        per = (a.get("groups") or {}).get(attr) or {}
        y = np.arange(len(groups))
        fm = np.array([np.nan if per.get(g, {}).get("share_of_falsely_matched") is None
                       else per[g]["share_of_falsely_matched"] for g in groups], float) * 100
        nm = np.array([np.nan if per.get(g, {}).get("share_of_nonmated_probes") is None
                       else per[g]["share_of_nonmated_probes"] for g in groups], float) * 100
        ax.barh(y - 0.2, np.nan_to_num(fm), height=0.38, color=PALETTE[1], label="share of the falsely matched")
        ax.barh(y + 0.2, np.nan_to_num(nm), height=0.38, color=PALETTE[0], label="share of the non-mated probes")
        top = float(np.nanmax(np.concatenate([fm, nm, [1.0]])))
        for yi, g in zip(y, groups):
            e = per.get(g, {}).get("fpir") or {}
            if e.get("n"):
                ax.text(top * 1.02, yi, f"FPIR {100 * e['rate']:.1f}% ({e['errors']}/{e['n']})", va="center", fontsize=7)
        ax.set_xlim(0, top * 1.45)
        ax.set_yticks(y, groups)
        ax.invert_yaxis()
        o = (a.get("overall") or {}).get("fpir") or {}
        ax.set_title(f"threshold {a['threshold']:.4g}: {o.get('errors')} of {o.get('n')} non-mated probes falsely "
                     "matched", fontsize=8.5, loc="left")
        ax.set_xlabel("% (linear scale)")
        ax.grid(True, axis="x")
        ax.grid(False, axis="y")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def search_figures(metrics: dict) -> list[tuple[str, str, object]]:
    """The figures of a search run, drawn from metrics.json alone: [(stem, what, make)], ``make()``
    (a ``functools.partial``, so it can be drawn in another process and cached) returning the Figure. Per attribute: cmc_<attr>, search_size_<attr>, false_candidates_<attr>,
    and audit_<attr> when the run audited a fixed threshold."""
    s = metrics["search"]
    exp = metrics.get("experiment", "")
    attrs = [a for a in [*(metrics.get("dataset") or {}).get("attributes", []), *metrics.get("groups", {})]
             if a in metrics.get("groups", {})]
    out: list[tuple[str, str, object]] = []
    for attr in dict.fromkeys(attrs):
        gb = metrics["groups"][attr]
        out.append((f"cmc_{attr}", f"CMC by {attr}", partial(
            cmc_figure, s["cmc"], attr, f"{exp}: CMC by probe {attr}", small=_small_of(gb, "fnir"))))
        out.append((f"search_size_{attr}", f"FPIR and FNIR against gallery size by {attr}", partial(
            gallery_size_figure, s["by_gallery_size"], attr,
            f"{exp}: FPIR and FNIR against gallery size by probe {attr}",
            small={"fpir": _small_of(gb, "fpir"), "fnir": _small_of(gb, "fnir")})))
        if attr in (s.get("false_candidates") or {}):
            out.append((f"false_candidates_{attr}", f"False candidates by {attr}", partial(
                false_candidates_heatmap, s["false_candidates"][attr],
                f"{exp}: false candidates for non-mated probes by {attr}")))
        if s.get("audit"):
            out.append((f"audit_{attr}", f"Audit at fixed thresholds by {attr}", partial(
                audit_figure, s["audit"], attr, f"{exp}: who is falsely matched at a fixed threshold ({attr})")))
    return out
