"""Every number of a metrics.json schema 2 file is in its schema-3 successor, unchanged.

    python benchmarks/schema3_same_numbers.py OLD_RUN_OR_METRICS NEW_RUN_OR_METRICS [OLD NEW ...]

Schema ``evalkit.metrics/3`` changed only the layout (every rate one nested RateEstimate; the
search rates moved to the top-level ``overall``/``groups``/``intersections``/``disparity``; one
threshold record; failure to enrol as an estimate). This script maps every leaf of the old file
to its place in the new one by the rules below and asserts the values are equal (floats exactly,
``[null, null]`` intervals as ``null``). It fails when an old leaf has no place in the new file or
its value differs; it prints how many leaves it compared and how many new leaves the old file had
no counterpart for (new fields such as ``estimable``, ``reason``, ``subjects`` of failure to
enrol).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FLAT = {"fmr": ("fmr", "rate"), "fmr_ci": ("fmr", "ci"), "fmr_upper_bound": ("fmr", "upper"),
        "false_matches": ("fmr", "errors"), "n_impostor": ("fmr", "n"), "fmr_ci_boot": ("fmr", "ci_boot"),
        "fmr_ci_boot_reason": ("fmr", "ci_boot_reason"), "small_fmr": ("fmr", "small"),
        "small_fmr_reason": ("fmr", "small_reason"),
        "fnmr": ("fnmr", "rate"), "fnmr_ci": ("fnmr", "ci"), "fnmr_upper_bound": ("fnmr", "upper"),
        "false_nonmatches": ("fnmr", "errors"), "n_genuine": ("fnmr", "n"), "fnmr_ci_boot": ("fnmr", "ci_boot"),
        "fnmr_ci_boot_reason": ("fnmr", "ci_boot_reason"), "small_fnmr": ("fnmr", "small"),
        "small_fnmr_reason": ("fnmr", "small_reason")}
RENAME = {"n_subjects": "subjects", "upper_bound": "upper"}
SEARCH_SMALL = {"small_fpir": [("fpir", "small")], "small_fpir_reason": [("fpir", "small_reason")],
                "small_fnir": [("fnir", "small"), ("fnir_rank1", "small")],
                "small_fnir_reason": [("fnir", "small_reason"), ("fnir_rank1", "small_reason")]}
FTE = {"n_images": ("fte", "n"), "n": ("fte", "n"), "failed": ("fte", "errors"), "rate": ("fte", "rate"),
       "ci": ("fte", "ci")}
THRESHOLD = {"target_fmr": "target", "target_fpir": "target", "achieved_fmr": "achieved", "achieved_fpir": "achieved",
             "n_impostor": "n", "n_nonmated": "n"}
DERIVED = "derived"   # group-level small / small_reason of 1:1 entries: any rate flagged, reasons joined


def leaves(d, path=()):
    """path tuple -> value; lists of scalars (intervals, curves) are leaves, lists of dicts are walked."""
    if isinstance(d, dict):
        if not d:
            yield path, d
        for k, v in d.items():
            yield from leaves(v, path + (k,))
    elif isinstance(d, list) and d and any(isinstance(x, (dict, list)) for x in d):
        for i, v in enumerate(d):
            yield from leaves(v, path + (i,))
    else:
        yield path, d


def norm(v):
    if isinstance(v, list) and v and all(x is None for x in v):
        return None
    return v


def _entry_path(p: tuple, kind: str):
    """If ``p`` lies in a group entry: (entry prefix in v3, key inside the entry), else None."""
    if kind == "search":
        if p[:2] == ("search", "overall"):
            return ("overall",), p[2:]
        if p[:2] in (("search", "groups"), ("search", "intersections")) and len(p) >= 5:
            return (p[1], p[2], p[3]), p[4:]
        return None
    if p[:1] == ("overall",):
        return ("overall",), p[1:]
    if p[:1] in (("groups",), ("intersections",)) and len(p) >= 4:
        return p[:3], p[3:]
    if p[:1] == ("mixed",) and len(p) >= 3:
        return p[:2], p[2:]
    return None


def map_path(p: tuple, kind: str) -> list[tuple] | str:
    """v2 leaf path -> its v3 paths (or DERIVED)."""
    if p == ("schema",):
        return []
    e = _entry_path(p, kind)
    if e is not None:
        prefix, rest = e
        k = rest[0]
        if kind == "search":
            if k in SEARCH_SMALL:
                return [prefix + x for x in SEARCH_SMALL[k]]
            return [prefix + (rest[0], RENAME.get(rest[1], rest[1])) + rest[2:]]
        if k in FLAT:
            return [prefix + FLAT[k]]
        if k == "n_subjects":
            return [prefix + ("fmr", "subjects"), prefix + ("fnmr", "subjects")]
        if k in ("small", "small_reason"):
            return DERIVED
        return [prefix + rest]
    if kind == "search" and p[:1] == ("search",):
        if p[1] == "disparity":
            return [p[1:]]
        return [tuple(RENAME.get(x, x) if isinstance(x, str) else x for x in p)]
    if p[:2] == ("failures", "images") and p[2] in FTE:
        return [p[:2] + FTE[p[2]]]
    if p[:2] == ("failures", "by_group") and len(p) >= 5 and p[4] in FTE:
        return [p[:4] + FTE[p[4]]]
    if p[:1] == ("threshold",):
        if len(p) == 2:
            return [("threshold", THRESHOLD.get(p[1], p[1]))]
        if p[1] == "per_group" and len(p) == 5:
            return [p[:4] + (THRESHOLD.get(p[4], p[4]),)]
    return [p]


def compare(old: dict, new: dict) -> tuple[int, int]:
    kind = "search" if (old.get("protocol") or {}).get("kind") == "search" else "verification"
    assert old["schema"] == "evalkit.metrics/2", old["schema"]
    assert new["schema"] == "evalkit.metrics/3" and new["kind"] == kind, (new["schema"], new.get("kind"))
    nl = dict(leaves(new))
    used, n, problems = set(), 0, []
    for p, v in leaves(old):
        targets = map_path(p, kind)
        if targets == DERIVED:
            prefix = _entry_path(p, kind)[0]
            flags = [nl.get(prefix + (r, "small")) for r in ("fmr", "fnmr")]
            if p[-1] == "small" and bool(v) != any(flags):
                problems.append(f"{p}: small {v} but the rates say {flags}")
            n += 1
            continue
        if not targets:
            continue
        if kind == "search" and p[:1] == ("threshold",) and p[1] in ("target_fmr", "achieved_fmr") and v is None:
            continue   # v2 search runs carried empty FMR threshold fields
        for t in targets:
            if t not in nl:
                problems.append(f"{p} -> {t}: missing in the new file")
                continue
            used.add(t)
            if norm(nl[t]) != norm(v):
                problems.append(f"{p} -> {t}: {v!r} != {nl[t]!r}")
            n += 1
    if problems:
        raise AssertionError(f"{len(problems)} differences:\n  " + "\n  ".join(problems[:40]))
    return n, len(set(nl) - used)


def _load(p: str) -> dict:
    p = Path(p)
    return json.loads((p / "metrics.json" if p.is_dir() else p).read_text())


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__)
        return 2
    for old, new in zip(argv[::2], argv[1::2]):
        n, extra = compare(_load(old), _load(new))
        print(f"OK {old} -> {new}: {n} values equal; {extra} new fields")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
