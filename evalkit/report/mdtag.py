"""Tagged numbers for summary.md: every number the Markdown summary prints goes through :func:`num`
with the metrics.json path it comes from and the name of the rule that formats it (:data:`FORMATS`).

A normal rendering prints only the text. :func:`traced` renders with each number wrapped as
``\\x01<key>\\x1f<format>\\x02<text>\\x03`` so a test can check every number against metrics.json
(the Markdown twin of report.html's ``data-key`` / ``data-value``) and find any number that is not
tagged. A key is a dotted metrics.json path (list indices as numbers; keys may contain dots, such as
``fnmr_at_fmr.0.001``), or a ratio of sums of paths ``a⊕b÷c⊕d`` (:data:`SUM`, :data:`OVER`: signs
no group name uses) for the few shares the summary derives from counts. Format ``key`` marks a number that is itself the last component of the path (a
target FMR written as a metrics.json key). Imports nothing from ``evalkit.report`` but ``fmt``.
"""

from __future__ import annotations

import contextlib
import contextvars

from .fmt import pct as pct_html   # a rate as report.html shows it (one rule for both)

_TRACE = contextvars.ContextVar("evalkit_summary_trace", default=False)
START, SEP, MID, END = "\x01", "\x1f", "\x02", "\x03"
SUM, OVER = "⊕", "÷"


#: format name -> value -> text (None is always "n/a")
FORMATS = {
    "pct": pct_html,                                   # a rate, as report.html shows it
    "pct0": lambda v: f"{100 * v:.0f}%",
    "pct1": lambda v: f"{100 * v:.1f}%",
    "pct2": lambda v: f"{100 * v:.2f}%",
    "pct3": lambda v: f"{100 * v:.3f}%",
    "pts2": lambda v: f"{100 * v:.2f}",               # a fraction in percentage points, 2 decimals
    "pp3": lambda v: f"{100 * v:.3g}",                # a fraction in percentage points, 3 significant digits
    "int": lambda v: str(v),
    "g": lambda v: f"{v:g}",
    "g3": lambda v: f"{v:.3g}",
    "g6": lambda v: f"{v:.6g}",
    "level": lambda v: f"{100 * v:g}%",              # a confidence level
    "sha16": lambda v: str(v)[:16],
    # the NIST table's and score shifts' units (stats_sections.fmt is these)
    "stat_pct": pct_html, "stat_pp": lambda v: f"{100 * v:.2f}", "stat_x": lambda v: f"{v:.2f}",
    "stat_g": lambda v: f"{v:.3g}",
}


def fmt(kind: str, value) -> str:
    return "n/a" if value is None else FORMATS[kind](value)


def tag(key: str, text: str, kind: str) -> str:
    """``text`` (a number shown) tagged with its metrics.json ``key`` and format ``kind``."""
    return f"{START}{key}{SEP}{kind}{MID}{text}{END}" if _TRACE.get() else text


def num(key: str, value, kind: str) -> str:
    """The metrics.json value at ``key`` formatted by ``kind`` ("n/a" when None), tagged."""
    return tag(key, fmt(kind, value), kind)


def key_num(key: str, text: str) -> str:
    """A number that is the last component of ``key`` (a target written as a metrics.json key)."""
    return tag(key, text, "key")


@contextlib.contextmanager
def tracing():
    token = _TRACE.set(True)
    try:
        yield
    finally:
        _TRACE.reset(token)


def strip(text: str) -> str:
    """The tagged rendering without its tags: the normal rendering."""
    import re

    return re.sub(f"{START}[^{MID}]*{MID}([^{END}]*){END}", r"\1", text)
