"""The registry's spec-validation hook (installed via the ``ptlab.validators`` entry point).

A study algorithm name is either a registry entry (validated against its own Params) or a
named online-RL recipe such as ``grpo``/``ppo``/``rloo`` (validated by the recipe resolver,
whose flat params span options, the policy loss and the advantage estimator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ptlab.algorithms import registry


def check_algorithm(name: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or a parameter is out of range."""
    from ptlab.algorithms.online import online_algorithm_names, resolve_online_algorithm

    resolve = resolve_online_algorithm if name in online_algorithm_names() else registry.resolve_params
    try:
        resolve(name, dict(params))
    except (registry.UnknownAlgorithmError, registry.InvalidParamError) as err:
        raise ValueError(str(err)) from None
