"""Protocols as registered plug-ins: which images a run needs, how they are scored and how the
result is summarised. The contract is :mod:`evalkit.protocols.base`; one file per protocol:

- :mod:`.lfw`         LFW View 2 / View 1 pairs (``kind: lfw``)
- :mod:`.generated`   pairs generated from any samples table (``kind: generated``)
- :mod:`.exhaustive`  every image against every other, counted in chunks (``kind: exhaustive``)
- :mod:`.search`      one-to-many search, gallery and probes (``kind: search``)

They are registered by name in :data:`evalkit.registry.PROTOCOLS`; see README.md here for how to
add one (and how dataset adapters and backends register).
"""

from __future__ import annotations

from typing import Any

from ..registry import PROTOCOLS
from .base import Embedded, Plan, Protocol, RunContext  # noqa: F401


def protocol_class(protocol_cfg: Any) -> type:
    """The class of a protocol config node: its ``target`` when set, else the registered ``kind``."""
    return PROTOCOLS.resolve(protocol_cfg.get("kind"), protocol_cfg.get("target"))


def build_protocol(protocol_cfg: Any, backend_class: type | None = None) -> Protocol:
    """An instance of the protocol a config node names (see :func:`protocol_class`)."""
    cls = protocol_class(protocol_cfg)
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise TypeError(f"protocol {protocol_cfg.get('target') or protocol_cfg.get('kind')!r} is {cls!r}, "
                        "not a subclass of evalkit.protocols.base.Protocol")
    return cls(backend_class=backend_class)
