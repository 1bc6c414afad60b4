"""ptlab.algorithms: post-training losses and advantage estimators in one registry.

Importing this package registers every entry (offline and online families).
"""

from ptlab.algorithms import offline, online  # noqa: F401  (registration side effects)
from ptlab.algorithms.registry import (
    ALIASES,
    REGISTRY,
    AlgorithmSpec,
    InvalidParamError,
    UnknownAlgorithmError,
    entries,
    get,
    register,
    resolve_params,
)

__all__ = [
    "ALIASES",
    "REGISTRY",
    "AlgorithmSpec",
    "InvalidParamError",
    "UnknownAlgorithmError",
    "entries",
    "get",
    "register",
    "resolve_params",
]
