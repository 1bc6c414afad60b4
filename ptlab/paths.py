"""Where ptlab keeps its caches (tiny-model zoo, reference log-probs)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$PTLAB_CACHE`` or ``~/.cache/ptlab``."""
    return Path(os.environ.get("PTLAB_CACHE") or Path.home() / ".cache" / "ptlab")
