"""Check JSON values against botocore's Rekognition service model (the shapes AWS documents).

``validate(value, shape_name)`` returns a list of problems (empty: the value fits the shape): a
member the shape does not have, a missing required member, a wrong type, a string outside its
enum, pattern or length bounds, a number outside its min/max. The fake endpoint checks every
request with it, and the tests check every response.
"""

from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def model() -> dict:
    import botocore

    root = Path(botocore.__file__).parent / "data" / "rekognition"
    version = sorted(p.name for p in root.iterdir() if p.is_dir())[-1]
    f = root / version / "service-2.json"
    return json.loads(gzip.open(f"{f}.gz").read() if not f.exists() else f.read_text())


def operation_shapes(operation: str) -> tuple[str, str]:
    op = model()["operations"][operation]
    return op["input"]["shape"], op["output"]["shape"]


def validate(value, shape_name: str, path: str = "$") -> list[str]:
    shapes = model()["shapes"]
    sh = shapes[shape_name]
    t = sh["type"]
    out: list[str] = []
    if t == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({shape_name}), got {type(value).__name__}"]
        for k in sh.get("required", []):
            if k not in value:
                out.append(f"{path}: missing required member {k!r} of {shape_name}")
        for k, v in value.items():
            if k not in sh["members"]:
                out.append(f"{path}: {shape_name} has no member {k!r}")
                continue
            out += validate(v, sh["members"][k]["shape"], f"{path}.{k}")
    elif t == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list ({shape_name})"]
        if "min" in sh and len(value) < sh["min"] or "max" in sh and len(value) > sh["max"]:
            out.append(f"{path}: list length {len(value)} outside [{sh.get('min')}, {sh.get('max')}]")
        for i, v in enumerate(value):
            out += validate(v, sh["member"]["shape"], f"{path}[{i}]")
    elif t == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map ({shape_name})"]
        for k, v in value.items():
            out += validate(v, sh["value"]["shape"], f"{path}[{k!r}]")
    elif t == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string ({shape_name}), got {type(value).__name__}"]
        if "enum" in sh and value not in sh["enum"]:
            out.append(f"{path}: {value!r} not in {shape_name}'s enum {sh['enum']}")
        if "pattern" in sh and not re.fullmatch(sh["pattern"], value):
            out.append(f"{path}: {value!r} does not match {shape_name}'s pattern {sh['pattern']}")
        if "min" in sh and len(value) < sh["min"] or "max" in sh and len(value) > sh["max"]:
            out.append(f"{path}: string length {len(value)} outside [{sh.get('min')}, {sh.get('max')}]")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: expected an integer ({shape_name})"]
        if "min" in sh and value < sh["min"] or "max" in sh and value > sh["max"]:
            out.append(f"{path}: {value} outside [{sh.get('min')}, {sh.get('max')}]")
    elif t in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"{path}: expected a number ({shape_name})"]
        if "min" in sh and value < sh["min"] or "max" in sh and value > sh["max"]:
            out.append(f"{path}: {value} outside [{sh.get('min')}, {sh.get('max')}]")
    elif t == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean ({shape_name})")
    elif t == "timestamp":
        if not isinstance(value, (int, float)):
            out.append(f"{path}: expected an epoch-seconds number ({shape_name})")
    elif t == "blob":
        if not isinstance(value, str):
            out.append(f"{path}: expected base64 text ({shape_name})")
    else:
        out.append(f"{path}: shape type {t} not checked")
    return out
