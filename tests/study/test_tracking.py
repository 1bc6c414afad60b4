"""MLflow for studies against a real MLflow server: parent + nested children with tags, the
server going away mid-study, and `ptlab study sync` uploading later without duplicates."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console

from ptlab.api.models import ComparisonStudy
from ptlab.cli.study import sync_cmd
from ptlab.study.executor import ExecutorConfig, run_study

from .test_executor import ENTRY

pytestmark = pytest.mark.slow


def study(experiment: str) -> ComparisonStudy:
    spec = {
        "algorithms": [{"name": "good", "tune": {"bonus": [0.0, 0.3]}}, {"name": "bad"}],
        "scales": [{"name": "1M", "model": {"name": "zoo/s1"}}],
        "domains": ["arith"],
        "seeds": {"count": 2},
        "budget": {"steps": 3},
        "tune": {"trials": 1},
        "template": {"eval": {"items": 50}, "tracking": {"experiment": experiment}},
        "analysis": {"bootstrap": 200},
    }
    return ComparisonStudy.model_validate({"metadata": {"name": "tracked"}, "spec": spec})


def children(client: MlflowClient, experiment: str) -> tuple[list[Any], list[Any]]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ptlab.kind") == "study"]
    kids = [r for r in runs if r.data.tags.get("ptlab.kind") == "run"]
    return parents, kids


def quiet() -> Console:
    return Console(quiet=True)


def test_parent_and_nested_children_with_tags(
    tmp_path: Path, mlflow_server: str, any_algorithm: None, fake_env: None
) -> None:
    experiment = f"study-{uuid.uuid4().hex[:8]}"
    cfg = ExecutorConfig(out=tmp_path, parallel=2, mlflow_uri=mlflow_server, entrypoint=ENTRY, poll_s=0.05)
    done = run_study(study(experiment), cfg, quiet())
    assert done.mlflow_error is None and done.parent_run_id
    client = MlflowClient(tracking_uri=mlflow_server)
    parents, kids = children(client, experiment)
    assert [p.info.run_id for p in parents] == [done.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    planned = {r.spec_hash: r for r in done.plan.runs}
    assert len(kids) == len(planned) == 1 + 2 + 2  # 1 tuning trial (good), 2 seeds × 2
    for kid in kids:
        tags = kid.data.tags
        run = planned[tags["ptlab.spec_hash"]]
        assert tags["mlflow.parentRunId"] == done.parent_run_id
        assert (tags["algorithm"], tags["scale"], tags["domain"], tags["seed"], tags["phase"]) == (
            run.algorithm, "1M", "arith", str(run.seed), run.phase)
        assert kid.data.params["algorithm"] == run.algorithm
        result = json.loads((tmp_path / "runs" / run.name / "result.json").read_text())
        assert kid.data.metrics["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
        assert kid.info.status == "FINISHED"
        history = client.get_metric_history(kid.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(done.parent_run_id)}
    assert {"analysis.json", "plan.json", "results.csv"} <= artifacts
    # syncing a fully tracked study uploads nothing new
    sync_cmd(tmp_path, mlflow_server)
    assert len(children(client, experiment)[1]) == len(kids)


class Proxy:
    """A TCP forwarder to the MLflow server that the test can take down mid-study."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rstrip("/").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.up:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self.up = False
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture()
def proxy(mlflow_server: str) -> Iterator[Proxy]:
    p = Proxy(mlflow_server)
    yield p
    p.stop()


def test_server_lost_mid_study_then_sync_uploads_without_duplicates(
    tmp_path: Path, mlflow_server: str, proxy: Proxy, any_algorithm: None, fake_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    experiment = f"lost-{uuid.uuid4().hex[:8]}"

    client = MlflowClient(tracking_uri=mlflow_server)

    def cut_when_first_run_is_logged() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if any(k.data.tags.get("ptlab.logged") for k in children(client, experiment)[1]):
                    break
            time.sleep(0.05)
        proxy.stop()

    threading.Thread(target=cut_when_first_run_is_logged, daemon=True).start()
    cfg = ExecutorConfig(out=tmp_path, parallel=1, mlflow_uri=proxy.uri, entrypoint=ENTRY, poll_s=0.05)
    done = run_study(study(experiment), cfg, quiet())
    assert done.failed == {} and len(done.succeeded) == 5  # the study finished regardless
    assert done.mlflow_error is not None
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "analysis.json").is_file()
    parents, kids = children(client, experiment)
    assert len(parents) == 1 and len(kids) < 5
    logged_before = {k.data.tags["ptlab.spec_hash"] for k in kids if k.data.tags.get("ptlab.logged")}
    assert len(logged_before) >= 1
    for _ in range(2):  # sync twice: the second one must not add anything
        sync_cmd(tmp_path, mlflow_server)
        parents, kids = children(client, experiment)
        assert len(parents) == 1
        hashes = [k.data.tags["ptlab.spec_hash"] for k in kids]
        assert sorted(hashes) == sorted(r.spec_hash for r in done.plan.runs)  # once each
        assert all(k.data.tags.get("ptlab.logged") == "1" for k in kids)
        assert {k.data.tags["mlflow.parentRunId"] for k in kids} == {parents[0].info.run_id}
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "analysis.json" in artifacts
