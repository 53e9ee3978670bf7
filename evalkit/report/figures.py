"""A run's figures, drawn in parallel and reused when nothing they show has changed.

Protocols and the pipeline describe each figure as a job: a run-folder stem, the formats, and a
``functools.partial`` of a figure function of ``evalkit.report.plots`` (one returning a matplotlib
Figure) with the data it draws. ``FigureJobs.add`` looks the job up in a content-addressed cache;
a miss is drawn in a pool of worker processes (``workers``, 2 by default: drawing is most of a warm
rerun's time), started at the first miss, while the run goes on. ``FigureJobs.wait`` (before the
HTML report, which inlines the SVG) collects them; a figure that fails to draw is logged and
counted, never the end of the run.

Cache key: SHA-256 over the figure function's name, every argument (arrays by dtype, shape and
bytes; floats by their exact repr), the formats, the source of ``plots.py``, the shared style and
the matplotlib version. Figures are deterministic (no dates, a fixed SVG id salt), so a cached file
is byte for byte the file the drawing would write; a changed threshold, group, score, title, style
or evalkit's plotting code is a different key. The cache is ``<evalkit home>/figures``
(``report.figure_cache``; ``null`` turns it off); files are written atomically, so concurrent runs
may share it, and it can be deleted at any time (figures are then drawn again).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import logging
import multiprocessing as mp
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ..paths import atomic_write_bytes

log = logging.getLogger("evalkit")


def _feed(h, obj) -> bool:
    """Hash ``obj`` canonically into ``h``; False for a type with no canonical form (no caching)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, float):
        h.update(f"float:{obj!r};".encode())
    elif isinstance(obj, np.generic):
        return _feed(h, obj.item())
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        if a.dtype.kind == "O":
            return False
        h.update(f"nd:{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}[{len(obj)};".encode())
        if not all(_feed(h, x) for x in obj):
            return False
        h.update(b"]")
    elif isinstance(obj, dict):
        h.update(f"dict{{{len(obj)};".encode())
        for k in sorted(obj, key=repr):
            if not (_feed(h, k) and _feed(h, obj[k])):
                return False
        h.update(b"}")
    else:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _code_salt() -> bytes:
    import matplotlib

    from . import plots

    return (Path(plots.__file__).read_bytes() + repr(sorted(plots.STYLE.items())).encode()
            + matplotlib.__version__.encode())


def figure_key(make: functools.partial, formats) -> str | None:
    """The cache key of a figure job, or None when an argument has no canonical form."""
    h = hashlib.sha256(_code_salt())
    fn = make.func
    ok = _feed(h, [f"{fn.__module__}.{fn.__qualname__}", list(make.args), dict(make.keywords), list(formats)])
    return h.hexdigest() if ok else None


def _draw(make: functools.partial, stem: str, formats) -> list[str]:
    from . import plots

    return [str(p) for p in plots.save_figure(make(), stem, formats)]


def _init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from . import plots  # noqa: F401  (matplotlib imported once per worker)


def _atomic_copy(src: Path, dst: Path) -> None:
    atomic_write_bytes(dst, Path(src).read_bytes())   # figures are small files


class FigureJobs:
    """The figures of one run folder (see the module docstring)."""

    def __init__(self, workers: int = 2, cache_dir: str | os.PathLike | None = None):
        self.workers = max(1, int(workers))
        self.cache = Path(cache_dir) if cache_dir else None
        self._pool: cf.ProcessPoolExecutor | None = None
        self._pending: list[tuple[str, str | None, tuple, cf.Future | None, functools.partial]] = []
        self.drawn = self.reused = self.failed = 0

    def _cached(self, key: str, ext: str) -> Path:
        return self.cache / key[:2] / f"{key}.{ext}"

    def add(self, stem: str | os.PathLike, make: functools.partial, formats) -> None:
        """Schedule figure ``make()`` as ``<stem>.<ext>`` for each of ``formats``."""
        stem, formats = str(stem), tuple(formats)
        key = figure_key(make, formats) if self.cache is not None else None
        if key is not None and all(self._cached(key, ext).is_file() for ext in formats):
            try:
                for ext in formats:
                    _atomic_copy(self._cached(key, ext), Path(f"{stem}.{ext}"))
                self.reused += 1
                return
            except OSError as exc:     # removed meanwhile: draw it
                log.debug("figure cache miss for %s: %s", stem, exc)
        fut = None
        if self.workers > 1:
            if self._pool is None:
                self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                                    initializer=_init_worker)
            try:
                fut = self._pool.submit(_draw, make, stem, formats)
            except BrokenProcessPool:    # an earlier job broke the pool: this one is drawn in-process
                fut = None
        self._pending.append((stem, key, formats, fut, make))

    @staticmethod
    def _collect(fut, make, stem: str, formats) -> None:
        """A worker's figure, or the figure drawn here when it had none or its pool broke (a
        sandbox refusing processes, a killed worker)."""
        if fut is not None:
            try:
                fut.result()
                return
            except BrokenProcessPool:
                pass
        _draw(make, stem, formats)

    def wait(self) -> None:
        """Draw (or collect) every scheduled figure; store new ones in the cache."""
        try:
            for stem, key, formats, fut, make in self._pending:
                try:
                    self._collect(fut, make, stem, formats)
                except Exception as exc:   # one figure must not cost the run its report
                    self.failed += 1
                    log.warning("figure %s could not be drawn: %s: %s", Path(stem).name, type(exc).__name__, exc)
                    continue
                self.drawn += 1
                if key is not None:
                    try:
                        for ext in formats:
                            dst = self._cached(key, ext)
                            dst.parent.mkdir(parents=True, exist_ok=True)
                            _atomic_copy(Path(f"{stem}.{ext}"), dst)
                    except OSError as exc:   # a full or read-only cache only costs the next run time
                        log.debug("figure cache not written: %s", exc)
        finally:
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def summary(self) -> dict:
        return {"drawn": self.drawn, "reused": self.reused, "failed": self.failed, "workers": self.workers}
