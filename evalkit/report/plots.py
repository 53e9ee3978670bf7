"""DET plots: FNMR against FMR on log axes, one curve per group (ISO/IEC 19795-1 DET;
Martin et al. 1997 used normal-deviate axes, evalkit uses log-log as NIST FRTE reports do)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import rates

# Okabe-Ito colour-blind-safe palette
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def det_plot(curves: dict, path_stem: str | Path, title: str, threshold=None, min_count: int = 1) -> list[Path]:
    """curves: group -> (genuine scores, impostor scores). Writes <stem>.png and <stem>.svg.

    Groups with fewer than ``min_count`` genuine or impostor comparisons are listed in the legend
    as too sparse rather than drawn. Points with a zero rate cannot sit on a log axis and are
    clipped to 1/(2n) of that group (noted on the axis label).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    for i, (group, (gen, imp)) in enumerate(sorted(curves.items())):
        colour = PALETTE[i % len(PALETTE)]
        if len(gen) < min_count or len(imp) < min_count:
            ax.plot([], [], color=colour, label=f"{group} (too few: {len(gen)} gen / {len(imp)} imp)")
            continue
        _, fmr, fnmr = rates.det_curve(gen, imp)
        fmr = np.clip(fmr, 0.5 / len(imp), 1)
        fnmr = np.clip(fnmr, 0.5 / len(gen), 1)
        ax.step(fmr, fnmr, where="post", color=colour, lw=1.6, label=f"{group} ({len(gen)} gen / {len(imp)} imp)")
        if threshold is not None:
            r_fmr = max(rates.fmr(imp, threshold), 0.5 / len(imp))
            r_fnmr = max(rates.fnmr(gen, threshold), 0.5 / len(gen))
            ax.plot([r_fmr], [r_fnmr], "o", color=colour, ms=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("False match rate (FMR, log scale; zero shown at 1/2n)")
    ax.set_ylabel("False non-match rate (FNMR, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    written = []
    for ext in ("png", "svg"):
        p = Path(f"{path_stem}.{ext}")
        fig.savefig(p, metadata={"Date": None} if ext == "svg" else None)
        written.append(p)
    plt.close(fig)
    return written
