"""The official LFW protocols: View 2 (pairs.txt, 10 folds) and View 1 (pairsDevTrain/DevTest).

Config ``kind: lfw`` (conf/protocol/lfw_view2.yaml, lfw_view1_test.yaml); needs dataset=lfw,
whose root holds the pairs files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import ConfigError, ProtocolConfig
from ..data.samples import Pairs, Samples
from .pairs import PairProtocol


@dataclass
class LFWProtocolConfig(ProtocolConfig):
    name: str = "lfw_view2"
    kind: str = "lfw"
    split: str = "view2"                     # view2 | view1_train | view1_test
    pairs_per_fold: Optional[int] = None     # keep the first n mated + n non-mated pairs per fold (smoke runs)


class LFWProtocol(PairProtocol):
    name = "lfw"
    config_schema = LFWProtocolConfig

    def validate(self, cfg) -> None:
        super().validate(cfg)
        if cfg.dataset.kind != "lfw":
            raise ConfigError("protocol=lfw_* needs dataset=lfw; use protocol=generated for other datasets")

    def pairs(self, cfg, samples: Samples) -> Pairs:
        from ..data.lfw import lfw_protocol

        p = cfg.protocol
        pairs = lfw_protocol(samples, cfg.dataset.root, p.split)
        if p.pairs_per_fold is not None:
            keep = []
            for f in np.unique(pairs.fold):
                for m in (True, False):
                    idx = np.flatnonzero((pairs.fold == f) & (pairs.mated == m))
                    keep.extend(idx[: p.pairs_per_fold])
            pairs = pairs.subset(np.sort(np.asarray(keep)))
        return pairs
