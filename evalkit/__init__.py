"""evalkit: per-demographic-group accuracy of face recognition systems, reproducibly.

Data flows one way: ``conf/`` -> dataset (samples table) -> protocol (which images, which
comparisons) -> backend (embeddings, cached, failures recorded) -> scores -> metrics (pure
functions) -> report (run folder).

From Python (evalkit.api)::

    import evalkit
    run = evalkit.run(["protocol.pairs_per_fold=10"])   # a Run: .metrics .scores .by_group() .disparity() .folder
    run = evalkit.load("results/lfw-lfw_view2-dlib/2026-...")
    ev = evalkit.evaluate(scores_df, labels_df, threshold=0.6)
"""

__version__ = "0.1.0"

__all__ = ["CallableBackend", "Run", "compose", "evaluate", "load", "run", "__version__"]


def __getattr__(name):   # the API is imported on first use, so `import evalkit` stays light
    if name in ("CallableBackend", "Run", "compose", "evaluate", "load", "run"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
