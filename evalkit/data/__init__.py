"""Datasets -> one samples table. ``load_dataset(cfg)`` dispatches on the config's ``kind``
through the registry (:data:`evalkit.registry.DATASETS`); protocols (evalkit.protocols) then
choose comparisons over the table.

How a dataset adapter registers (one file + one registry line)
--------------------------------------------------------------

1. ``evalkit/data/<name>.py`` holds the config schema and the adapter class::

       from dataclasses import dataclass, field
       from evalkit.config import DatasetConfig
       from evalkit.data.base import Dataset
       from evalkit.data.samples import Samples

       @dataclass
       class RFWDatasetConfig(DatasetConfig):      # name, kind, attributes, target come from DatasetConfig
           name: str = "rfw"
           kind: str = "rfw"
           root: str = "${data_dir}/rfw"
           attributes: list[str] = field(default_factory=lambda: ["race"])

       class RFWDataset(Dataset):
           name = "rfw"
           config_schema = RFWDatasetConfig       # stored in Hydra's ConfigStore as dataset/base_rfw

           def load(self, cfg) -> Samples:        # cfg: the resolved dataset node (cfg.dataset)
               ...                                # read annotations; labels: strings, evalkit.labels states
           def files(self, cfg) -> list[Path]:    # annotation files, hashed into record.json
               ...

   ``load(cfg) -> Samples`` and ``files(cfg) -> list[Path]`` are the whole contract; the
   adapter is instantiated without arguments for each call. Keep the module's imports light
   (its schema is read at config registration): import heavy readers inside ``load``.
2. One line in ``evalkit/registry.py``::

       DATASETS.register("rfw", "evalkit.data.rfw:RFWDataset")

   (the schema is taken from the class's ``config_schema``; ``schema="module:attr"`` names it
   explicitly instead).
3. ``conf/dataset/rfw.yaml``::

       defaults:
         - base_rfw
         - _self_

Another package registers the same class without touching evalkit, through the entry point
group ``evalkit.datasets`` (``rfw = "mypkg.rfw:RFWDataset"`` in its pyproject's
``[project.entry-points."evalkit.datasets"]``), or names it per run with
``dataset.target=mypkg.rfw:RFWDataset``.

After ``load``, :func:`load_dataset` keeps only the attributes listed in ``cfg.attributes``
(all of them when empty) and raises :class:`DatasetError` naming any that are missing.
"""

from __future__ import annotations

from pathlib import Path

from .samples import CONFLICT, MULTIPLE, UNLABELLED, DatasetError, Pairs, Samples  # noqa: F401


def dataset_adapter(cfg):
    """An instance of the adapter a dataset config node names (``target`` or registered ``kind``)."""
    from ..registry import DATASETS

    return DATASETS.resolve(cfg.get("kind"), cfg.get("target"))()


def load_dataset(cfg) -> Samples:
    """Samples table for a dataset config node, restricted to its ``attributes`` (when listed)."""
    samples = dataset_adapter(cfg).load(cfg)
    if not isinstance(samples, Samples):
        raise DatasetError(f"dataset adapter for {cfg.get('target') or cfg.kind!r} returned {type(samples).__name__}, "
                           "not evalkit.data.samples.Samples")
    wanted = list(cfg.attributes)
    missing = [a for a in wanted if a not in samples.attributes]
    if missing:
        raise DatasetError(f"dataset {cfg.name!r} has no attribute(s) {missing}; it has {samples.attribute_names}")
    if wanted:
        samples = Samples(samples.name, samples.ids, samples.paths, samples.subjects,
                          {a: samples.attributes[a] for a in wanted},
                          {a: samples.label_sources.get(a, "") for a in wanted})
    return samples


def dataset_files(cfg) -> list[Path]:
    """The annotation files a run depends on (hashed into the run record)."""
    return list(dataset_adapter(cfg).files(cfg))
