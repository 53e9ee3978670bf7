"""Pairs generated from any samples table: every mated pair among a seeded cap of images per
subject, plus every (or a seeded uniform sample of the) non-mated pairs
(evalkit.data.protocols.generated_pairs). Config ``kind: generated`` (conf/protocol/generated.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import ProtocolConfig
from ..data.samples import Pairs, Samples
from .pairs import PairProtocol


@dataclass
class GeneratedProtocolConfig(ProtocolConfig):
    name: str = "generated"
    kind: str = "generated"
    max_images_per_subject: Optional[int] = 10
    nonmated: Optional[int] = None           # None: every non-mated pair; else a seeded sample of this many
    seed: int = "${seed}"  # type: ignore[assignment]


class GeneratedProtocol(PairProtocol):
    name = "generated"
    config_schema = GeneratedProtocolConfig

    def pairs(self, cfg, samples: Samples) -> Pairs:
        from ..data.protocols import generated_pairs

        p = cfg.protocol
        return generated_pairs(samples, p.max_images_per_subject, p.nonmated, int(p.seed), name=p.name)
