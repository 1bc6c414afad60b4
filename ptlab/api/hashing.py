"""Content hashes of resolved specs: same spec → same hash → the run is reused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no whitespace) of a model or plain data."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any, length: int = 16) -> str:
    """Hex SHA-256 prefix of :func:`canonical_json` (16 hex chars = 64 bits)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]
