"""Reconcile steps: read state through :mod:`k8s`, decide with the pure modules, write back.

Each function recomputes everything from what the API server holds, so it can be called
any number of times, concurrently, or after a crash at any line: creation is by deterministic
name (409 = already there), results are read from the children's status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ptlab.api.models import API_VERSION, ComparisonStudy, ObjectMeta
from ptlab.errors import UserError
from ptlab.operator import builders, metrics, reducers, study_state, tracking, validation
from ptlab.operator.config import OperatorConfig
from ptlab.operator.k8s import PYTORCHJOB, Client, now_iso
from ptlab.study.plan import Observations, StudyPlan, extend_seeds, label_value, plan_study

Body = Mapping[str, Any]
CREATE_CONCURRENCY = 16


@dataclass
class Operator:
    """What every handler shares: the API client, settings, and per-study wake-ups."""

    client: Client
    config: OperatorConfig
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    tracking_due: dict[tuple[str, str], float] = field(default_factory=dict)
    """Per study: monotonic time of the next MLflow attempt after one failed."""

    def wakeup(self, namespace: str, study: str) -> asyncio.Event:
        """The event a study's daemon waits on (set when one of its children changes)."""
        return self.wakeups.setdefault((namespace, study), asyncio.Event())


def _ns_name(body: Body) -> tuple[str, str]:
    meta = body["metadata"]
    return str(meta.get("namespace") or "default"), str(meta["name"])


# --------------------------------------------------------------------------- runs


async def reconcile_run(op: Operator, body: Body) -> None:
    """Validate a new run, then create its spec ConfigMap and job (both owned by the run)."""
    status = body.get("status") or {}
    if status.get("phase") in reducers.TERMINAL or status.get("jobName"):
        return
    namespace, name = _ns_name(body)
    available = await op.client.serves(*PYTORCHJOB)
    spec = validation.parse_run_spec(body.get("spec") or {})
    if not isinstance(spec, validation.Invalid):
        spec = validation.check_run(spec, op.config, op.config.zoo, available) or spec
    if isinstance(spec, validation.Invalid):
        patch = reducers.invalid_status(spec.field, spec.message, now_iso())
        await op.client.patch_status("PostTrainingRun", namespace, name, patch)
        await op.client.event(body, "InvalidSpec", patch["message"], warning=True)
        return
    backend = builders.choose_backend(spec, available)
    configmap = builders.build_spec_configmap(name, namespace, spec, op.config)
    job = builders.build_job(name, namespace, spec, op.config, backend)
    await op.client.create(builders.owned(configmap, body))
    await op.client.create(builders.owned(job, body))
    patch = reducers.run_created_status(name, job["kind"], now_iso())
    await op.client.patch_status("PostTrainingRun", namespace, name, patch)
    await op.client.event(body, "JobCreated", patch["message"])


def _owner_run(job: Body) -> str | None:
    """Name of the PostTrainingRun controlling ``job`` (None for jobs that are not ours)."""
    for ref in job.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "PostTrainingRun" and ref.get("apiVersion") == API_VERSION:
            return str(ref["name"])
    return None


async def sync_run_from_job(op: Operator, job: Body) -> None:
    """Fold a job's status into its run's phase/conditions/times, with an Event per change."""
    run_name = _owner_run(job)
    if run_name is None:
        return
    namespace, job_name = _ns_name(job)
    run = await op.client.get(
        f"/apis/{API_VERSION}/namespaces/{namespace}/posttrainingruns/{run_name}"
    )
    if run is None:
        return
    patch = reducers.run_status_from_job(
        job_name, job.get("status") or {}, run.get("status") or {}, now_iso()
    )
    if not patch:
        return
    await op.client.patch_status("PostTrainingRun", namespace, run_name, patch)
    await op.client.event(run, patch["phase"], patch["message"], patch["phase"] == "Failed")


def observe_run(op: Operator, body: Body, deleted: bool = False) -> None:
    """Metrics of a run's phase; wake its study when it finished."""
    namespace, name = _ns_name(body)
    phase = (body.get("status") or {}).get("phase") or "Pending"
    metrics.RUN_PHASES.observe(namespace, name, None if deleted else phase)
    study = (body["metadata"].get("labels") or {}).get("ptlab.io/study")
    if study and (deleted or phase in reducers.TERMINAL):
        op.wakeup(namespace, study).set()


# --------------------------------------------------------------------------- studies


def _analyse(study: ComparisonStudy, plan: StudyPlan, children: Mapping[str, reducers.Child]) -> (
    tuple[Any, str | None]
):
    """The AnalysisResult of the final runs, or None and why it could not run.

    pandas/scipy are imported here, not at start-up: they double the operator's memory and
    are needed once per study.
    """
    import pandas as pd

    from ptlab.analysis.engine import analyze

    rows = study_state.result_rows(study, plan, children)
    spec = study.spec.analysis
    try:
        result = analyze(
            pd.DataFrame(rows),
            metric=spec.metric,
            alpha=spec.alpha,
            margin=spec.equivalence_margin,
            n_boot=spec.bootstrap,
            scale_order=[s.name for s in study.spec.scales],
        )
    except (UserError, KeyError) as err:
        return None, f"analysis not possible: {err}"
    return result, None


async def _create_children(
    op: Operator, owner: Body, plan: StudyPlan, names: list[str]
) -> None:
    """Create planned runs (owned by the study) with bounded concurrency."""
    namespace, study = _ns_name(owner)
    runs = plan.by_name()
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(name: str) -> None:
        async with gate:
            manifest = runs[name].manifest(study, namespace)
            await op.client.create(builders.owned(manifest, owner))

    await asyncio.gather(*(one(n) for n in names))


async def _write_study(op: Operator, body: Body, patch: dict[str, Any]) -> None:
    """Patch the study status; an Event when its phase changes."""
    namespace, name = _ns_name(body)
    before = (body.get("status") or {}).get("phase")
    await op.client.patch_status("ComparisonStudy", namespace, name, patch)
    if patch.get("phase") and patch["phase"] != before:
        warning = patch["phase"] == "Failed"
        await op.client.event(body, patch["phase"], patch.get("message") or "", warning)


async def _track(
    op: Operator, body: Body, study: ComparisonStudy, plan: StudyPlan, result: Any, failed: bool,
    conditions: list[dict[str, Any]],
) -> dict[str, Any]:
    """MLflow parent run + report (in a thread); after a failure, retried once due."""
    key = _ns_name(body)
    uri = tracking.tracking_uri(study, op.config.mlflow_uri)
    if uri is None or time.monotonic() < op.tracking_due.get(key, 0.0):
        return {}
    parent, error = await asyncio.to_thread(tracking.log_study, uri, study, plan, result, failed)
    if parent is None:
        op.tracking_due[key] = time.monotonic() + op.config.tracking_retry_s
    patch: dict[str, Any] = reducers.tracking_status(conditions, parent, error, now_iso())
    return patch


async def _finish(
    op: Operator, body: Body, study: ComparisonStudy, plan: StudyPlan,
    children: Mapping[str, reducers.Child], analysed: tuple[Any, str | None], final: bool,
) -> bool:
    """Write the final status (``final``) and/or log to MLflow; True when nothing is left."""
    result, problem = analysed
    analysis = result.to_json() if result is not None else {}
    previous = body.get("status") or {}
    patch: dict[str, Any] = {}
    if final:
        planned = [r.name for r in plan.runs]
        progress = reducers.study_progress_status(
            planned, children, study.spec.suspend, previous, now_iso())
        best = study_state.best_summary(analysis.get("recommendations", []))
        patch = reducers.study_final_status(progress, analysis, best, problem, now_iso())
    merged = {**previous, **patch}
    uri = tracking.tracking_uri(study, op.config.mlflow_uri)
    if reducers.needs_tracking(merged, uri):
        failed = merged.get("phase") == "Failed"
        patch.update(await _track(op, body, study, plan, result, failed, merged.get("conditions") or []))
    if patch:
        await _write_study(op, body, patch)
    return not reducers.needs_tracking({**merged, **patch}, uri)


async def reconcile_study(op: Operator, body: Body) -> bool:
    """One pass over a study: plan, create what is missing, analyse when done.

    Returns True when the study is finished (Succeeded or Failed) and, if MLflow is set, its
    parent run is logged (an unreachable MLflow is retried every ``tracking_retry_s``).
    """
    status = body.get("status") or {}
    namespace, name = _ns_name(body)
    spec = validation.parse_study_spec(body.get("spec") or {})
    if isinstance(spec, validation.Invalid):
        if status.get("phase") not in reducers.TERMINAL:
            await _write_study(op, body, reducers.invalid_status(spec.field, spec.message, now_iso()))
        return True
    study = ComparisonStudy(metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)
    uri = tracking.tracking_uri(study, op.config.mlflow_uri)
    if status.get("phase") in reducers.TERMINAL and not reducers.needs_tracking(status, uri):
        return True
    bodies = await op.client.list_labelled(
        API_VERSION, "PostTrainingRun", namespace, "ptlab.io/study", label_value(name)
    )
    observed = study_state.observations(study, bodies)
    children = {c.name: c for c in map(reducers.Child.from_body, bodies)}
    plan = plan_study(study, observed)
    if status.get("phase") in reducers.TERMINAL:  # finished; only MLflow is outstanding
        analysed = await asyncio.to_thread(_analyse, study, plan, children)
        return await _finish(op, body, study, plan, children, analysed, final=False)
    planned = [r.name for r in plan.runs]
    if plan.complete and reducers.all_finished(planned, children):
        analysed = await asyncio.to_thread(_analyse, study, plan, children)
        result = analysed[0]
        recommendations = result.to_json().get("recommendations", []) if result else []
        more, _ = extend_seeds(study, recommendations, observed.seeds)
        if any(more[c] > observed.seeds.get(c, len(spec.seeds.values())) for c in more):
            plan = plan_study(study, Observations(observed.scores, more))
            planned = [r.name for r in plan.runs]
        else:
            return await _finish(op, body, study, plan, children, analysed, final=True)
    new = reducers.runs_to_create(planned, children, spec.parallelism, spec.suspend)
    await _create_children(op, body, plan, new)
    children.update({n: reducers.Child(n, "Pending", {}) for n in new})
    progress = reducers.study_progress_status(
        planned, children, spec.suspend, status, now_iso()
    )
    await _write_study(op, body, progress)
    return False
