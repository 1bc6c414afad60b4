"""In a pod: patch the run's own PostTrainingRun ``status`` (progress, result) via the API.

Enabled when ``PTLAB_RUN_NAME`` is set (with ``PTLAB_NAMESPACE``, default from the service
account or ``default``); progress every ``PTLAB_STATUS_EVERY`` steps (default 10). The API is the in-cluster one (``KUBERNETES_SERVICE_HOST``) or
``PTLAB_KUBE_API`` (a URL, used by tests and local clusters). A failed patch is logged and
never stops training; :attr:`StatusReporter.failures` counts them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ptlab.api.models import GROUP, VERSION

log = logging.getLogger("ptlab.trainer")
PLURAL = "posttrainingruns"
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def now() -> str:
    """RFC 3339 UTC time stamp."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_patch(step: int, total: int) -> dict[str, Any]:
    """Status patch for progress (phase Running)."""
    percent = min(100, int(100 * step / total)) if total else 0
    return {"status": {"phase": "Running", "progress": {"step": step, "total": total, "percent": percent}}}


def result_patch(result: Mapping[str, Any]) -> dict[str, Any]:
    """Status patch for the end of the run: numeric result metrics, phase, message."""
    succeeded = result.get("status") == "succeeded"
    metrics = {k: float(v) for k, v in result.get("metrics", {}).items() if isinstance(v, int | float)}
    status: dict[str, Any] = {
        "phase": "Succeeded" if succeeded else "Failed",
        "result": metrics,
        "completionTime": now(),
    }
    if "accuracy" in metrics:
        status["score"] = f"{metrics['accuracy']:.3f}"
    if not succeeded:
        status["message"] = str(result.get("reason", "failed"))
    if result.get("mlflow_run_id"):
        status["mlflowRunId"] = result["mlflow_run_id"]
    return {"status": status}


class StatusReporter:
    """Patches ``status`` of one PostTrainingRun; every ``every`` steps for progress."""

    def __init__(self, name: str, namespace: str, api: Any, every: int = 10):
        self.name, self.namespace, self.api, self.every = name, namespace, api, every
        self.failures = 0

    @classmethod
    def from_env(cls) -> StatusReporter | None:
        """A reporter when running as a PostTrainingRun's pod, else ``None``."""
        name = os.environ.get("PTLAB_RUN_NAME")
        every = int(os.environ.get("PTLAB_STATUS_EVERY", "10"))
        if not name:
            return None
        try:
            from kubernetes import client, config

            url = os.environ.get("PTLAB_KUBE_API")
            if url:
                conf = client.Configuration()
                conf.host = url
                conf.verify_ssl = False
                api_client = client.ApiClient(conf)
            else:
                config.load_incluster_config()
                api_client = client.ApiClient()
            namespace = os.environ.get("PTLAB_NAMESPACE") or (
                SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.exists() else "default"
            )
            return cls(name, namespace, client.CustomObjectsApi(api_client), every)
        except Exception as err:
            log.warning("status reporting disabled: %s", err)
            return None

    def patch(self, body: Mapping[str, Any]) -> bool:
        """Merge-patch the status subresource; ``False`` on any failure."""
        try:
            self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, self.name, dict(body), _request_timeout=5
            )
            return True
        except Exception as err:
            self.failures += 1
            log.warning("status patch of %s/%s failed: %s", self.namespace, self.name, err)
            return False

    def progress(self, step: int, total: int, force: bool = False) -> None:
        if force or step % self.every == 0:
            self.patch(progress_patch(step, total))

    def result(self, result: Mapping[str, Any]) -> None:
        self.patch(result_patch(result))
