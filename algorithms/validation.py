"""The registry's spec-validation hook (installed via the ``ptlab.validators`` entry point)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ptlab.algorithms import registry


def check_algorithm(name: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or a parameter is out of range."""
    import ptlab.algorithms  # noqa: F401  (registers every entry)

    try:
        registry.resolve_params(name, params)
    except (registry.UnknownAlgorithmError, registry.InvalidParamError) as err:
        raise ValueError(str(err)) from None
