"""Where evalkit keeps its own files; light on purpose (no backend, no model library), so the
config layer can name the cache folder without importing any backend."""

from __future__ import annotations

import os
from pathlib import Path


def evalkit_home() -> Path:
    """evalkit's own cache/weights folder: $EVALKIT_HOME, else ~/.cache/evalkit."""
    return Path(os.environ.get("EVALKIT_HOME", Path.home() / ".cache" / "evalkit"))
