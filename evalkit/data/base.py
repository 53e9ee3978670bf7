"""The dataset adapter contract (see the package docstring of evalkit.data for how to add one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .samples import Samples


class Dataset:
    """A dataset adapter: turns its config node into a :class:`~evalkit.data.samples.Samples` table.

    Subclasses set ``name`` (the ``kind`` of their conf/dataset yaml and their registry name)
    and ``config_schema`` (a dataclass subclassing evalkit.config.DatasetConfig), and implement
    ``load``; ``files`` names the annotation files a run depends on (their SHA-256 go into the
    run record). An instance is made per call (``Adapter()``), so keep ``__init__`` argument-free.
    """

    name: ClassVar[str] = ""
    config_schema: ClassVar[type | None] = None

    def load(self, cfg: Any) -> Samples:
        """The samples table: ids, paths, subjects and one label per attribute per image, with
        the special states of evalkit.labels for missing or unusable labels."""
        raise NotImplementedError

    def files(self, cfg: Any) -> list[Path]:
        """Annotation files the samples table was read from (hashed into record.json)."""
        return []
