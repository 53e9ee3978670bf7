"""A third-party package's plug-ins, as the tests register them (by ``target:``, by entry point):
a protocol, a dataset adapter and a backend, each a real (if small) implementation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.backends.base import Backend, read_image_bgr
from evalkit.config import BackendConfig, DatasetConfig, ProtocolConfig
from evalkit.data.base import Dataset
from evalkit.data.samples import Pairs, Samples
from evalkit.protocols.pairs import PairProtocol


@dataclass
class OneFoldConfig(ProtocolConfig):
    name: str = "one_fold"
    kind: str = "one_fold"
    fold: int = 0                # LFW View 2 fold to keep
    pairs: int = 5               # first n mated + n non-mated pairs of that fold


class OneFold(PairProtocol):
    """LFW View 2, one fold only, its first ``pairs`` mated and non-mated pairs."""

    name = "one_fold"
    config_schema = OneFoldConfig

    def pairs(self, cfg, samples: Samples) -> Pairs:
        from evalkit.data.lfw import lfw_protocol

        p = cfg.protocol
        pairs = lfw_protocol(samples, cfg.dataset.root, "view2")
        keep = [np.flatnonzero((pairs.fold == p.fold) & (pairs.mated == m))[: p.pairs] for m in (True, False)]
        return pairs.subset(np.sort(np.concatenate(keep)))


@dataclass
class LFWInitialConfig(DatasetConfig):
    name: str = "lfw_initial"
    kind: str = "lfw_initial"
    root: str = "${data_dir}/lfw"
    initial: str = "A"           # keep the subjects whose name starts with this
    attributes: list[str] = field(default_factory=lambda: ["sex"])


class LFWInitial(Dataset):
    """LFW restricted to subjects whose name starts with ``initial``."""

    name = "lfw_initial"
    config_schema = LFWInitialConfig

    def load(self, cfg) -> Samples:
        from evalkit.data.lfw import load_lfw

        s = load_lfw(cfg.root)
        return s.subset(np.flatnonzero(np.char.startswith(s.subjects.astype(str), cfg.initial)))

    def files(self, cfg) -> list[Path]:
        return [Path(cfg.root) / "people.txt"]


@dataclass
class ThumbnailConfig(BackendConfig):
    name: str = "thumbnail"
    family: str = "thumbnail"
    side: int = 8
    distance: str = "euclidean"


class Thumbnail(Backend):
    """The centre crop of the image, grey, resized to side x side and normalised: a (poor) but
    real face matcher in a few lines."""

    name = "thumbnail"
    config_schema = ThumbnailConfig

    def __init__(self, side: int = 8, distance: str = "euclidean"):
        self.side = int(side)
        self.distance = distance

    def embed_one(self, path: str):
        import cv2

        img = cv2.cvtColor(read_image_bgr(path), cv2.COLOR_BGR2GRAY)
        h, w = img.shape
        crop = img[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        v = cv2.resize(crop, (self.side, self.side), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        v -= v.mean()
        return v / (np.linalg.norm(v) or 1.0)

    def fingerprint(self) -> dict:
        return {"backend": "thumbnail", "side": self.side, "version": 1}
