"""The study's MLflow parent run and report, logged by the operator to a real MLflow server;
an unreachable MLflow never blocks the study (condition, then a retry that succeeds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import STUDY, eventually, fake_training, get, install, running_operator
from tests.operator.test_study import study_body
from tests.support.servers import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("operator_env")]


async def _study(api: Any) -> dict[str, Any]:
    return await get(api, STUDY, "quickstart-tiny") or {}


def _condition(study: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = (study.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), None)


def _parent_run(uri: str, run_id: str, tmp: Path) -> tuple[Any, list[str], dict[str, Any]]:
    """(run, artifact paths under report/, the uploaded analysis.json) from MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    names = [a.path for a in client.list_artifacts(run_id, "report")]
    local = client.download_artifacts(run_id, "report/analysis.json", str(tmp))
    return run, names, json.loads(Path(local).read_text())


async def _run_study_until(api: Any, done: Any, timeout: float = 90) -> dict[str, Any]:
    await install(api)
    async with running_operator(api), fake_training(api):
        await api.create(study_body(parallelism=4))
        return dict(await eventually(done, timeout=timeout))


async def test_finished_study_logs_parent_run_and_report(k8s_api, mlflow_server, monkeypatch, tmp_path):
    monkeypatch.setenv("PTLAB_OPERATOR_MLFLOW_URI", mlflow_server)

    async def tracked() -> dict[str, Any] | None:
        study = await _study(k8s_api)
        return study if (study.get("status") or {}).get("mlflowRunId") else None

    study = await _run_study_until(k8s_api, tracked)
    status = study["status"]
    assert status["phase"] == "Succeeded"
    run_id = status["mlflowRunId"]
    assert status["reportUri"] == f"runs:/{run_id}/report/report.html"
    assert _condition(study, "Tracked")["status"] == "True"
    run, names, analysis = await asyncio.to_thread(_parent_run, mlflow_server, run_id, tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.tags["ptlab.kind"] == "study" and run.data.tags["ptlab.study"] == "quickstart-tiny"
    assert run.data.params["runs_planned"] == "4" and run.data.params["algorithms"] == "dpo,orpo"
    assert {"report/report.html", "report/analysis.json"} <= set(names)
    # the uploaded report is the analysis the study status holds
    assert analysis["recommendations"] == status["recommendations"]
    assert [r["algorithms"] for r in analysis["rankings"]] == [r["algorithms"] for r in status["rankings"]]


@contextlib.asynccontextmanager
async def tcp_proxy(port: int, target: str) -> AsyncIterator[None]:
    """Forward 127.0.0.1:``port`` to ``target`` (http://host:port) while the block runs."""
    host, target_port = target.removeprefix("http://").split(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_unreachable_mlflow_never_blocks_the_study_and_is_retried(
    k8s_api, mlflow_server, monkeypatch
):
    port = free_port()  # nothing listens here until the proxy starts
    monkeypatch.setenv("PTLAB_OPERATOR_MLFLOW_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("PTLAB_OPERATOR_TRACKING_RETRY_S", "0.5")
    await install(k8s_api)
    async with running_operator(k8s_api), fake_training(k8s_api):
        await k8s_api.create(study_body(parallelism=4))

        async def untracked() -> dict[str, Any] | None:
            study = await _study(k8s_api)
            return study if _condition(study, "Tracked") else None

        study = await eventually(untracked, timeout=90)
        status = study["status"]
        assert status["phase"] == "Succeeded" and status["recommendations"][0]["best"] == ["dpo"]
        tracked = _condition(study, "Tracked")
        assert (tracked["status"], tracked["reason"]) == ("False", "MLflowUnreachable")
        assert "mlflowRunId" not in status
        async with tcp_proxy(port, mlflow_server):  # MLflow comes back: the retry logs it

            async def logged() -> dict[str, Any] | None:
                study = await _study(k8s_api)
                return study if (study.get("status") or {}).get("mlflowRunId") else None

            study = await eventually(logged, timeout=60)
    assert _condition(study, "Tracked")["status"] == "True"
    assert study["status"]["phase"] == "Succeeded"
