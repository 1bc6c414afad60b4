"""Test harness: the real kopf operator in-process, a server-like kmock, a fake training operator.

kmock lacks some server behaviour the operator relies on; :class:`ServerLikeEmulator` supplies
exactly that, explicitly: a ``uid``, ``resourceVersion``, ``generation`` and
``creationTimestamp`` on every created object (a real server assigns them). Garbage
collection, admission and status isolation stay absent: tests assert owner references and
validate objects with tests/support/admission.py instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import kmock
import yaml
from kopf.testing import KopfRunner

from tests.support.kube import KubeAPI, load_crds

HERE = Path(__file__).resolve().parent
PYTORCHJOB_CRD = HERE / "fixtures" / "pytorchjob-crd.yaml"
RUN = ("ptlab.io/v1alpha1", "PostTrainingRun")
STUDY = ("ptlab.io/v1alpha1", "ComparisonStudy")
PTJ = ("kubeflow.org/v1", "PyTorchJob")
JOB = ("batch/v1", "Job")


class ServerLikeEmulator(kmock.KubernetesEmulator):
    """kmock plus the server-assigned metadata a real API server adds on create."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("resourceVersion", "1")
            meta.setdefault("generation", 1)
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta.setdefault("creationTimestamp", now)
        return await super()._handle(request)


async def install(api: KubeAPI, pytorchjob: bool = True) -> None:
    """The generated ptlab CRDs, plus the PyTorchJob CRD fixture when ``pytorchjob``."""
    crds = load_crds()
    if pytorchjob:
        crds += load_crds([PYTORCHJOB_CRD])
    await api.install_crds(crds)


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with the last value on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


async def get(api: KubeAPI, kind: tuple[str, str], name: str) -> dict[str, Any] | None:
    status, data = await api.get(kind[0], kind[1], name)
    return data if status == 200 else None


@contextlib.asynccontextmanager
async def running_operator(api: KubeAPI) -> AsyncIterator[KopfRunner]:
    """The real kopf operator (ptlab handlers) in a thread, until the block exits."""
    args = ["run", "-m", "ptlab.operator.handlers", "--standalone", "--all-namespaces"]
    runner = KopfRunner(args, timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        await _until_watching(api)
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


async def _until_watching(api: KubeAPI) -> None:
    """kopf must watch runs and studies before the test creates objects."""
    if api.kind != "kmock":
        await asyncio.sleep(2.0)
        return

    async def watching() -> bool:
        paths = {str(r.url.path) for r in list(api.emulator) if r.params.get("watch")}
        return any("comparisonstudies" in p for p in paths) and any(
            "posttrainingruns" in p for p in paths
        )

    await eventually(watching, timeout=30)


def outcome_of(spec: Mapping[str, Any]) -> float:
    """The fake trainer's deterministic accuracy: dpo > orpo > others, plus seed noise that
    differs by algorithm (so paired differences have a variance)."""
    name = spec["algorithm"]["name"]
    base = {"dpo": 0.70, "orpo": 0.50}.get(name, 0.30)
    return base + (0.01 if name == "dpo" else -0.01) * (spec["training"]["seed"] % 3)


class FakeTrainingOperator:
    """Test-only stand-in for the Kubeflow training operator + the trainer in the pod.

    For every job it sees: Created → Running, writes the run's ``status.result`` the way the
    trainer does (``outcome`` of the run spec, from the job's ConfigMap), then Succeeded
    (or Failed for runs whose name is in ``fail``). Only advances while ``enabled`` is set.
    """

    def __init__(
        self,
        api: KubeAPI,
        outcome: Callable[[Mapping[str, Any]], float] = outcome_of,
        fail: frozenset[str] = frozenset(),
    ) -> None:
        self.api, self.outcome, self.fail = api, outcome, fail
        self.enabled = asyncio.Event()
        self.enabled.set()
        self.finished: list[str] = []

    async def step(self) -> None:
        for kind in (PTJ, JOB):
            with contextlib.suppress(KeyError, RuntimeError):
                for job in await self.api.list(*kind):
                    await self._advance(kind, job)

    async def _advance(self, kind: tuple[str, str], job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        types = {c["type"] for c in (job.get("status") or {}).get("conditions") or []}
        if types & {"Succeeded", "Complete", "Failed"}:
            return
        ref = {"apiVersion": kind[0], "kind": kind[1], "metadata": {"name": name}}
        if "Running" not in types and kind == PTJ:
            await self.api.patch(ref, {"status": _conditions("Created", "Running")}, "status")
            return
        cm = await get(self.api, ("v1", "ConfigMap"), f"{name}-spec")
        assert cm is not None, f"job {name} has no spec ConfigMap"
        spec = json.loads(cm["data"]["spec.json"])
        run_ref = {"apiVersion": RUN[0], "kind": RUN[1], "metadata": {"name": name}}
        if name in self.fail:
            final = "Failed"
        else:
            result = {"accuracy": self.outcome(spec)}
            await self.api.patch(run_ref, {"status": {"result": result}}, "status")
            final = "Succeeded" if kind == PTJ else "Complete"
        base = ("Created", "Running") if kind == PTJ else ()
        await self.api.patch(ref, {"status": _conditions(*base, final)}, "status")
        self.finished.append(name)

    async def run(self) -> None:
        while True:
            await self.enabled.wait()
            await self.step()
            await asyncio.sleep(0.05)


def _conditions(*types: str) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "conditions": [
            {"type": t, "status": "True", "reason": t, "message": f"job {t.lower()}",
             "lastUpdateTime": now, "lastTransitionTime": now}
            for t in types
        ],
        "startTime": now,
    }


@contextlib.asynccontextmanager
async def fake_training(api: KubeAPI, **kw: Any) -> AsyncIterator[FakeTrainingOperator]:
    """Run a :class:`FakeTrainingOperator` in the test's loop for the duration of the block."""
    fake = FakeTrainingOperator(api, **kw)
    task = asyncio.create_task(fake.run())
    try:
        yield fake
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
