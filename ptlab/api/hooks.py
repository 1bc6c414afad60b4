"""Validation hooks filled by other packages (the API never imports them directly).

The algorithm registry registers a checker through the ``ptlab.validators`` entry point
group, so spec validation knows algorithm names and parameter ranges without the API
depending on torch. Without any checker installed, names are accepted as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

AlgorithmChecker = Callable[[str, Mapping[str, Any]], None]
"""Raises ``ValueError`` naming the problem (and close matches) for an invalid algorithm."""

_checkers: list[AlgorithmChecker] | None = None


def set_algorithm_checkers(checkers: list[AlgorithmChecker]) -> None:
    """Replace the installed checkers (tests; entry points are loaded otherwise)."""
    global _checkers
    _checkers = list(checkers)


def _load() -> list[AlgorithmChecker]:
    global _checkers
    if _checkers is None:
        _checkers = [ep.load() for ep in entry_points(group="ptlab.validators", name="algorithm")]
    return _checkers


def check_algorithm(name: str, params: Mapping[str, Any]) -> None:
    """Run every installed algorithm checker; each raises ``ValueError`` on bad input."""
    for checker in _load():
        checker(name, params)
