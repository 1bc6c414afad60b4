"""Each real-component fixture works: values written are read back from the real server."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import free_port


@pytest.mark.slow
def test_mlflow_server_logs_and_reads_back_a_metric(mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.create_experiment(f"fixture-{time.time_ns()}")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.125, step=3)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.value, m.step) for m in history] == [(0.125, 3)]


@pytest.mark.slow
def test_prometheus_scrapes_a_real_metrics_endpoint(prometheus) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    Gauge("ptlab_fixture_step", "fixture gauge", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        base = prometheus([f"127.0.0.1:{port}"])
        query = urllib.parse.urlencode({"query": "ptlab_fixture_step"})
        value = None
        deadline = time.monotonic() + 60
        while value is None and time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/api/v1/query?{query}", timeout=5) as resp:
                result = json.load(resp)["data"]["result"]
            value = float(result[0]["value"][1]) if result else None
            time.sleep(0.5)
        assert value == 42.0
    finally:
        server.shutdown()
        thread.join()


async def test_k8s_api_installs_crds_and_stores_a_run(k8s_api) -> None:
    await k8s_api.install_crds()
    run = {
        "apiVersion": "ptlab.io/v1alpha1",
        "kind": "PostTrainingRun",
        "metadata": {"name": "fixture-run"},
        "spec": {"algorithm": {"name": "dpo"}, "model": {"name": "zoo/s1"}},
    }
    status, created = await k8s_api.create(run)
    assert status in (200, 201), created
    status, read = await k8s_api.get("ptlab.io/v1alpha1", "PostTrainingRun", "fixture-run")
    assert status == 200
    assert read["spec"]["algorithm"]["name"] == "dpo"
    assert read["spec"]["model"] == {"name": "zoo/s1", **({"dtype": "float32"} if k8s_api.kind == "envtest" else {})}
    crds = await k8s_api.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} >= {
        "posttrainingruns.ptlab.io",
        "comparisonstudies.ptlab.io",
    }


def test_helm_binary_is_real(helm_bin: Path) -> None:
    out = subprocess.run([str(helm_bin), "version", "--short"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("v4."), out.stdout
