"""PostTrainingRun lifecycle with the real kopf operator against the test API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.operator.harness import (
    JOB,
    PTJ,
    RUN,
    eventually,
    fake_training,
    get,
    install,
    running_operator,
)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_env")]

RUN_BODY: dict[str, Any] = {
    "apiVersion": RUN[0],
    "kind": RUN[1],
    "metadata": {"name": "r1", "namespace": "default"},
    "spec": {
        "algorithm": {"name": "dpo"},
        "model": {"name": "zoo/s1"},
        "training": {"budget": {"steps": 4}, "batch_size": 2},
        "resources": {"gpus": 2, "nodes": 2},
    },
}


def _run(**spec_overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(RUN_BODY)
    body["spec"].update(spec_overrides)
    return body


async def _phase(api: Any, name: str, phase: str) -> dict[str, Any] | None:
    run = await get(api, RUN, name)
    return run if run and (run.get("status") or {}).get("phase") == phase else None


async def test_run_creates_owned_configmap_and_pytorchjob_then_succeeds(k8s_api):
    await install(k8s_api)
    async with running_operator(k8s_api):
        status, created = await k8s_api.create(_run())
        assert status in (200, 201), created
        job = await eventually(lambda: get(k8s_api, PTJ, "r1"))
        cm = await get(k8s_api, ("v1", "ConfigMap"), "r1-spec")
        run = await get(k8s_api, RUN, "r1")
        uid = run["metadata"]["uid"]
        for child in (job, cm):
            (ref,) = child["metadata"]["ownerReferences"]
            assert ref == {"apiVersion": RUN[0], "kind": RUN[1], "name": "r1", "uid": uid,
                           "controller": True, "blockOwnerDeletion": True}
        replicas = job["spec"]["pytorchReplicaSpecs"]
        assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 1)
        assert job["spec"]["nprocPerNode"] == "2"
        pending = await eventually(lambda: _phase(k8s_api, "r1", "Pending"))
        assert pending["status"]["jobName"] == "r1"
        conditions = {c["type"]: c["status"] for c in pending["status"]["conditions"]}
        assert conditions["Validated"] == conditions["JobCreated"] == "True"
        async with fake_training(k8s_api):
            done = await eventually(lambda: _phase(k8s_api, "r1", "Succeeded"))
    status = done["status"]
    assert status["result"] == {"accuracy": pytest.approx(0.70)}
    assert status["completionTime"] and status["startTime"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Validated": "True", "JobCreated": "True", "Running": "False",
                          "Succeeded": "True"}
    events = await k8s_api.list("v1", "Event")
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "r1"]
    assert "JobCreated" in reasons and "Succeeded" in reasons


async def test_without_pytorchjob_crd_a_batch_job_runs_the_trainer(k8s_api):
    await install(k8s_api, pytorchjob=False)
    async with running_operator(k8s_api):
        await k8s_api.create(_run(resources={"gpus": 0, "nodes": 1}))
        job = await eventually(lambda: get(k8s_api, JOB, "r1"))
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["ptlab", "train", "/etc/ptlab/spec.json", "--out",
                                        "/work/run", "--metrics-port", "9090"]
        assert container["image"] == "ptlab:test"
        async with fake_training(k8s_api):
            done = await eventually(lambda: _phase(k8s_api, "r1", "Succeeded"))
    assert done["status"]["jobName"] == "r1"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"model": {"name": "zoo/s9"}}, "spec.model.name"),
        ({"resources": {"gpus": 16, "nodes": 1}}, "spec.resources.gpus"),
        ({"training": {"budget": {"tokens": 3}, "batch_size": 4}}, "spec.training.budget.tokens"),
        ({"algorithm": {"name": "dpoo"}}, "spec.algorithm.name"),
    ],
)
async def test_operator_side_validation_fails_once_naming_the_field(k8s_api, spec, field):
    await install(k8s_api)
    async with running_operator(k8s_api):
        await k8s_api.create(_run(**spec))
        failed = await eventually(lambda: _phase(k8s_api, "r1", "Failed"))
    status = failed["status"]
    assert status["message"].startswith(field + ":"), status["message"]
    validated = next(c for c in status["conditions"] if c["type"] == "Validated")
    assert (validated["status"], validated["reason"]) == ("False", "InvalidSpec")
    assert await get(k8s_api, PTJ, "r1") is None and await get(k8s_api, JOB, "r1") is None
    if k8s_api.kind == "kmock":  # no retry storm: the status was written exactly once
        patches = [r for r in list(k8s_api.emulator)
                   if r.method == "PATCH" and str(r.url.path).endswith("/posttrainingruns/r1/status")]
        assert len(patches) == 1
