"""ptlab.algorithms: post-training losses and advantage estimators in one registry."""

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
