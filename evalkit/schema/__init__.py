"""The JSON Schema of metrics.json (``metrics.schema.json``, schema ``evalkit.metrics/3``)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def metrics_schema() -> dict:
    """The JSON Schema every metrics.json evalkit writes conforms to."""
    return json.loads(resources.files(__package__).joinpath("metrics.schema.json").read_text())


def validate_metrics(metrics: dict) -> None:
    """Raise ``jsonschema.ValidationError`` (with the path of the offending value) unless ``metrics``
    conforms to the schema. Needs the ``jsonschema`` package (the ``test`` extra)."""
    import jsonschema

    jsonschema.Draft202012Validator(metrics_schema()).validate(metrics)
