"""MLflow (real server, metrics read back; outage → buffer → later sync without duplicates),
Prometheus scraping /metrics during a run, and the PostTrainingRun status patch."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ptlab.trainer import run
from ptlab.trainer.observability import MlflowTracker, read_jsonl

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mlflow_run_has_params_tags_metrics_and_artifacts(
    mlflow_server: str, tiny_model: str, spec_for, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    spec = spec_for(tiny_model, "dpo", tracking={"mlflow_uri": mlflow_server, "experiment": "trainer-test"})
    result = run.train(spec, tmp_path / "run")
    client = MlflowClient(mlflow_server)
    mlrun = client.get_run(result["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["algorithm.name"] == "dpo"
    assert mlrun.data.params["training.batch_size"] == "4"
    assert mlrun.data.tags["algorithm"] == "dpo"
    assert mlrun.data.tags["seed"] == "0"
    assert mlrun.data.tags["spec_hash"] == result["config_hash"]
    history = sorted(client.get_metric_history(mlrun.info.run_id, "loss"), key=lambda m: m.step)
    local = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["loss"]) for r in local]
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"result.json", "spec.json", "items.jsonl"} <= artifacts


def test_mlflow_outage_buffers_and_syncs_later_without_duplicates(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    dead = f"http://127.0.0.1:{_free_port()}"
    tracker = MlflowTracker(dead, "outage", "r1", tmp_path / "mlflow", {"a": {"b": 1}}, {"algorithm": "dpo"})
    for step in range(1, 6):
        tracker.log(step, {"loss": 1.0 / step})
    assert tracker.sync(force=True) is False  # server unreachable: training goes on
    assert len(read_jsonl(tmp_path / "mlflow" / "buffer.jsonl")) == 5
    tracker.uri = mlflow_server  # the server is back
    assert tracker.sync(force=True) is True
    (tmp_path / "mlflow" / "synced").write_text("2")  # crash between send and bookkeeping
    assert tracker.sync(force=True) is True
    tracker.log(6, {"loss": 1.0 / 6})
    assert tracker.finish("FINISHED") is True
    history = MlflowClient(mlflow_server).get_metric_history(tracker.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / s) for s in range(1, 7)]
    assert MlflowClient(mlflow_server).get_run(tracker.run_id).data.params["a.b"] == "1"


def _query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]["result"]


def test_prometheus_scrapes_the_step_during_a_run(prometheus, tiny_model: str, spec_for, tmp_path: Path) -> None:
    port = _free_port()
    base = prometheus([f"127.0.0.1:{port}"])
    spec = spec_for(tiny_model, "sft", training={"budget": {"steps": 400}, "checkpoint_every": 1000})
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(run.train(spec, tmp_path / "run", metrics_port=port)))
    worker.start()
    seen: list[float] = []
    deadline = time.monotonic() + 240
    while worker.is_alive() and time.monotonic() < deadline and not seen:
        found = _query(base, 'ptlab_step{algorithm="sft"}')
        seen = [float(r["value"][1]) for r in found if float(r["value"][1]) >= 1]
        time.sleep(0.5)
    worker.join(timeout=600)
    assert seen, "Prometheus never saw ptlab_step >= 1 while the run was training"
    assert results and results[0]["status"] == "succeeded"
    assert 1 <= seen[0] <= 400


async def test_status_is_patched_through_the_api(
    k8s_api, tiny_model: str, spec_for, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await k8s_api.install_crds()
    spec = spec_for(tiny_model, "sft", training={"budget": {"steps": 4}})
    obj = {"apiVersion": "ptlab.io/v1alpha1", "kind": "PostTrainingRun",
           "metadata": {"name": "r1", "namespace": k8s_api.namespace}, "spec": spec}
    status, data = await k8s_api.create(obj)
    assert status in (200, 201), data
    monkeypatch.setenv("PTLAB_RUN_NAME", "r1")
    monkeypatch.setenv("PTLAB_NAMESPACE", k8s_api.namespace)
    monkeypatch.setenv("PTLAB_KUBE_API", k8s_api.url)
    monkeypatch.setenv("PTLAB_STATUS_EVERY", "2")
    result = await asyncio.to_thread(run.train, obj, tmp_path / "run")
    status, data = await k8s_api.get("ptlab.io/v1alpha1", "PostTrainingRun", "r1", k8s_api.namespace)
    assert status == 200
    assert data["status"]["phase"] == "Succeeded"
    assert data["status"]["progress"] == {"step": 4, "total": 4, "percent": 100}
    assert data["status"]["result"]["accuracy"] == result["metrics"]["accuracy"]


def test_unreachable_status_api_never_stops_training(
    tiny_model: str, spec_for, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTLAB_RUN_NAME", "r1")
    monkeypatch.setenv("PTLAB_KUBE_API", f"http://127.0.0.1:{_free_port()}")
    result = run.train(spec_for(tiny_model, "sft", training={"budget": {"steps": 2}}), tmp_path / "run")
    assert result["status"] == "succeeded"
