"""evalkit: per-demographic-group accuracy of face recognition systems, reproducibly.

Data flows one way: ``conf/`` -> dataset (samples table) -> protocol (pairs) -> backend
(embeddings, cached, failures recorded) -> scores -> metrics (pure functions) -> report (run folder).
"""

__version__ = "0.1.0"
