"""RFW's official protocol: each race's ``txts/<Race>/<Race>_pairs.txt``, 10 folds x (300 genuine
+ 300 impostor), plus an optional seeded sample of cross-race impostor pairs (fold -1).
Config ``kind: rfw`` (conf/protocol/rfw.yaml, schema evalkit.data.rfw.RFWProtocolConfig); needs
dataset=rfw. The reading of the files is evalkit.data.rfw.official_pairs."""

from __future__ import annotations

from ..config import ConfigError
from ..data.rfw import RFWProtocolConfig, official_pairs
from ..data.samples import Pairs, Samples
from .pairs import PairProtocol


class RFWProtocol(PairProtocol):
    name = "rfw"
    config_schema = RFWProtocolConfig

    def validate(self, cfg) -> None:
        super().validate(cfg)
        if cfg.dataset.kind != "rfw":
            raise ConfigError(f"protocol=rfw is RFW's official protocol and needs dataset=rfw (got dataset="
                              f"{cfg.dataset.kind}); use protocol=generated for other datasets")

    def pairs(self, cfg, samples: Samples) -> Pairs:
        return official_pairs(cfg.dataset, samples, cfg.protocol)

    def summary_options(self, cfg) -> dict:
        """With ``cross_race_impostors``: the cross-race (mixed) FMR gets the subject-clustered
        bootstrap interval the per-race rates get (evalkit.metrics.summary.mixed_intervals)."""
        return {"mixed_bootstrap": bool(getattr(cfg.protocol, "cross_race_impostors", 0))}
