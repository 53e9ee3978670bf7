"""Label constants every layer may import (data, metrics, report, api): the special label
states and the names evalkit gives combined groups. This module imports nothing from evalkit.

Labels are strings from a dataset's own annotations. Missing or unusable labels are explicit
states, never empty strings and never dropped rows:

- ``unlabelled``: the dataset says nothing about this subject/image;
- ``conflict``: the dataset's annotations disagree (e.g. an image in both LFW sex lists);
- ``multiple``: the dataset gives several values (e.g. a multi-race label).

Combined groups:

- ``mixed``: a comparison whose two images carry different labels of an attribute; it is
  reported on its own and enters no group's rate (evalkit.metrics.groups);
- an intersection of attributes is named by joining them with ``" x "`` (``"sex x race"``), and
  its groups likewise (``"female x black"``).
"""

from __future__ import annotations

from typing import Iterable

UNLABELLED = "unlabelled"
CONFLICT = "conflict"
MULTIPLE = "multiple"
SPECIAL_LABELS = (UNLABELLED, CONFLICT, MULTIPLE)

MIXED = "mixed"
INTERSECTION_SEP = " x "


def intersection_name(parts: Iterable[str]) -> str:
    """The name of an intersection of attributes, or of one of its groups: ``"sex x race"``."""
    return INTERSECTION_SEP.join(parts)
