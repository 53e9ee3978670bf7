"""Name -> lazily imported object registries: protocols, datasets and backends.

Heavy libraries (dlib, DeepFace, onnxruntime) load only when the backend that needs them is
used: a registry maps a name to a ``"module:attr"`` string and imports it on first ``get``.

Three ways in, looked up in this order:

1. the built-in lines at the bottom of this file (``PROTOCOLS``, ``DATASETS``, ``BACKENDS``);
   adding a protocol, dataset adapter or backend to evalkit is one file plus one line here;
2. Python package entry points of another installed distribution, groups ``evalkit.protocols``,
   ``evalkit.datasets`` and ``evalkit.backends`` (``name = "package.module:Class"`` in its
   ``[project.entry-points."evalkit.backends"]`` table); the name is then usable in configs
   (``backend.family=name``) like a built-in one. A name clashing with another raises;
3. a ``target: package.module:Class`` key in the config node (``protocol.target``,
   ``dataset.target``, ``backend.target``): that class is used for the node, registered or not.

Unknown names raise :class:`RegistryError` with a "did you mean" hint and the known names.

Each entry may also name its config schema (a dataclass, ``schema="module:attr"``): it is
registered in Hydra's ConfigStore as ``<group>/base_<name>`` by :func:`evalkit.config.register`,
so a yaml in ``conf/<group>/`` starts with ``defaults: [base_<name>, _self_]``. Without an explicit
schema the registered class's ``config_schema`` attribute is used, when it has one.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any


class RegistryError(KeyError):
    """An unknown or duplicate name; the message carries a "did you mean" hint."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted: ``module:Class.method``)."""
    if not isinstance(target, str) or ":" not in target:
        raise RegistryError(f"target must look like 'package.module:attr', got {target!r}")
    module_name, attr = target.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import {module_name!r} for target {target!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RegistryError(f"target {target!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


class Registry:
    """One kind of plug-in: built-in names registered in code plus an entry-point group."""

    def __init__(self, kind: str, entry_point_group: str | None = None, config_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.config_group = config_group
        self._targets: dict[str, str] = {}
        self._schemas: dict[str, str] = {}
        self._eps: dict[str, str] | None = None
        self._eps_key: tuple | None = None

    def register(self, name: str, target: str, *, schema: str | None = None) -> None:
        """Register ``name`` -> ``"module:attr"`` (imported on first use); ``schema``: its
        config dataclass as ``"module:attr"`` (default: the class's ``config_schema``)."""
        if name in self._targets:
            raise RegistryError(f"{self.kind} {name!r} is already registered (as {self._targets[name]})")
        for t in (target, schema):
            if t is not None and ":" not in t:
                raise ValueError(f"target must look like 'package.module:attr', got {t!r}")
        self._targets[name] = target
        if schema is not None:
            self._schemas[name] = schema

    # -- entry points ---------------------------------------------------------------------
    def _entry_points(self) -> dict[str, str]:
        """name -> "module:attr" from installed distributions' entry points (re-read when sys.path changes)."""
        if self.entry_point_group is None:
            return {}
        key = tuple(sys.path)
        if self._eps is None or self._eps_key != key:
            from importlib.metadata import distributions

            found: dict[str, tuple[str, str]] = {}
            for dist in distributions():
                for ep in dist.entry_points:
                    if ep.group != self.entry_point_group:
                        continue
                    dist_name = dist.metadata.get("Name", "?")
                    if ep.name in found and found[ep.name][0] != ep.value:
                        raise RegistryError(
                            f"{self.kind} {ep.name!r} is declared twice in entry point group "
                            f"{self.entry_point_group!r} ({found[ep.name][1]}: {found[ep.name][0]}; {dist_name}: {ep.value})")
                    found[ep.name] = (ep.value, dist_name)
            for name, (value, dist_name) in found.items():
                if name in self._targets and self._targets[name] != value:
                    raise RegistryError(
                        f"{self.kind} {name!r} from the entry point of distribution {dist_name!r} ({value}) clashes "
                        f"with evalkit's own {self._targets[name]}; rename the entry point")
            self._eps = {n: v for n, (v, _) in found.items()}
            self._eps_key = key
        return self._eps

    def refresh(self) -> None:
        """Forget the entry points read so far (they are read again on the next lookup)."""
        self._eps = None

    # -- lookups --------------------------------------------------------------------------
    def _all(self) -> dict[str, str]:
        return {**self._entry_points(), **self._targets}

    def names(self) -> list[str]:
        return sorted(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def target(self, name: str) -> str:
        everything = self._all()
        if name not in everything:
            hint = difflib.get_close_matches(str(name), list(everything), n=1)
            did_you_mean = f" did you mean {hint[0]!r}?" if hint else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{did_you_mean} Known: {', '.join(sorted(everything))}"
            )
        return everything[name]

    def get(self, name: str) -> Any:
        return load_target(self.target(name))

    def resolve(self, name: str | None, target: str | None = None) -> Any:
        """The object for a config node: its ``target`` when given, else the registered ``name``
        (a name containing ``":"`` is itself taken as a ``"module:attr"`` target)."""
        if target:
            return load_target(target)
        if isinstance(name, str) and ":" in name:
            return load_target(name)
        return self.get(name)  # type: ignore[arg-type]

    def schema(self, name: str) -> type | None:
        """The config dataclass of ``name``: the registered schema, else the class's ``config_schema``."""
        if name in self._schemas:
            return load_target(self._schemas[name])
        return getattr(self.get(name), "config_schema", None)


# -- the built-in plug-ins ---------------------------------------------------------------------
# A protocol: a class following evalkit.protocols.base.Protocol; its name is the `kind` of its
# conf/protocol yaml. A dataset: a class following evalkit.data.base.Dataset (name = `kind`; see
# evalkit/data/__init__.py).
# A backend: a subclass of evalkit.backends.base.Backend (name = `family`); its schema lives in
# evalkit.config so that reading it never imports the backend's model library.
PROTOCOLS = Registry("protocol", "evalkit.protocols", "protocol")
PROTOCOLS.register("lfw", "evalkit.protocols.lfw:LFWProtocol")
PROTOCOLS.register("generated", "evalkit.protocols.generated:GeneratedProtocol")
PROTOCOLS.register("exhaustive", "evalkit.protocols.exhaustive:ExhaustiveProtocol")
PROTOCOLS.register("search", "evalkit.protocols.search:SearchProtocol")
PROTOCOLS.register("rfw", "evalkit.protocols.rfw:RFWProtocol")
PROTOCOLS.register("bfw", "evalkit.protocols.bfw:BFWProtocol")
PROTOCOLS.register("impostor", "evalkit.protocols.impostor:ImpostorProtocol")
PROTOCOLS.register("enrolment", "evalkit.protocols.enrolment:EnrolmentProtocol")

DATASETS = Registry("dataset", "evalkit.datasets", "dataset")
DATASETS.register("lfw", "evalkit.data.lfw:LFWDataset", schema="evalkit.config:LFWDatasetConfig")
DATASETS.register("csv", "evalkit.data.csv_table:CSVDataset", schema="evalkit.config:CSVDatasetConfig")
for _name, _cls in (("rfw", "RFW"), ("bfw", "BFW"), ("vggface2", "VGGFace2"), ("celeba", "CelebA"), ("adience", "Adience"),
                    ("utkface", "UTKFace"), ("fairface", "FairFace"), ("diveface", "DiveFace"), ("morph", "Morph")):
    # the demographic benchmarks (evalkit/data/<name>.py); schema: the module's <Name>DatasetConfig
    DATASETS.register(_name, f"evalkit.data.{_name}:{_cls}Dataset", schema=f"evalkit.data.{_name}:{_cls}DatasetConfig")

BACKENDS = Registry("backend", "evalkit.backends", "backend")
BACKENDS.register("dlib", "evalkit.backends.dlib_native:DlibBackend", schema="evalkit.config:DlibBackendConfig")
BACKENDS.register("deepface", "evalkit.backends.deepface_backend:DeepFaceBackend",
                  schema="evalkit.config:DeepFaceBackendConfig")
BACKENDS.register("facenet", "evalkit.backends.facenet:FaceNetBackend", schema="evalkit.config:FaceNetBackendConfig")
BACKENDS.register("onnx", "evalkit.backends.onnx_backend:OnnxBackend", schema="evalkit.config:OnnxBackendConfig")
BACKENDS.register("lbph", "evalkit.backends.lbph:LBPHBackend", schema="evalkit.config:LBPHBackendConfig")
# scoring backends: scores, not embeddings (evalkit.backends.scoring_base); schemas in their own files
BACKENDS.register("rekognition", "evalkit.backends.rekognition:RekognitionBackend")
BACKENDS.register("scores", "evalkit.backends.score_file:ScoreFileBackend")
