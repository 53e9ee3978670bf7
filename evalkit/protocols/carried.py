"""``threshold=from_run``: the source run's threshold for a protocol, refused when the source's
backend fingerprint or distance differs from this run's (evalkit.metrics.carried)."""

from __future__ import annotations


def carried_source(cfg, fingerprint: dict):
    """The source run's threshold and provenance when ``threshold.policy == "from_run"``, else None."""
    if cfg.threshold.policy != "from_run":
        return None
    from ..metrics.carried import check_fingerprint, read_source

    source = read_source(cfg.threshold.run)
    check_fingerprint(source, fingerprint, cfg.backend.distance)
    return source
