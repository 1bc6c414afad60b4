"""kopf handlers: decorators and a few lines each; the work is in :mod:`reconcile`.

Run with ``ptlab operator`` or ``kopf run -m ptlab.operator.handlers --all-namespaces``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import kopf

from ptlab.api.models import GROUP, VERSION
from ptlab.operator import k8s, metrics, reconcile
from ptlab.operator.config import OperatorConfig

RUNS = (GROUP, VERSION, "posttrainingruns")
STUDIES = (GROUP, VERSION, "comparisonstudies")
OURS = {"ptlab.io/run": kopf.PRESENT}


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """Service account in a pod, else the kubeconfig (same for the operator's own client)."""
    info: kopf.ConnectionInfo = k8s.login(settings)
    return info


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Settings, the API client, and the metrics server."""
    config = OperatorConfig.from_env()
    settings.persistence.finalizer = "ptlab.io/operator"
    settings.posting.enabled = False  # our own Events (deterministic names) instead
    settings.watching.server_timeout = 300
    memo.op = reconcile.Operator(k8s.Client.connect(k8s.login(settings)), config)
    memo.metrics_server = (
        metrics.serve(config.metrics_port) if config.metrics_port else None
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("metrics_server"):
        memo.metrics_server.shutdown()
    await memo.op.client.close()


@kopf.on.resume(*RUNS)
@kopf.on.create(*RUNS)
async def run_created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Validate the run, then create its ConfigMap and PyTorchJob/Job."""
    with metrics.timed("PostTrainingRun"):
        await reconcile.reconcile_run(memo.op, body)


@kopf.on.event(*RUNS)
def run_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Phase metrics; a finished child wakes its study."""
    reconcile.observe_run(memo.op, body, deleted=type == "DELETED")


@kopf.on.event("kubeflow.org", "v1", "pytorchjobs", labels=OURS)
@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Job conditions → run phase, conditions, message, times and Events."""
    if type != "DELETED":
        with metrics.timed("Job"):
            await reconcile.sync_run_from_job(memo.op, body)


@kopf.on.update(*STUDIES, field="spec")
def study_changed(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A spec change (e.g. ``suspend``) takes effect at once, not at the next interval."""
    memo.op.wakeup(namespace or "default", name).set()


@kopf.daemon(*STUDIES, cancellation_timeout=5.0)
async def study_daemon(
    body: kopf.Body, name: str, namespace: str | None, memo: kopf.Memo, stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Reconcile a study until it finishes: on every child change, else every interval."""
    op: reconcile.Operator = memo.op
    wake = op.wakeup(namespace or "default", name)
    while not stopped:
        wake.clear()
        started = time.monotonic()
        with metrics.timed("ComparisonStudy"):
            if await reconcile.reconcile_study(op, body):
                return
        await _wait(wake, op.config.study_interval_s)
        # a burst of child changes (1,000 runs finishing) becomes one pass, not one each
        await asyncio.sleep(op.config.study_min_pass_s - (time.monotonic() - started))


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event`` or ``timeout`` seconds, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
