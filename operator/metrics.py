"""The operator's Prometheus metrics (served on ``/metrics``).

- ``ptlab_operator_runs{phase}``: PostTrainingRuns this operator has seen, by phase;
- ``ptlab_operator_reconcile_seconds{kind}``: reconcile latency histogram;
- ``ptlab_operator_api_errors_total{verb,code}``: failed Kubernetes API calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PHASES = ("Pending", "Running", "Succeeded", "Failed")

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILE_SECONDS = Histogram(
    "ptlab_operator_reconcile_seconds",
    "Time spent in one reconcile handler.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "ptlab_operator_api_errors_total",
    "Kubernetes API calls that failed (HTTP status or connection error).",
    ["verb", "code"],
    registry=REGISTRY,
)


class RunPhases(Collector):
    """Last seen phase of every run; exported as a gauge per phase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}

    def observe(self, namespace: str, name: str, phase: str | None) -> None:
        """Record a run's phase (``None`` forgets a deleted run)."""
        with self._lock:
            if phase is None:
                self._phases.pop((namespace, name), None)
            else:
                self._phases[(namespace, name)] = phase

    def counts(self) -> dict[str, int]:
        """Runs per phase (every phase present, possibly 0)."""
        with self._lock:
            values = list(self._phases.values())
        return {phase: values.count(phase) for phase in PHASES}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ptlab_operator_runs", "PostTrainingRuns by phase.", labels=["phase"]
        )
        for phase, count in self.counts().items():
            family.add_metric([phase], count)
        yield family


RUN_PHASES = RunPhases()
REGISTRY.register(RUN_PHASES)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Observe the wall time of the body in the reconcile histogram."""
    start = time.perf_counter()
    try:
        yield
    finally:
        RECONCILE_SECONDS.labels(kind=kind).observe(time.perf_counter() - start)


def serve(port: int, host: str = "0.0.0.0") -> Any:
    """Start the ``/metrics`` HTTP server in a thread; returns the server (``.shutdown()``)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server
