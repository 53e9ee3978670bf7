"""A small name -> lazily imported object registry.

Heavy libraries (dlib, DeepFace, onnxruntime) load only when the backend that needs them is
used: the registry maps a name to a ``"module:attr"`` string and imports it on first ``get``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any


class RegistryError(KeyError):
    """An unknown or duplicate name; the message carries a "did you mean" hint."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._targets: dict[str, str] = {}

    def register(self, name: str, target: str) -> None:
        if name in self._targets:
            raise RegistryError(f"{self.kind} {name!r} is already registered (as {self._targets[name]})")
        if ":" not in target:
            raise ValueError(f"target must look like 'package.module:attr', got {target!r}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def target(self, name: str) -> str:
        if name not in self._targets:
            hint = difflib.get_close_matches(name, self._targets, n=1)
            did_you_mean = f" did you mean {hint[0]!r}?" if hint else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{did_you_mean} Known: {', '.join(self.names())}"
            )
        return self._targets[name]

    def get(self, name: str) -> Any:
        module_name, attr = self.target(name).split(":", 1)
        return getattr(importlib.import_module(module_name), attr)
