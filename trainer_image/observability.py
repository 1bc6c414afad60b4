"""What a run reports while it trains: metrics.jsonl, Prometheus ``/metrics``, MLflow.

* :class:`MetricsLog` appends one JSON line per step; on resume it drops lines past the
  checkpoint so the file of a resumed run equals that of an uninterrupted one.
* :class:`Prometheus` serves gauges (``ptlab_step``, ``ptlab_loss``, ...) on ``--metrics-port``.
* :class:`MlflowTracker` logs params/tags once and per-step metrics in batches (``log_batch``).
  Every metric is first appended to ``mlflow/buffer.jsonl`` with its timestamp; a sync sends the
  lines after ``mlflow/synced`` (the count already sent). If the server is unreachable training
  continues and the next sync sends the backlog; re-sending the same (key, step, timestamp,
  value) is idempotent on MLflow's side, so a crash between send and bookkeeping duplicates
  nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("ptlab.trainer")

GAUGES: dict[str, str] = {
    "step": "Optimizer steps done",
    "loss": "Training loss of the last step",
    "reward_mean": "Mean reward (or implicit reward) of the last step",
    "reward_std": "Std of rewards of the last step",
    "kl": "KL to the reference of the last step",
    "entropy": "Mean token entropy of the last step",
    "clip_fraction": "Fraction of clipped ratios of the last step",
    "tokens_per_second": "Trained tokens per second (last step)",
    "generated_tokens_per_second": "Generated tokens per second (last step)",
    "eval_accuracy": "Held-out accuracy of the last evaluation",
    "grad_norm": "Gradient norm before clipping (last step)",
    "lr": "Learning rate of the last step",
}
"""Gauge name (exported as ``ptlab_<name>``) → help text."""

ALIASES: dict[str, str] = {
    "reward/mean": "reward_mean",
    "reward/std": "reward_std",
    "rewards/margin": "reward_mean",
    "eval/accuracy": "eval_accuracy",
}
"""Metric keys from losses/recipes that feed a gauge of another name."""


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict/list → ``{"a.b.0": "v"}`` strings (MLflow params)."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = str(value)[:500]
    return out


class MetricsLog:
    """Append-only ``metrics.jsonl`` (one object per step, always with ``step``)."""

    def __init__(self, path: Path, resume_step: int = 0):
        self.path = path
        kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= resume_step]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, path)

    def append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(dict(record)) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of ``path`` (a torn last line from a kill is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


class Prometheus:
    """Gauges on a private registry, served on ``127.0.0.1``/``0.0.0.0``:``port`` when given."""

    def __init__(self, port: int | None, labels: Mapping[str, str], addr: str | None = None):
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        names = sorted(labels)
        self.gauges = {
            name: Gauge(f"ptlab_{name}", doc, names, registry=self.registry).labels(**labels)
            for name, doc in GAUGES.items()
        }
        self.server = None
        if port is not None:
            host = addr or os.environ.get("PTLAB_METRICS_ADDR", "0.0.0.0")
            self.server, _ = start_http_server(port, addr=host, registry=self.registry)

    def update(self, metrics: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            name = ALIASES.get(key, key)
            if name in self.gauges and isinstance(value, int | float):
                self.gauges[name].set(float(value))

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class MlflowTracker:
    """One MLflow run per ptlab run (its id kept in ``mlflow/run_id`` so a resume reuses it)."""

    SYNC_EVERY_S = 10.0

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        directory: Path,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.uri, self.experiment, self.run_name = uri, experiment, run_name
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.params = flatten(params)
        self.tags = dict(tags)
        self.buffer = self.dir / "buffer.jsonl"
        self.synced_file = self.dir / "synced"
        self.run_id_file = self.dir / "run_id"
        self.pending_artifacts: list[str] = []
        self._last_sync = 0.0
        self.sync(force=True)

    @property
    def run_id(self) -> str | None:
        return self.run_id_file.read_text().strip() if self.run_id_file.exists() else None

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def _ensure_run(self, client: Any) -> str:
        if self.run_id:
            return self.run_id
        exp = client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(self.experiment)
        run = client.create_run(exp_id, run_name=self.run_name, tags=self.tags)
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in sorted(self.params.items())]
        for lo in range(0, len(items), 100):
            client.log_batch(run.info.run_id, params=items[lo : lo + 100])
        self.run_id_file.write_text(run.info.run_id)
        return run.info.run_id

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Buffer numeric metrics of ``step``; sync at most every ``SYNC_EVERY_S`` seconds."""
        now = int(time.time() * 1000)
        with open(self.buffer, "a") as fh:
            for key, value in metrics.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    fh.write(json.dumps({"k": key, "v": float(value), "s": step, "t": now}) + "\n")
        self.sync()

    def log_artifact(self, path: Path) -> None:
        self.pending_artifacts.append(str(path))

    def sync(self, force: bool = False) -> bool:
        """Send buffered metrics and artifacts; ``False`` (and keep them) if MLflow is down."""
        if not force and time.monotonic() - self._last_sync < self.SYNC_EVERY_S:
            return False
        self._last_sync = time.monotonic()
        try:
            from mlflow.entities import Metric

            client = self._client()
            run_id = self._ensure_run(client)
            rows = read_jsonl(self.buffer)
            done = int(self.synced_file.read_text()) if self.synced_file.exists() else 0
            todo = rows[done:]
            for lo in range(0, len(todo), 1000):
                chunk = todo[lo : lo + 1000]
                client.log_batch(run_id, metrics=[Metric(r["k"], r["v"], r["t"], r["s"]) for r in chunk])
                done += len(chunk)
                self.synced_file.write_text(str(done))
            while self.pending_artifacts:
                client.log_artifact(run_id, self.pending_artifacts[0])
                self.pending_artifacts.pop(0)
            return True
        except Exception as err:  # tracking must never stop training
            log.warning("MLflow unreachable (%s); metrics buffered in %s", err, self.buffer)
            return False

    def finish(self, status: str) -> bool:
        """Final sync and run status (FINISHED/FAILED)."""
        ok = self.sync(force=True)
        if ok:
            try:
                self._client().set_terminated(self.run_id, status=status)
            except Exception as err:
                log.warning("MLflow set_terminated failed: %s", err)
                return False
        return ok


class Reporter:
    """All per-run reporting behind one object; only rank 0 reports (other ranks: no-ops).

    ``start`` (after resume) opens metrics.jsonl; ``log_step`` feeds metrics.jsonl,
    Prometheus, MLflow and the Kubernetes status; ``finish`` records the result everywhere.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        is_main: bool = True,
        metrics_port: int | None = None,
        labels: Mapping[str, str] | None = None,
        mlflow: MlflowTracker | None = None,
        status: Any = None,
    ):
        self.out_dir, self.is_main = out_dir, is_main
        self.log: MetricsLog | None = None
        self.prom = Prometheus(metrics_port, labels or {}) if is_main else None
        self.mlflow = mlflow if is_main else None
        self.status = status if is_main else None

    def start(self, resume_step: int) -> None:
        if self.is_main:
            self.log = MetricsLog(self.out_dir / "metrics.jsonl", resume_step)

    def log_step(self, step: int, metrics: Mapping[str, Any], total_steps: int) -> None:
        if not self.is_main:
            return
        if self.log is not None:
            self.log.append(metrics)
        if self.prom is not None:
            self.prom.update(metrics)
        if self.mlflow is not None:
            self.mlflow.log(step, metrics)
        if self.status is not None:
            self.status.progress(step, total_steps)

    def log_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
        if not self.is_main:
            return
        evals = {f"eval/{k}": v for k, v in metrics.items()}
        if self.prom is not None:
            self.prom.update(evals)
        if self.mlflow is not None:
            self.mlflow.log(step, evals)

    def finish(self, result: Mapping[str, Any], artifacts: list[Path]) -> None:
        if not self.is_main:
            return
        if self.mlflow is not None:
            for path in artifacts:
                if path.exists():
                    self.mlflow.log_artifact(path)
            self.mlflow.finish("FINISHED" if result.get("status") == "succeeded" else "FAILED")
        if self.status is not None:
            self.status.result(result)

    def close(self) -> None:
        if self.prom is not None:
            self.prom.close()
