"""Datasets -> one samples table; protocols -> pairs over it.

``load_dataset(cfg)`` and ``build_pairs(cfg, samples)`` dispatch on the config's ``kind``.
"""

from __future__ import annotations

from pathlib import Path

from .samples import CONFLICT, MULTIPLE, UNLABELLED, DatasetError, Pairs, Samples  # noqa: F401


def load_dataset(cfg) -> Samples:
    """Samples table for a dataset config (LFWDatasetConfig or CSVDatasetConfig)."""
    if cfg.kind == "lfw":
        from .lfw import load_lfw

        samples = load_lfw(cfg.root, images_dir=cfg.images_dir)
    elif cfg.kind == "csv":
        from .csv_table import load_csv_dataset

        samples = load_csv_dataset(cfg.path, name=cfg.name, attributes=list(cfg.attributes) or None,
                                   numeric_bands={k: list(v) for k, v in cfg.numeric_bands.items()},
                                   per_subject=list(cfg.get("per_subject") or []))
    else:
        from .adapters import adapter

        samples = adapter(cfg.kind).load(cfg)
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
    if cfg.kind == "lfw":
        from .download import LFW_FILES

        root = Path(cfg.root)
        return [root / f.dest for f in LFW_FILES if (root / f.dest).is_file()]
    if cfg.kind != "csv":
        from .adapters import adapter

        return adapter(cfg.kind).annotation_files(cfg)
    return [Path(cfg.path)]


def build_pairs(cfg, samples: Samples, dataset_cfg) -> Pairs:
    """Pairs for a protocol config over the samples table."""
    import numpy as np

    if cfg.kind == "lfw":
        from .lfw import lfw_protocol

        pairs = lfw_protocol(samples, dataset_cfg.root, cfg.split)
        if cfg.pairs_per_fold is not None:
            keep = []
            for f in np.unique(pairs.fold):
                for m in (True, False):
                    idx = np.flatnonzero((pairs.fold == f) & (pairs.mated == m))
                    keep.extend(idx[: cfg.pairs_per_fold])
            pairs = pairs.subset(np.sort(np.asarray(keep)))
    elif cfg.kind == "generated":
        from .protocols import generated_pairs

        pairs = generated_pairs(samples, cfg.max_images_per_subject, cfg.nonmated, int(cfg.seed), name=cfg.name)
    elif cfg.kind in ("rfw", "bfw"):   # a dataset's official pairs (evalkit/data/<dataset>.py)
        from .adapters import adapter

        pairs = adapter(cfg.kind).official_pairs(dataset_cfg, samples, cfg)
    else:
        raise DatasetError(f"unknown protocol kind {cfg.kind!r}")
    pairs.check_against(samples)
    return pairs
