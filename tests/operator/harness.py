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
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import kmock
import yaml
from kopf.testing import KopfRunner

from ptlab.operator import builders
from tests.support.kube import KubeAPI, load_crds
from tests.support.servers import free_port

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

    For every job it sees: Created → Running, then :meth:`train` (here: write the run's
    ``status.result`` the way the trainer does, ``outcome`` of the run spec from the job's
    ConfigMap), then Succeeded (or Failed for runs whose name is in ``fail``). Jobs advance
    concurrently; only while ``enabled`` is set.
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
        self._busy: dict[str, asyncio.Task[None]] = {}

    async def step(self) -> None:
        """One poll: list the jobs and start advancing every unfinished one."""
        for kind in (PTJ, JOB):
            with contextlib.suppress(KeyError, RuntimeError):
                for job in await self.api.list(*kind):
                    self.advance(kind, job)

    def advance(self, kind: tuple[str, str], job: Mapping[str, Any]) -> None:
        """Advance ``job`` in a task of its own (once at a time per job)."""
        name = job["metadata"]["name"]
        types = {c["type"] for c in (job.get("status") or {}).get("conditions") or []}
        if types & {"Succeeded", "Complete", "Failed"} or name in self._busy:
            return
        task = asyncio.create_task(self._advance(kind, job))
        self._busy[name] = task
        task.add_done_callback(lambda _: self._busy.pop(name, None))

    async def _advance(self, kind: tuple[str, str], job: Mapping[str, Any]) -> None:
        name = job["metadata"]["name"]
        ref = {"apiVersion": kind[0], "kind": kind[1], "metadata": {"name": name}}
        base = ("Created", "Running") if kind == PTJ else ()
        if base:
            await self.api.patch(ref, {"status": _conditions(*base)}, "status")
        cm = await get(self.api, ("v1", "ConfigMap"), f"{name}-spec")
        assert cm is not None, f"job {name} has no spec ConfigMap"
        ok = name not in self.fail and await self.train(job, json.loads(cm["data"]["spec.json"]))
        final = ("Succeeded" if kind == PTJ else "Complete") if ok else "Failed"
        await self.api.patch(ref, {"status": _conditions(*base, final)}, "status")
        self.finished.append(name)

    async def train(self, job: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
        """What the pod does; here: report ``outcome(spec)`` as the run's result at once."""
        run_ref = {"apiVersion": RUN[0], "kind": RUN[1], "metadata": job["metadata"]}
        result = {"accuracy": self.outcome(spec)}
        await self.api.patch(run_ref, {"status": {"result": result}}, "status")
        return True

    async def run(self) -> None:
        while True:
            await self.enabled.wait()
            await self.step()
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Cancel jobs still advancing."""
        for task in list(self._busy.values()):
            task.cancel()
        await asyncio.gather(*self._busy.values(), return_exceptions=True)


class LocalTrainer(FakeTrainingOperator):
    """Runs each job's REAL trainer command on this machine, as its pod would.

    The container's command and environment come from the job; paths inside the pod are
    mapped to folders under ``workdir`` (the spec file from the ConfigMap, the run directory,
    caches) and each job gets its own metrics port (pods have their own network). The
    trainer patches its run's status itself (``ptlab.trainer.kube_status``) through the
    test server named by ``PTLAB_KUBE_API``.
    """

    def __init__(self, api: KubeAPI, workdir: Path, env: Mapping[str, str] = {}, **kw: Any) -> None:
        super().__init__(api, **kw)
        self.workdir, self.env = workdir, dict(env)
        self.exit_codes: dict[str, int] = {}

    def pod_command(self, job: Mapping[str, Any], spec: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        """(argv, env) of the job's trainer container, mapped onto ``workdir``."""
        name = job["metadata"]["name"]
        local = self.workdir / name
        (local / "etc").mkdir(parents=True, exist_ok=True)
        (local / "etc" / builders.SPEC_FILE).write_text(json.dumps(spec))
        paths = {builders.SPEC_DIR: str(local / "etc"), builders.RUN_DIR: str(local / "run"),
                 **{p: str(local / n) for n, p in builders.SCRATCH.items()}}
        template = job["spec"].get("template") or job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
        (container,) = template["spec"]["containers"]
        argv = [_map_path(a, paths) for a in container["command"]]
        argv[0] = str(Path(sys.executable).with_name(argv[0]))
        argv[argv.index("--metrics-port") + 1] = str(free_port())
        # the only env entry without a value is the namespace (a fieldRef)
        env = {e["name"]: _map_path(e.get("value", self.api.namespace), paths) for e in container["env"]}
        return argv, {**os.environ, **env, **self.env}

    async def train(self, job: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
        argv, env = self.pod_command(job, spec)
        name = job["metadata"]["name"]
        with (self.workdir / f"{name}.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=log, stderr=log)
            try:
                code = await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        self.exit_codes[name] = code
        return code == 0


def _map_path(value: str, paths: Mapping[str, str]) -> str:
    """``value`` with a pod path prefix (longest first) replaced by its local folder."""
    for pod_path in sorted(paths, key=len, reverse=True):
        if value == pod_path or value.startswith(pod_path + "/"):
            return paths[pod_path] + value[len(pod_path):]
    return value


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
async def fake_training(
    api: KubeAPI, cls: type[FakeTrainingOperator] = FakeTrainingOperator, **kw: Any
) -> AsyncIterator[FakeTrainingOperator]:
    """Run a :class:`FakeTrainingOperator` (or ``cls``) in the test's loop for the block."""
    fake = cls(api, **kw)
    task = asyncio.create_task(fake.run())
    try:
        yield fake
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await fake.stop()


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
