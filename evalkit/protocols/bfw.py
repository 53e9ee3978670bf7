"""BFW's official protocol: the datatable's pairs in its 5 folds
(``protocol.folds`` keeps some).
Config ``kind: bfw`` (conf/protocol/bfw.yaml, schema evalkit.data.bfw.BFWProtocolConfig); needs
dataset=bfw. The reading of the files is evalkit.data.bfw.official_pairs."""

from __future__ import annotations

from ..config import ConfigError
from ..data.bfw import BFWProtocolConfig, official_pairs
from ..data.samples import Pairs, Samples
from .pairs import PairProtocol


class BFWProtocol(PairProtocol):
    name = "bfw"
    config_schema = BFWProtocolConfig

    def validate(self, cfg) -> None:
        super().validate(cfg)
        if cfg.dataset.kind != "bfw":
            raise ConfigError(f"protocol=bfw is BFW's official protocol and needs dataset=bfw (got dataset="
                              f"{cfg.dataset.kind}); use protocol=generated for other datasets")

    def pairs(self, cfg, samples: Samples) -> Pairs:
        return official_pairs(cfg.dataset, samples, cfg.protocol)
