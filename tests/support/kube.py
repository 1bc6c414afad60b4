"""One Kubernetes API for tests: kmock's emulator, or a real kube-apiserver (envtest).

Tests talk to both through :class:`KubeAPI` (plain REST over aiohttp), so the same test runs
on either. Where kmock lacks server behaviour (no schema/CEL validation, no uid/generation,
no garbage collection, no CRD → resource registration) :meth:`KubeAPI.install_crds` supplies
the registration explicitly and tests state what they assert on which backend.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"

BUILTIN_RESOURCES: dict[str, tuple[str, bool, set[str]]] = {
    # api path prefix/plural: (kind, namespaced, subresources)
    "v1/namespaces": ("Namespace", False, set()),
    "v1/configmaps": ("ConfigMap", True, set()),
    "v1/events": ("Event", True, set()),
    "v1/pods": ("Pod", True, {"status"}),
    "v1/serviceaccounts": ("ServiceAccount", True, set()),
    "events.k8s.io/v1/events": ("Event", True, set()),
    "batch/v1/jobs": ("Job", True, {"status"}),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, {"status"}),
}

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


def load_crds(paths: list[Path] | None = None) -> list[dict[str, Any]]:
    """CRD manifests from files (default: every file in crds/)."""
    files = paths if paths is not None else sorted(CRD_DIR.glob("*.yaml"))
    return [doc for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]


def _resource_path(api_version: str, plural: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{ns}/{plural}" + (f"/{name}" if name else "")


@dataclass
class KubeAPI:
    """A running API server (kmock or envtest) and a minimal async REST client for tests."""

    url: str
    kind: str  # "kmock" or "envtest"
    kubeconfig: Path
    token: str | None = None
    namespace: str = "default"
    emulator: Any = None
    plurals: dict[str, tuple[str, bool]] = field(default_factory=dict)  # "apiVersion/Kind" → (plural, namespaced)

    def __post_init__(self) -> None:
        for key, (kind, namespaced, _) in BUILTIN_RESOURCES.items():
            api_version, plural = key.rsplit("/", 1)
            self.plurals[f"{api_version}/{kind}"] = (plural, namespaced)

    # -- plumbing ------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https"):
            return False
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> tuple[int, Any]:
        """Send one request; returns (status, parsed JSON or text)."""
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with aiohttp.ClientSession() as session, session.request(
            method, self.url + path, json=body, headers=headers, ssl=self._ssl()
        ) as resp:
            try:
                data = await resp.json(content_type=None)
            except Exception:  # non-JSON error bodies are returned as text
                data = await resp.text()
            return resp.status, data

    def _where(self, obj: dict[str, Any]) -> tuple[str, str | None]:
        key = f"{obj['apiVersion']}/{obj['kind']}"
        if key not in self.plurals:
            raise KeyError(f"unknown kind {key}; install its CRD first")
        plural, namespaced = self.plurals[key]
        ns = obj.get("metadata", {}).get("namespace") or self.namespace if namespaced else None
        return plural, ns

    # -- objects ---------------------------------------------------------------------------
    async def create(self, obj: dict[str, Any]) -> tuple[int, Any]:
        """POST an object; on kmock a uid/resourceVersion are added (kmock assigns none)."""
        plural, ns = self._where(obj)
        if self.kind == "kmock":
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("resourceVersion", "1")
            meta.setdefault("generation", 1)
            if ns:
                meta.setdefault("namespace", ns)
        return await self.request("POST", _resource_path(obj["apiVersion"], plural, ns), obj)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> tuple[int, Any]:
        plural, namespaced = self.plurals[f"{api_version}/{kind}"]
        ns = (namespace or self.namespace) if namespaced else None
        return await self.request("GET", _resource_path(api_version, plural, ns, name))

    async def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        plural, namespaced = self.plurals[f"{api_version}/{kind}"]
        ns = (namespace or self.namespace) if namespaced else None
        status, data = await self.request("GET", _resource_path(api_version, plural, ns))
        if status != 200:
            raise RuntimeError(f"list {kind}: {status} {data}")
        return list(data.get("items", []))

    async def patch(self, obj_ref: dict[str, Any], patch: dict[str, Any], subresource: str | None = None) -> tuple[int, Any]:
        """JSON merge-patch an object (or its ``status`` subresource)."""
        plural, ns = self._where(obj_ref)
        path = _resource_path(obj_ref["apiVersion"], plural, ns, obj_ref["metadata"]["name"])
        if subresource:
            path += f"/{subresource}"
        return await self.request("PATCH", path, patch, "application/merge-patch+json")

    async def delete(self, obj_ref: dict[str, Any]) -> tuple[int, Any]:
        plural, ns = self._where(obj_ref)
        path = _resource_path(obj_ref["apiVersion"], plural, ns, obj_ref["metadata"]["name"])
        return await self.request("DELETE", path)

    # -- CRDs --------------------------------------------------------------------------------
    async def install_crds(self, crds: list[dict[str, Any]] | None = None) -> None:
        """Create CRDs (default: crds/*.yaml) and wait until their resources are served.

        kmock keeps the CRD objects but does not turn them into resources, so for kmock the
        resource is also registered here from the CRD's names/scope/subresources.
        """
        for crd in crds if crds is not None else load_crds():
            spec = crd["spec"]
            names = spec["names"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                self.plurals[f"{api_version}/{names['kind']}"] = (names["plural"], spec["scope"] == "Namespaced")
            status, data = await self.create(dict(crd))
            if status not in (200, 201, 409):
                raise RuntimeError(f"creating CRD {crd['metadata']['name']}: {status} {data}")
            if self.kind == "kmock":
                import kmock

                for version in spec["versions"]:
                    self.emulator.resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = kmock.ResourceInfo(
                        kind=names["kind"],
                        singular=names.get("singular"),
                        namespaced=spec["scope"] == "Namespaced",
                        verbs=VERBS,
                        shortnames=set(names.get("shortNames", [])),
                        subresources=set(version.get("subresources", {})),
                    )
            else:
                await self._wait_served(spec["group"], spec["versions"][0]["name"], names["plural"])

    async def _wait_served(self, group: str, version: str, plural: str, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            status, data = await self.request("GET", f"/apis/{group}/{version}")
            if status == 200 and any(r.get("name") == plural for r in data.get("resources", [])):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{plural}.{group} not served after {timeout} s")


def register_builtin_resources(emulator: Any) -> None:
    """Declare the core resources kmock should serve (and `v1/namespaces`, which kopf needs)."""
    import kmock

    for key, (kind, namespaced, subresources) in BUILTIN_RESOURCES.items():
        emulator.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )
