"""ComparisonStudy with the real kopf operator: children, parallelism, suspend, analysis,
restarts (no duplicates, no lost results) and ownership."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from ptlab.api.models import ComparisonStudy
from ptlab.study.plan import plan_study
from tests.operator.harness import (
    RUN,
    STUDY,
    eventually,
    fake_training,
    get,
    install,
    running_operator,
)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_env")]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart-tiny.yaml"


def study_body(**spec: Any) -> dict[str, Any]:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["namespace"] = "default"
    body["spec"].update(spec)
    return body


def planned_names(body: dict[str, Any]) -> list[str]:
    return [r.name for r in plan_study(ComparisonStudy.model_validate(body)).runs]


async def children(api: Any) -> list[dict[str, Any]]:
    return [r for r in await api.list(*RUN)
            if (r["metadata"].get("labels") or {}).get("ptlab.io/study") == "quickstart-tiny"]


async def study_phase(api: Any, phase: str) -> dict[str, Any] | None:
    study = await get(api, STUDY, "quickstart-tiny")
    return study if study and (study.get("status") or {}).get("phase") == phase else None


@pytest.mark.slow
async def test_study_creates_children_up_to_parallelism_and_analyses_results(k8s_api):
    await install(k8s_api)
    body = study_body(parallelism=1)
    async with running_operator(k8s_api):
        await k8s_api.create(body)
        first = await eventually(lambda: children(k8s_api))
        await asyncio.sleep(1.5)  # several reconcile intervals: still one child
        assert [c["metadata"]["name"] for c in await children(k8s_api)] == [
            first[0]["metadata"]["name"]]
        async with fake_training(k8s_api):
            done = await eventually(lambda: study_phase(k8s_api, "Succeeded"), timeout=60)
    kids = await children(k8s_api)
    assert sorted(c["metadata"]["name"] for c in kids) == sorted(planned_names(body))
    study_uid = done["metadata"]["uid"]
    for child in kids:
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "ComparisonStudy", "quickstart-tiny", study_uid, True)
    status = done["status"]
    assert status["runs"] == {"total": 4, "pending": 0, "running": 0, "succeeded": 4, "failed": 0}
    assert status["progress"] == "4/4"
    (ranking,) = status["rankings"]
    # fake outcomes: dpo 0.70/0.71, orpo 0.50/0.49 (seeds 0, 1) → means 0.705 and 0.495;
    # paired differences 0.20, 0.22: t = 0.21 / (0.01414/√2) = 21, df 1 → p ≈ 0.03 < 0.05
    means = {a["algorithm"]: a["mean"] for a in ranking["algorithms"]}
    assert means == {"dpo": pytest.approx(0.705), "orpo": pytest.approx(0.495)}
    (rec,) = status["recommendations"]
    assert rec["best"] == ["dpo"]
    assert status["best"] == "s1/arith: dpo"


async def test_suspended_study_creates_nothing_until_resumed(k8s_api):
    await install(k8s_api)
    async with running_operator(k8s_api):
        await k8s_api.create(study_body(suspend=True))
        suspended = await eventually(lambda: study_phase(k8s_api, "Pending"))
        cond = next(c for c in suspended["status"]["conditions"] if c["type"] == "Suspended")
        assert cond["status"] == "True"
        await asyncio.sleep(1.5)
        assert await children(k8s_api) == []
        ref = {"apiVersion": STUDY[0], "kind": STUDY[1], "metadata": {"name": "quickstart-tiny"}}
        await k8s_api.patch(ref, {"spec": {"suspend": False}})
        kids = await eventually(lambda: children(k8s_api))
    assert len(kids) == 2  # parallelism 2


@pytest.mark.slow
async def test_operator_killed_mid_study_never_duplicates_or_loses_results(k8s_api):
    await install(k8s_api)
    body = study_body(parallelism=1)
    created: list[str] = []
    async with fake_training(k8s_api) as fake:
        for _restart in range(3):  # kill and restart the operator mid-study, several times
            async with running_operator(k8s_api):
                await (k8s_api.create(body) if not created else asyncio.sleep(0))
                created.append("x")
                await eventually(lambda: len(fake.finished) >= len(created), timeout=30)
            kids = await children(k8s_api)
            names = [c["metadata"]["name"] for c in kids]
            assert len(names) == len(set(names)) <= 4
        async with running_operator(k8s_api):
            done = await eventually(lambda: study_phase(k8s_api, "Succeeded"), timeout=60)
    assert sorted(fake.finished) == sorted(planned_names(body))  # every run trained once
    assert done["status"]["runs"]["succeeded"] == 4
    assert done["status"]["recommendations"][0]["best"] == ["dpo"]
    if k8s_api.kind == "kmock":  # each child was created by exactly one successful POST
        posts = [r for r in list(k8s_api.emulator)
                 if r.method == "POST" and str(r.url.path).endswith("/posttrainingruns")]
        names = [r.data["metadata"]["name"] for r in posts]
        assert sorted(set(names)) == sorted(planned_names(body))
