"""Checks only the operator can make (admission already ran the schema and CEL rules).

A failed check names the offending field; the run goes to phase Failed once, with a
condition ``Validated=False`` carrying that message, and is never retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ptlab.api.models import ComparisonStudySpec, PostTrainingRunSpec
from ptlab.operator.config import OperatorConfig


@dataclass(frozen=True)
class Invalid:
    """Why a spec cannot run: the dotted field path and a one-line message with the fix."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _from_pydantic(err: ValidationError) -> Invalid:
    """First pydantic error as an :class:`Invalid` (the path starts at ``spec``)."""
    first = err.errors()[0]
    path = ".".join(str(p) for p in ("spec", *first["loc"]))
    return Invalid(path, str(first["msg"]).removeprefix("Value error, "))


def parse_run_spec(raw: Mapping[str, Any]) -> PostTrainingRunSpec | Invalid:
    """The typed spec of a PostTrainingRun, or why it is invalid (unknown algorithm, ...)."""
    try:
        return PostTrainingRunSpec.model_validate(dict(raw))
    except ValidationError as err:
        return _from_pydantic(err)


def parse_study_spec(raw: Mapping[str, Any]) -> ComparisonStudySpec | Invalid:
    """The typed spec of a ComparisonStudy, or why it is invalid."""
    try:
        return ComparisonStudySpec.model_validate(dict(raw))
    except ValidationError as err:
        return _from_pydantic(err)


def check_run(
    spec: PostTrainingRunSpec,
    config: OperatorConfig,
    zoo_models: frozenset[str],
    pytorchjob_available: bool,
) -> Invalid | None:
    """Cluster-dependent checks: model known, resources that exist, a budget that can run."""
    res, training = spec.resources, spec.training
    name = spec.model.name
    if name and name.startswith("zoo/") and name not in zoo_models:
        known = ", ".join(sorted(zoo_models)) or "none installed"
        return Invalid("spec.model.name", f"unknown model {name!r} (zoo models: {known})")
    if res.gpus > config.max_gpus_per_node:
        return Invalid(
            "spec.resources.gpus",
            f"{res.gpus} GPUs per node exceeds the {config.max_gpus_per_node} a node provides"
            f" ({res.nodes} nodes × {config.max_gpus_per_node} GPUs at most); lower resources.gpus"
            " or add nodes",
        )
    if res.nodes > config.max_nodes:
        return Invalid(
            "spec.resources.nodes", f"{res.nodes} nodes exceeds the cluster's {config.max_nodes}"
        )
    multi_node_job = res.nodes > 1 and (
        res.backend == "job" or (res.backend == "auto" and not pytorchjob_available)
    )
    if multi_node_job:
        return Invalid(
            "spec.resources.nodes",
            "a batch Job runs on one node; set nodes: 1 or install the Kubeflow training"
            " operator (backend: pytorchjob)",
        )
    if res.backend == "pytorchjob" and not pytorchjob_available:
        return Invalid(
            "spec.resources.backend",
            "PyTorchJob CRD (kubeflow.org/v1) is not installed; use backend: auto or job",
        )
    if spec.rollout.engine == "vllm" and res.gpus == 0:
        return Invalid("spec.rollout.engine", "vllm needs resources.gpus >= 1; use engine: hf")
    budget = training.budget
    per_step = training.batch_size * training.grad_accum
    if budget.tokens is not None and budget.tokens < per_step:
        return Invalid(
            "spec.training.budget.tokens",
            f"{budget.tokens} tokens cannot fit one optimizer step of {per_step} sequences;"
            " raise the budget or lower batch_size × grad_accum",
        )
    if budget.steps is not None and training.warmup_steps >= budget.steps:
        return Invalid(
            "spec.training.warmup_steps",
            f"warmup ({training.warmup_steps} steps) uses the whole budget ({budget.steps}"
            " steps); lower warmup_steps",
        )
    return None
