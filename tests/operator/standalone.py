"""The test API server and the fake training operator as processes of their own.

The operator benchmark runs the operator, the API server and the training operator in three
processes, so that each one's CPU time and memory are measured alone::

    python -m tests.operator.standalone apiserver URL_FILE   # server-like kmock + CRDs
    python -m tests.operator.standalone training URL          # completes every job at once

Each runs until terminated. The API server writes its URL to ``URL_FILE`` once it serves the
CRDs (and a kubeconfig next to it, ``URL_FILE.kubeconfig``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kmock

from tests.operator.harness import (
    PTJ,
    PYTORCHJOB_CRD,
    FakeTrainingOperator,
    ServerLikeEmulator,
    install,
)
from tests.support.kube import KubeAPI, load_crds, register_builtin_resources
from tests.support.servers import write_kubeconfig


class SessionAPI(KubeAPI):
    """:class:`KubeAPI` over one keep-alive session (the per-request session of the tests'
    client costs a TCP connection per call, which dominates at 1,000s of calls)."""

    session: aiohttp.ClientSession | None = None

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))
        headers = {"Content-Type": content_type}
        async with self.session.request(method, self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


class ScalableEmulator(ServerLikeEmulator):
    """The server-like kmock made to last 10,000s of requests over 1,000s of objects.

    kmock matches each request against its whole request history (``request in view``
    scans every past request: O(requests²) in total) and finds an object by scanning all
    objects. Here an answered request is forgotten (nothing inspects the history in the
    benchmark) and a named object is looked up by its key, as a real server indexes it.
    """

    async def _handle(self, request: Any) -> Any:
        try:
            return await super()._handle(request)
        finally:
            history = self._requests
            for i in range(len(history) - 1, -1, -1):  # in flight: a few watches and this one
                if history[i] is request:
                    del history[i]
                    break

    def _KubernetesEmulator__get_objs(self, request: Any, strict: bool) -> list[Any]:
        if request.name is None or request.namespace is None:
            found: list[Any] = super()._KubernetesEmulator__get_objs(request, strict)  # type: ignore[misc]
            return found
        obj = self._objects._objects.get((request.resource, request.namespace, request.name))
        return [] if obj is None else [obj]


def known_kinds(api: KubeAPI) -> KubeAPI:
    """``api`` with the plurals of the ptlab and PyTorchJob CRDs (no server round trip)."""
    for crd in load_crds() + load_crds([PYTORCHJOB_CRD]):
        spec = crd["spec"]
        for version in spec["versions"]:
            key = f"{spec['group']}/{version['name']}/{spec['names']['kind']}"
            api.plurals[key] = (spec["names"]["plural"], spec["scope"] == "Namespaced")
    return api


async def serve_api(url_file: Path) -> None:
    """Serve the server-like kmock with the builtin resources and CRDs until cancelled."""
    async with ScalableEmulator() as emulator, kmock.Server(emulator):
        register_builtin_resources(emulator)
        url = str(emulator.url).rstrip("/")
        kubeconfig = write_kubeconfig(Path(f"{url_file}.kubeconfig"), url, None)
        api = KubeAPI(url=url, kind="kmock", emulator=emulator, kubeconfig=kubeconfig)
        await api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        await install(api)
        url_file.write_text(url)
        await asyncio.Event().wait()


async def follow_jobs(url: str, namespace: str = "default") -> None:
    """Watch PyTorchJobs and complete each one at once (:class:`FakeTrainingOperator`)."""
    api = known_kinds(SessionAPI(url=url, kind="kmock", kubeconfig=Path("/dev/null"), namespace=namespace))
    fake = FakeTrainingOperator(api)
    path = f"/apis/{PTJ[0]}/namespaces/{namespace}/pytorchjobs"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url + path, params={"watch": "true"}) as resp,
    ):
        async for line in resp.content:
            if line.strip():
                fake.advance(PTJ, json.loads(line)["object"])


def main(argv: list[str]) -> None:
    """Entry point: ``apiserver URL_FILE`` or ``training URL``."""
    match argv:
        case ["apiserver", url_file]:
            asyncio.run(serve_api(Path(url_file)))
        case ["training", url]:
            asyncio.run(follow_jobs(url))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
