"""MLflow for studies: one parent run per study, a nested child run per training run.

Identity is by tags, so every upload is idempotent: the parent carries ``ptlab.kind=study`` and
``ptlab.study``; a child carries ``ptlab.spec_hash`` and, once completely logged,
``ptlab.logged=1``. A child whose run directory already names an MLflow run (the trainer's
``mlflow/run_id``) adopts that run instead of creating a second one. When MLflow is
unreachable, :class:`StudyTracker` goes offline (``error`` says why) and the study carries on;
``ptlab study sync DIR`` later uploads what is missing.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ptlab.study.plan import PlannedRun, StudyPlan
from ptlab.study.results import METRICS_FILE, RunOutcome

LOGGED = "ptlab.logged"
TRAINER_RUN_ID = Path("mlflow") / "run_id"
"""Where the trainer keeps its MLflow run id (so a resume reuses the run)."""
BATCH = 1000


def is_remote(uri: str) -> bool:
    """True for a tracking server (http/https); sqlite/file stores are local."""
    return uri.startswith(("http://", "https://"))


def reachable(uri: str, timeout_s: float = 3.0) -> str | None:
    """None if the server answers ``/health``; otherwise the reason (local stores: None)."""
    if not is_remote(uri):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, "reason", err))


def trainer_uri(run: PlannedRun) -> str | None:
    """Where the trainer itself logs this run (its spec, else ``MLFLOW_TRACKING_URI``)."""
    return run.spec.tracking.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")


def child_tags(study: str, run: PlannedRun) -> dict[str, str]:
    """Tags of a child run: what MLflow's compare view groups and filters by."""
    return {
        "ptlab.kind": "run",
        "ptlab.study": study,
        "ptlab.spec_hash": run.spec_hash,
        "algorithm": run.algorithm,
        "scale": run.scale,
        "domain": run.domain,
        "seed": str(run.seed),
        "phase": run.phase,
        "params_hash": run.params_hash,
        "mlflow.runName": run.name,
    }


def child_params(run: PlannedRun) -> dict[str, str]:
    """Params of a child run: the resolved choices that differ between runs of a study."""
    budget = run.spec.training.budget.model_dump(exclude_none=True)
    out = {
        "algorithm": run.algorithm,
        "scale": run.scale,
        "domain": run.domain,
        "seed": str(run.seed),
        "phase": run.phase,
        "model": str(run.spec.model.name or run.spec.model.path),
        "lr": str(run.spec.training.lr),
        "batch_size": str(run.spec.training.batch_size),
        **{f"budget.{k}": str(v) for k, v in budget.items()},
    }
    out.update({f"params.{k}": str(v) for k, v in sorted(run.params.items())})
    return out


def step_history(run_dir: Path) -> list[tuple[str, float, int]]:
    """(key, value, step) of every numeric per-step metric in ``metrics.jsonl``."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = row.get("step")
        if not isinstance(step, int):
            continue
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                out.append((key, float(value), step))
    return out


class StudyTracker:
    """MLflow client for one study that degrades to offline instead of failing the study."""

    def __init__(self, uri: str, experiment: str) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.uri = uri
        self.experiment = experiment
        self.error: str | None = reachable(uri)
        self._client: Any = None
        self._experiment_id: str | None = None

    @property
    def online(self) -> bool:
        return self.error is None

    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = self.client().get_experiment_by_name(self.experiment)
            self._experiment_id = exp.experiment_id if exp else self.client().create_experiment(self.experiment)
        return self._experiment_id

    def guarded(self, fn: Any, *args: Any) -> Any:
        """Call ``fn``; any failure switches the tracker offline and returns None."""
        if not self.online:
            return None
        try:
            return fn(*args)
        except Exception as err:  # tracking must never stop a study
            self.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            return None

    def find(self, **tags: str) -> list[Any]:
        """Runs of the experiment whose tags equal ``tags`` (oldest first)."""
        clauses = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client().search_runs([self.experiment_id()], filter_string=clauses, max_results=1000)
        return sorted(runs, key=lambda r: r.info.start_time or 0)

    # ------------------------------------------------------------------ parent

    def parent(self, plan: StudyPlan) -> str | None:
        """Id of the study's parent run, created on first use (None when offline)."""
        return self.guarded(self._parent, plan)

    def _parent(self, plan: StudyPlan) -> str:
        found = self.find(**{"ptlab.kind": "study", "ptlab.study": plan.study})
        if found:
            return str(found[0].info.run_id)
        run = self.client().create_run(
            self.experiment_id(), run_name=plan.study,
            tags={"ptlab.kind": "study", "ptlab.study": plan.study},
        )
        from mlflow.entities import Param

        algorithms = sorted({r.algorithm for r in plan.runs})
        params = {"algorithms": ",".join(algorithms), "runs_planned": str(len(plan.runs))}
        for decision in plan.decisions:
            if decision.subject == "all algorithms":
                params[f"fairness.{decision.kind}"] = decision.detail[:500]
        self.client().log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return str(run.info.run_id)

    def finish_parent(self, parent_id: str | None, artifacts: Iterable[Path], failed: bool) -> None:
        """Upload the report/analysis files and mark the parent finished."""
        if parent_id is None:
            return

        def upload() -> None:
            client = self.client()
            for path in artifacts:
                if path.is_dir():
                    client.log_artifacts(parent_id, str(path), artifact_path=path.name)
                elif path.is_file():
                    client.log_artifact(parent_id, str(path))
            client.set_terminated(parent_id, status="FAILED" if failed else "FINISHED")

        self.guarded(upload)

    # ------------------------------------------------------------------ children

    def start_child(self, parent_id: str | None, study: str, run: PlannedRun, run_dir: Path) -> str | None:
        """Create (or find) the child run before training and hand its id to the trainer."""
        if parent_id is None:
            return None
        return self.guarded(self._child, parent_id, study, run, run_dir)

    def _child(self, parent_id: str, study: str, run: PlannedRun, run_dir: Path) -> str:
        id_file = run_dir / TRAINER_RUN_ID
        shared = trainer_uri(run) == self.uri  # the trainer logs to this server too
        client = self.client()
        run_id: str | None = None
        if shared and id_file.is_file():
            run_id = id_file.read_text().strip() or None
        if run_id is None:
            found = self.find(**{"ptlab.study": study, "ptlab.spec_hash": run.spec_hash})
            run_id = str(found[0].info.run_id) if found else None
        if run_id is None:
            created = client.create_run(self.experiment_id(), run_name=run.name,
                                        tags={**child_tags(study, run), "mlflow.parentRunId": parent_id})
            run_id = str(created.info.run_id)
        if shared and not id_file.is_file():
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(run_id)
        return run_id

    def log_run(
        self, parent_id: str | None, study: str, run: PlannedRun, outcome: RunOutcome, run_dir: Path
    ) -> str | None:
        """Log a finished run as a nested child, once (a logged child is left as it is)."""
        if parent_id is None:
            return None
        return self.guarded(self._log_run, parent_id, study, run, outcome, run_dir)

    def _log_run(
        self, parent_id: str, study: str, run: PlannedRun, outcome: RunOutcome, run_dir: Path
    ) -> str:
        from mlflow.entities import Metric, Param, RunTag

        done = self.find(**{"ptlab.study": study, "ptlab.spec_hash": run.spec_hash, LOGGED: "1"})
        if done:
            return str(done[0].info.run_id)
        streamed = trainer_uri(run) == self.uri and (run_dir / TRAINER_RUN_ID).is_file()
        run_id = self._child(parent_id, study, run, run_dir)
        client = self.client()
        existing = client.get_run(run_id).data.params
        params = [Param(k, v) for k, v in child_params(run).items() if k not in existing]
        tags = {**child_tags(study, run), "mlflow.parentRunId": parent_id, "status": outcome.status}
        if outcome.error:
            tags["error"] = outcome.error[:4000]
        now = int(os.path.getmtime(run_dir) * 1000) if run_dir.exists() else 0
        finals = {**outcome.metrics, **{k: v for k, v in outcome.accounting.items() if v is not None}}
        metrics = [Metric(k, float(v), now, 0) for k, v in sorted(finals.items())]
        if not streamed or client.get_run(run_id).data.metrics == {}:
            metrics += [Metric(f"train/{k}", v, now, s) for k, v, s in step_history(run_dir)]
        for lo in range(0, max(len(metrics), 1), BATCH):
            client.log_batch(run_id, metrics=metrics[lo : lo + BATCH], params=params if lo == 0 else [])
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id, status="FINISHED" if outcome.status == "succeeded" else "FAILED")
        client.set_tag(run_id, LOGGED, "1")
        return run_id


def sync_runs(
    tracker: StudyTracker,
    plan: StudyPlan,
    outcomes: Mapping[str, tuple[PlannedRun, RunOutcome, Path]],
    artifacts: Iterable[Path],
) -> tuple[str | None, int]:
    """Upload a finished study: parent, every finished run (once), artifacts.

    Returns the parent id (None when MLflow is unreachable) and the number of child runs
    that are now logged.
    """
    parent_id = tracker.parent(plan)
    logged = 0
    for run, outcome, run_dir in outcomes.values():
        if tracker.log_run(parent_id, plan.study, run, outcome, run_dir) is not None:
            logged += 1
    failed = any(o.status == "failed" for _, o, _ in outcomes.values())
    tracker.finish_parent(parent_id, artifacts, failed)
    return (parent_id if tracker.online else None), logged
