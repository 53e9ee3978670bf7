"""Face recognition backends behind one small contract (see ``base.Backend``).

The registry (:data:`evalkit.registry.BACKENDS`) maps a backend family name to its class,
imported only when used; other packages add families through the ``evalkit.backends`` entry
point group, and ``backend.target: package.module:Class`` names a class directly.
"""

from __future__ import annotations

from typing import Any

from ..registry import BACKENDS  # noqa: F401  (re-exported: it lived here)


def backend_class(backend_cfg: Any) -> type:
    """The class of a backend config node: its ``target`` when set, else the registered ``family``."""
    get = backend_cfg.get if hasattr(backend_cfg, "get") else (lambda k, d=None: getattr(backend_cfg, k, d))
    return BACKENDS.resolve(get("family"), get("target"))


def build_backend(family: str, options: dict, target: str | None = None):
    """Instantiate a backend of the given family with its options (no model loaded yet); ``target``
    (or a family written as ``"package.module:Class"``) names the class directly."""
    cls = BACKENDS.resolve(family, target)
    return cls(**options)
