"""Formatting shared by every report writer (HTML, Markdown, check, compare): percentages, the
tagged numbers of the HTML report, figure inlining. Imports nothing else from ``evalkit.report``,
so every writer may import it without a cycle."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def pct(x) -> str:
    """A rate as a percentage: 2 decimals from 1% up, 3 significant digits below."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0%"
    v = 100 * x
    return f"{v:.2f}%" if abs(v) >= 1 else f"{v:#.3g}%"


def ratio(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def jvalue(v) -> str:
    """The exact JSON text of a value (floats round-trip: repr)."""
    return json.dumps(v)


def num(key: str, value, text: str | None = None, tag: str = "span", cls: str = "") -> str:
    """An element carrying ``data-key``/``data-value`` for a number taken from metrics.json."""
    shown = esc(text if text is not None else value)
    c = f' class="{cls}"' if cls else ""
    return f'<{tag}{c} data-key="{esc(key)}" data-value="{esc(jvalue(value))}">{shown}</{tag}>'


def rate_text(v, none: str = "n/a (not estimable)") -> str:
    return none if v is None else pct(v)


def ci_text(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"{pct(ci[0])} – {pct(ci[1])}"


def get(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def inline_svg(svg: str, prefix: str, label: str) -> str:
    """Make a matplotlib SVG safe to inline: drop the XML prologue, DOCTYPE, metadata and namespace
    URLs (HTML parsing needs none), prefix ids so several figures cannot clash, scale to width."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{esc(label)}" class="fig" ', 1)
    return svg.strip()


class Figures:
    """Numbered <figure> blocks of one page."""

    def __init__(self):
        self.n = 0

    def block(self, svg: str, caption: str, label: str) -> str:
        self.n += 1
        return (f'<figure id="fig{self.n}">{inline_svg(svg, f"f{self.n}", label)}'
                f"<figcaption><b>Figure {self.n}.</b> {caption}</figcaption></figure>")


def pipeline_svg(run_dir: Path, stem: str) -> str | None:
    """The text of a figure the pipeline wrote into the run folder (<stem>.svg), or None."""
    p = Path(run_dir) / f"{stem}.svg"
    return p.read_text() if p.is_file() else None


def rate_cells(key: str, e: dict | None) -> str:
    """Two cells for the RateEstimate at ``key``: the rate with errors/n, and its intervals (the
    exact Clopper-Pearson one; zero errors: the exact one-sided upper bound; the subject-clustered
    bootstrap one, or why there is none)."""
    if not e:
        return '<td class="rate">n/a</td><td></td>'
    v = e.get("rate")
    cell = (f'<td class="rate">{num(f"{key}.rate", v, rate_text(v))} <span class="cnt">('
            f'{num(f"{key}.errors", e.get("errors"))}/{num(f"{key}.n", e.get("n"))})</span></td>')
    parts = []
    if v is not None:
        ci = e.get("ci")
        if ci and ci[0] is not None:
            parts.append(f'<span class="iv">{num(f"{key}.ci", ci, ci_text(ci))}</span>')
        if v == 0 and e.get("upper") is not None:
            parts.append(f'<span class="note">0 observed; upper bound {num(f"{key}.upper", e["upper"], pct(e["upper"]))}'
                         "</span>")
        boot = e.get("ci_boot")
        if boot and boot[0] is not None:
            parts.append(f'<span class="boot">bootstrap {num(f"{key}.ci_boot", boot, ci_text(boot))}</span>')
    elif e.get("reason"):
        parts.append(f'<span class="note">{esc(e["reason"])}</span>')
    return cell + f'<td class="ci">{"<br>".join(parts)}</td>'
