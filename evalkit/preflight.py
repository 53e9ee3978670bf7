"""Every value, protocol and data-shape check that can be made before the first image is embedded.

Embedding is the slow step (minutes on LFW); a mistake found after it wastes them. The pipeline
calls :func:`check` once the samples (and, for 1:1 protocols, the pairs) are known and before
any image is embedded. Each check raises ``ConfigError`` (a config value) or ``DatasetError``
(the data's shape) with what is wrong and the fix.

Checks:

- the protocol has both genuine and impostor comparisons (a dataset with one photo per person
  has no genuine pair; one subject, no impostor pair), said with the counts and the fix;
- ``threshold.deepface_default``: DeepFace has a default for this backend's model and distance;
- ``threshold.attribute``, ``intersections`` and ``reference`` name attributes the dataset has;
- ``scoring.memory_budget_mb`` is positive; ``report.formats`` are png, svg or pdf.

:func:`intersections` resolves the default intersections (``intersections: null``): every pair
of the dataset's own categorical attributes (banded numeric ones such as age are left out).
"""

from __future__ import annotations

import difflib
import itertools

import numpy as np

from .config import ConfigError
from .data.samples import DatasetError


def _unknown_attribute(key: str, name: str, have: list[str]) -> ConfigError:
    hint = difflib.get_close_matches(name, have, n=1)
    return ConfigError(f"{key}: the dataset has no attribute {name!r}; it has {have}"
                       + (f". Did you mean {hint[0]!r}?" if hint else ""))


def intersections(cfg, samples) -> list[list[str]]:
    """The intersections a run crosses: ``cfg.intersections`` when given, else every pair of the
    dataset's categorical attributes, in the dataset's order (LFW: sex x race; a CSV with sex and
    ethnicity: sex x ethnicity)."""
    given = cfg.get("intersections")
    if given is not None:
        return [list(c) for c in given]
    banded = set(getattr(samples, "banded", ()) or ())
    cats = [a for a in samples.attribute_names if a not in banded]
    return [list(c) for c in itertools.combinations(cats, 2)]


def check_config(cfg) -> None:
    """Values alone (no data needed)."""
    scoring = cfg.get("scoring")
    if scoring is not None and not float(scoring.memory_budget_mb) > 0:
        raise ConfigError(f"scoring.memory_budget_mb must be > 0, got {scoring.memory_budget_mb}")
    rep = cfg.get("report")
    for f in (rep.formats if rep is not None else None) or []:
        if f not in ("png", "svg", "pdf"):
            hint = difflib.get_close_matches(str(f), ["png", "svg", "pdf"], n=1)
            raise ConfigError(f"report.formats: {f!r} is not a figure format; choose from png, svg, pdf"
                              + (f". Did you mean {hint[0]!r}?" if hint else ""))
    if cfg.threshold.policy == "fixed" and cfg.threshold.value is None and cfg.threshold.deepface_default:
        from .protocols.base import fixed_threshold

        try:
            fixed_threshold(cfg)
        except ConfigError:
            raise
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"threshold.deepface_default=true: {exc}. Give the threshold yourself: "
                              "threshold.value=<distance>") from None


def check_data(cfg, samples, pairs=None, needs_genuine: bool = True) -> None:
    """Data shape against the config: attributes named by the config exist; the protocol's pairs
    (when given) hold genuine (unless the protocol measures FMR alone: ``needs_genuine`` False,
    protocol=impostor) and impostor comparisons."""
    have = samples.attribute_names
    att = cfg.threshold.get("attribute")
    if cfg.threshold.policy == "per_group_fmr" and att and att not in have:
        raise _unknown_attribute("threshold.attribute", att, have)
    for combo in (cfg.get("intersections") or []):
        for name in combo:
            if name not in have:
                raise _unknown_attribute("intersections", name, have)
    for name in (cfg.get("reference") or {}):
        if name not in have:
            raise _unknown_attribute("reference", name, have)
    if pairs is not None:
        n_gen, n_imp = int(pairs.mated.sum()), int((~pairs.mated).sum())
        if (n_gen == 0 and needs_genuine) or n_imp == 0:
            _, counts = np.unique(samples.subjects, return_counts=True)
            if n_gen == 0 and needs_genuine:
                why = (f"no genuine (same-person) comparison: each of the {len(counts):,} subjects has one image"
                       if counts.max() == 1 else "no genuine (same-person) comparison")
                fix = ("FNMR needs subjects with at least two images each (protocol=impostor audits FMR alone "
                       "on such data)")
            else:
                why = f"no impostor comparison: the dataset has {len(counts)} subject(s)"
                fix = "FMR needs at least two subjects"
            raise DatasetError(f"protocol {pairs.name!r} over {samples.name!r} has {n_gen:,} genuine and {n_imp:,} "
                               f"impostor comparisons: {why}. {fix}; nothing was embedded")
    kind = cfg.protocol.kind
    if kind == "exhaustive":
        _, counts = np.unique(samples.subjects, return_counts=True)
        if len(counts) < 2 or counts.max() < 2:
            raise DatasetError(f"protocol=exhaustive over {samples.name!r}: {len(counts):,} subjects, at most "
                               f"{counts.max()} image(s) each; it needs two subjects and one with two images")


def check(cfg, samples, pairs=None, needs_genuine: bool = True) -> None:
    """Every check above; the pipeline calls this once, before embedding."""
    check_config(cfg)
    check_data(cfg, samples, pairs, needs_genuine)
