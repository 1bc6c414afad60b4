"""The only module that talks to the Kubernetes API (async, aiohttp).

Credentials come from the same :class:`kopf.ConnectionInfo` kopf logs in with, so the
operator's own calls and kopf's watches use one identity. Every call is idempotent:
``create`` treats 409 (already exists) as success and returns the stored object, status
writes are JSON merge patches of the ``status`` subresource.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf

from ptlab.api.models import API_VERSION
from ptlab.operator import metrics

Body = dict[str, Any]
logger = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"
PYTORCHJOB = ("kubeflow.org/v1", "pytorchjobs")
PLURALS = {
    "PostTrainingRun": "posttrainingruns",
    "ComparisonStudy": "comparisonstudies",
    "PyTorchJob": "pytorchjobs",
    "Job": "jobs",
    "ConfigMap": "configmaps",
    "Event": "events",
}


class ApiError(Exception):
    """A failed API call: HTTP status and the server's message."""

    def __init__(self, verb: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{verb} {path}: HTTP {status}: {message}")
        self.status = status


def now_iso() -> str:
    """Current UTC time in the RFC 3339 form Kubernetes uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource_path(
    api_version: str, plural: str, namespace: str | None, name: str | None = None, sub: str = ""
) -> str:
    """REST path of a collection or object (``sub``: e.g. ``status``)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """Credentials: the pod's service account, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials (service account or kubeconfig)")
    return info


def _as_file(data: str | bytes, directory: str, name: str) -> str:
    """Write inline (maybe base64) PEM data to a file ssl can load."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.lstrip().startswith(b"-----"):
        raw = base64.b64decode(raw)
    path = os.path.join(directory, name)
    with open(path, "wb") as fh:
        fh.write(raw)
    return path


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    """TLS settings from the connection info (``False`` for plain http / insecure)."""
    if info.insecure or info.server.startswith("http://"):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        ca = _as_file(info.ca_data, tmp, "ca.pem") if info.ca_data else info.ca_path
        ctx = ssl.create_default_context(cafile=os.fsdecode(ca) if ca else None)
        cert = (
            _as_file(info.certificate_data, tmp, "cert.pem")
            if info.certificate_data
            else info.certificate_path
        )
        key = (
            _as_file(info.private_key_data, tmp, "key.pem")
            if info.private_key_data
            else info.private_key_path
        )
        if cert:
            ctx.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
    return ctx


@dataclass
class Client:
    """A small async Kubernetes REST client bound to one server and identity."""

    server: str
    session: aiohttp.ClientSession
    _discovery: dict[str, tuple[float, bool]] = field(default_factory=dict)

    @classmethod
    def connect(cls, info: kopf.ConnectionInfo) -> Client:
        """A client for the server and credentials of ``info``."""
        connector = aiohttp.TCPConnector(ssl=_ssl_context(info), limit=32)
        session = aiohttp.ClientSession(
            connector=connector,
            headers=info.as_http_headers(),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return cls(server=info.server.rstrip("/"), session=session)

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        verb: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Body:
        """One API call; non-2xx raises :class:`ApiError` and counts in the error metric."""
        headers = {"Content-Type": content_type} if body is not None else {}
        try:
            async with self.session.request(
                verb, self.server + path, json=body, params=params, headers=headers
            ) as resp:
                data = await resp.json(content_type=None) if resp.content_length != 0 else {}
                if resp.status >= 400:
                    message = data.get("message", "") if isinstance(data, dict) else str(data)
                    metrics.API_ERRORS.labels(verb=verb, code=str(resp.status)).inc()
                    raise ApiError(verb, path, resp.status, message)
                return data if isinstance(data, dict) else {}
        except aiohttp.ClientError as err:
            metrics.API_ERRORS.labels(verb=verb, code="connection").inc()
            raise ApiError(verb, path, 0, str(err)) from err

    async def get(self, path: str) -> Body | None:
        """The object at ``path``, or ``None`` when it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def create(self, manifest: Mapping[str, Any]) -> tuple[Body, bool]:
        """Create ``manifest``; (stored object, created?) — an existing object is returned."""
        meta = manifest["metadata"]
        plural = PLURALS[manifest["kind"]]
        path = resource_path(manifest["apiVersion"], plural, meta.get("namespace"))
        try:
            return await self.request("POST", path, manifest), True
        except ApiError as err:
            if err.status != 409:
                raise
        existing = await self.get(
            resource_path(manifest["apiVersion"], plural, meta.get("namespace"), meta["name"])
        )
        if existing is None:  # deleted between the conflict and the read: try once more
            return await self.request("POST", path, manifest), True
        return existing, False

    async def patch_status(self, kind: str, namespace: str, name: str, status: Body) -> Body:
        """Merge-patch the status subresource of one of our objects."""
        path = resource_path(API_VERSION, PLURALS[kind], namespace, name, "status")
        return await self.request("PATCH", path, {"status": status}, content_type=MERGE_PATCH)

    async def list_labelled(
        self, api_version: str, kind: str, namespace: str, key: str, value: str
    ) -> list[Body]:
        """Objects of ``kind`` with label ``key=value`` (filtered here too, for servers that
        ignore selectors)."""
        path = resource_path(api_version, PLURALS[kind], namespace)
        data = await self.request("GET", path, params={"labelSelector": f"{key}={value}"})
        items = data.get("items") or []
        return [i for i in items if (i.get("metadata", {}).get("labels") or {}).get(key) == value]

    async def serves(self, api_version: str, plural: str, ttl_s: float = 30.0) -> bool:
        """Discovery: does the server serve ``plural`` in ``api_version``? (cached ``ttl_s``)"""
        key = f"{api_version}/{plural}"
        cached = self._discovery.get(key)
        if cached and time.monotonic() - cached[0] < ttl_s:
            return cached[1]
        data = await self.get(f"/apis/{api_version}")
        resources = (data or {}).get("resources", [])
        found = any(r.get("name") == plural for r in resources)
        self._discovery[key] = (time.monotonic(), found)
        return found

    async def event(
        self, involved: Mapping[str, Any], reason: str, message: str, warning: bool = False
    ) -> None:
        """Record a Kubernetes Event on ``involved`` (name derived from the transition, so a
        replayed transition does not create a second event)."""
        meta = involved["metadata"]
        digest = hashlib.sha256(f"{meta.get('uid')}/{reason}/{message}".encode()).hexdigest()
        stamp = now_iso()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{digest[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "ptlab-operator"},
            "reportingComponent": "ptlab-operator",
            "reportingInstance": os.environ.get("HOSTNAME", "ptlab-operator"),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.create(event)
        except ApiError as err:  # events are best effort: a missing one never blocks a reconcile
            logger.warning("event %s on %s not recorded: %s", reason, meta["name"], err)
