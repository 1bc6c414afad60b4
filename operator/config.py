"""Operator settings: one frozen dataclass, read once from the environment at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

ENV_PREFIX = "PTLAB_OPERATOR_"


@dataclass(frozen=True)
class OperatorConfig:
    """Settings of the operator (the Helm chart sets them as ``PTLAB_OPERATOR_<FIELD>``)."""

    image: str = "ghcr.io/ptlab/ptlab:0.1.0"
    """Trainer image used when a run does not set ``resources.image``."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of trainer containers."""
    trainer_service_account: str = "ptlab-trainer"
    """Service account of trainer pods (may only patch ``posttrainingruns/status``)."""
    mlflow_uri: str = ""
    """MLflow tracking URI given to runs that do not set ``tracking.mlflow_uri``."""
    trainer_metrics_port: int = 9090
    """Port on which trainer pods serve Prometheus metrics."""
    max_gpus_per_node: int = 8
    """Largest ``resources.gpus`` a node can provide; more fails the run (field named)."""
    max_nodes: int = 64
    """Largest ``resources.nodes`` the cluster can provide."""
    backoff_limit: int = 2
    """Pod restarts of a job before it counts as failed (the trainer resumes from checkpoints)."""
    study_interval_s: float = 5.0
    """Seconds between reconciliations of an unfinished ComparisonStudy."""
    study_min_pass_s: float = 1.0
    """Shortest time between two passes over one study (child changes in between coalesce)."""
    tracking_retry_s: float = 60.0
    """Seconds between attempts to log a finished study to an unreachable MLflow."""
    zoo_models: str = "zoo/s1,zoo/s2,zoo/s3,zoo/s4"
    """Comma-separated tiny-zoo model names (a test keeps this equal to the trainer's zoo)."""
    metrics_port: int = 8080
    """Port of the operator's own ``/metrics`` endpoint (0 = off)."""

    @property
    def zoo(self) -> frozenset[str]:
        """The tiny-zoo model names as a set."""
        return frozenset(n.strip() for n in self.zoo_models.split(",") if n.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read ``PTLAB_OPERATOR_*`` variables; missing ones keep their defaults."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = type(getattr(cls, f.name))
            try:
                values[f.name] = kind(raw)
            except ValueError as err:
                raise ValueError(
                    f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind.__name__}"
                ) from err
        return cls(**values)  # type: ignore[arg-type]
