"""Pure status reducers: observed objects in, the status patch to write out (no I/O).

Run status is a function of the job's status (PyTorchJob or batch Job) and the previous run
status; study status is a function of the plan and the children that exist. Because both are
recomputed from what the API server holds, an operator restarted at any point converges to
the same status, never creates a child twice (names are deterministic) and never loses a
result (results live in the children's status).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ptlab.api.models import Phase

Status = dict[str, Any]
TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed"})
ACTIVE: frozenset[str] = frozenset({"Pending", "Running"})


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> list[dict[str, Any]]:
    """Conditions with ``type_`` set; ``lastTransitionTime`` only moves when status flips."""
    value = "True" if status else "False"
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != value
        when = now if changed else cond.get("lastTransitionTime", now)
        out.append(_condition(type_, value, reason, message, when))
    if not found:
        out.append(_condition(type_, value, reason, message, now))
    return out


def _condition(type_: str, value: str, reason: str, message: str, when: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }


def _true(conditions: Iterable[Mapping[str, Any]], *types: str) -> Mapping[str, Any] | None:
    """The latest condition of one of ``types`` whose status is True."""
    hits = [c for c in conditions if c.get("type") in types and c.get("status") == "True"]
    return hits[-1] if hits else None


def job_phase(job_status: Mapping[str, Any]) -> tuple[Phase, str]:
    """(phase, message) of a PyTorchJob or batch Job status.

    PyTorchJob conditions: Created, Running, Restarting, Succeeded, Failed; batch Job:
    Complete, Failed (plus ``active`` pods). Terminal conditions win over Running.
    """
    conditions = job_status.get("conditions") or []
    done = _true(conditions, "Succeeded", "Complete")
    if done:
        return "Succeeded", str(done.get("message") or "job succeeded")
    failed = _true(conditions, "Failed")
    if failed:
        return "Failed", str(failed.get("message") or failed.get("reason") or "job failed")
    running = _true(conditions, "Running", "Restarting")
    if running or job_status.get("active"):
        message = running.get("message") if running else None
        return "Running", str(message or "job is running")
    return "Pending", "waiting for the job's pods to start"


def run_status_from_job(
    job_name: str,
    job_status: Mapping[str, Any],
    previous: Mapping[str, Any],
    now: str,
) -> Status:
    """Run status patch from its job; a terminal run phase is never changed again."""
    old_phase = previous.get("phase")
    if old_phase in TERMINAL:
        return {}
    phase, message = job_phase(job_status)
    conditions = list(previous.get("conditions") or [])
    conditions = set_condition(conditions, "Running", phase == "Running", phase, message, now)
    if phase in TERMINAL:
        conditions = set_condition(conditions, phase, True, phase, message, now)
    patch: Status = {
        "phase": phase,
        "jobName": job_name,
        "message": message,
        "conditions": conditions,
    }
    start = job_status.get("startTime") or (now if phase != "Pending" else None)
    if start and not previous.get("startTime"):
        patch["startTime"] = start
    if phase in TERMINAL:
        patch["completionTime"] = job_status.get("completionTime") or now
    if phase == old_phase and message == previous.get("message"):
        return {}
    return patch


def run_created_status(job_name: str, kind: str, now: str) -> Status:
    """Status right after the ConfigMap and job were created."""
    message = f"{kind} {job_name} created"
    conditions = set_condition([], "Validated", True, "Valid", "spec accepted", now)
    conditions = set_condition(conditions, "JobCreated", True, kind, message, now)
    return {"phase": "Pending", "jobName": job_name, "message": message, "conditions": conditions}


def invalid_status(field: str, message: str, now: str) -> Status:
    """Terminal Failed status for a spec only the operator could reject (field named)."""
    text = f"{field}: {message}"
    conditions = set_condition([], "Validated", False, "InvalidSpec", text, now)
    conditions = set_condition(conditions, "Failed", True, "InvalidSpec", text, now)
    return {"phase": "Failed", "message": text, "conditions": conditions, "completionTime": now}


# --------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class Child:
    """What the study needs of one existing child PostTrainingRun."""

    name: str
    phase: str
    result: Mapping[str, float]
    message: str = ""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Child:
        status = body.get("status") or {}
        return cls(
            name=str(body["metadata"]["name"]),
            phase=str(status.get("phase") or "Pending"),
            result=dict(status.get("result") or {}),
            message=str(status.get("message") or ""),
        )


def runs_to_create(
    planned: Sequence[str],
    existing: Mapping[str, Child],
    parallelism: int,
    suspend: bool,
) -> list[str]:
    """Planned names not yet created, in plan order, up to the free parallelism slots."""
    if suspend:
        return []
    active = sum(1 for child in existing.values() if child.phase in ACTIVE)
    free = max(parallelism - active, 0)
    return [name for name in planned if name not in existing][:free]


def run_counts(planned: Sequence[str], existing: Mapping[str, Child]) -> dict[str, int]:
    """``status.runs``: not-yet-created planned runs count as pending."""
    phases = [existing[n].phase if n in existing else "Pending" for n in planned]
    return {
        "total": len(planned),
        "pending": phases.count("Pending"),
        "running": phases.count("Running"),
        "succeeded": phases.count("Succeeded"),
        "failed": phases.count("Failed"),
    }


def study_progress_status(
    planned: Sequence[str],
    existing: Mapping[str, Child],
    suspend: bool,
    previous: Mapping[str, Any],
    now: str,
) -> Status:
    """Study status while runs are outstanding: counts, phase, Suspended condition."""
    runs = run_counts(planned, existing)
    started = runs["running"] + runs["succeeded"] + runs["failed"] > 0
    phase: Phase = "Running" if started else "Pending"
    done = runs["succeeded"] + runs["failed"]
    message = f"{done}/{runs['total']} runs finished" + (" (suspended)" if suspend else "")
    conditions = set_condition(
        previous.get("conditions") or [],
        "Suspended",
        suspend,
        "Suspended" if suspend else "Active",
        "spec.suspend is true: no new runs are created" if suspend else "creating runs",
        now,
    )
    return {
        "phase": phase,
        "runs": runs,
        "progress": f"{runs['succeeded']}/{runs['total']}",
        "message": message,
        "conditions": conditions,
    }


def all_finished(planned: Sequence[str], existing: Mapping[str, Child]) -> bool:
    """True when every planned run exists and is Succeeded or Failed."""
    return all(n in existing and existing[n].phase in TERMINAL for n in planned)


def study_final_status(
    progress: Mapping[str, Any],
    analysis: Mapping[str, Any],
    best: str | None,
    problem: str | None,
    now: str,
) -> Status:
    """Terminal study status: Succeeded with the analysis, or Failed with why there is none."""
    runs = progress["runs"]
    ok = runs["succeeded"] > 0 and problem is None
    phase: Phase = "Succeeded" if ok else "Failed"
    if ok:
        message = f"{runs['succeeded']} runs succeeded, {runs['failed']} failed; analysis done"
    elif runs["succeeded"] == 0:
        message = f"all {runs['total']} runs failed; nothing to analyse"
    else:
        message = str(problem)
    conditions = set_condition(
        progress["conditions"], "Analyzed", ok, "Analyzed" if ok else "NoAnalysis", message, now
    )
    return {
        **progress,
        "phase": phase,
        "message": message,
        "conditions": conditions,
        "best": best,
        "rankings": list(analysis.get("rankings", [])),
        "inversions": list(analysis.get("inversions", [])),
        "recommendations": list(analysis.get("recommendations", [])),
    }


def needs_tracking(status: Mapping[str, Any], uri: str | None) -> bool:
    """True while a finished study still lacks its MLflow parent run (and MLflow is set)."""
    if not uri or status.get("phase") not in TERMINAL or status.get("mlflowRunId"):
        return False
    return bool(status.get("rankings") or status.get("runs", {}).get("succeeded"))


def tracking_status(
    conditions: Sequence[Mapping[str, Any]], parent_id: str | None, error: str | None, now: str
) -> Status:
    """Status patch after an MLflow upload: the parent run and report, or why not (retried)."""
    if parent_id is None:
        message = f"MLflow not reached ({error or 'unknown error'}); retrying"
        return {"conditions": set_condition(conditions, "Tracked", False, "MLflowUnreachable",
                                            message, now)}
    return {
        "mlflowRunId": parent_id,
        "reportUri": f"runs:/{parent_id}/report/report.html",
        "conditions": set_condition(conditions, "Tracked", True, "Logged",
                                    f"MLflow parent run {parent_id} with the report", now),
    }
