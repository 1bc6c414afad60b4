"""Pure builders: a PostTrainingRun spec in, Kubernetes manifest dicts out (no I/O).

The operator adopts (owner reference) and creates what these return. Every pod is locked
down: non-root, read-only root filesystem with emptyDir volumes for caches and /tmp, all
capabilities dropped, seccomp RuntimeDefault, and a service account that may only patch
``posttrainingruns/status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ptlab.api.hashing import canonical_json, content_hash
from ptlab.api.models import PostTrainingRunSpec
from ptlab.operator.config import OperatorConfig

Manifest = dict[str, Any]
Backend = Literal["pytorchjob", "job"]

SPEC_DIR = "/etc/ptlab"
SPEC_FILE = "spec.json"
RUN_DIR = "/work/run"
"""The trainer's run directory (``--out``) inside the ``work`` emptyDir."""
UID = 10001
"""The non-root user of the image (see the Dockerfile)."""
SCRATCH = {"tmp": "/tmp", "cache": "/home/ptlab/.cache", "work": "/work"}
"""emptyDir mounts: the root filesystem is read-only, so every writable path is one of these."""


def spec_configmap_name(run: str) -> str:
    """Name of the ConfigMap that holds a run's resolved spec."""
    return f"{run}-spec"


def run_labels(run: str, study: str | None) -> dict[str, str]:
    """Labels of everything created for one run (selectors use ``ptlab.io/run``)."""
    labels = {
        "app.kubernetes.io/name": "ptlab-trainer",
        "app.kubernetes.io/instance": run,
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/part-of": "ptlab",
        "app.kubernetes.io/managed-by": "ptlab-operator",
        "ptlab.io/run": run,
    }
    if study:
        labels["ptlab.io/study"] = study
    return labels


def resolved_spec(spec: PostTrainingRunSpec, config: OperatorConfig) -> dict[str, Any]:
    """The spec the trainer reads: operator defaults (MLflow URI) filled in."""
    data = spec.model_dump(mode="json", by_alias=True)
    if not data["tracking"]["mlflow_uri"] and config.mlflow_uri:
        data["tracking"]["mlflow_uri"] = config.mlflow_uri
    return data


def build_spec_configmap(
    run: str, namespace: str, spec: PostTrainingRunSpec, config: OperatorConfig
) -> Manifest:
    """ConfigMap with ``spec.json`` (canonical JSON) and its content hash as an annotation."""
    data = resolved_spec(spec, config)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec_configmap_name(run),
            "namespace": namespace,
            "labels": run_labels(run, spec.study),
            "annotations": {"ptlab.io/spec-hash": content_hash(data)},
        },
        "data": {SPEC_FILE: canonical_json(data)},
    }


def train_command(spec: PostTrainingRunSpec, config: OperatorConfig) -> list[str]:
    """The trainer's command: ``ptlab train`` on the mounted spec, under ``torchrun`` when a
    node runs several processes or the job spans nodes.

    torchrun takes ``--nnodes``/``--node-rank``/``--master-addr``/``--master-port`` from the
    ``PET_*`` variables the Kubeflow training operator sets on every PyTorchJob replica.
    """
    args = [
        "train", f"{SPEC_DIR}/{SPEC_FILE}",
        "--out", RUN_DIR,
        "--metrics-port", str(config.trainer_metrics_port),
    ]
    nproc = max(spec.resources.gpus, 1)
    if nproc == 1 and spec.resources.nodes == 1:
        return ["ptlab", *args]
    return ["torchrun", f"--nproc-per-node={nproc}", "-m", "ptlab.cli.main", *args]


def _env(run: str, spec: PostTrainingRunSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    """Environment of the trainer container: identity (for its status patches), tracking,
    cache paths. Names are the ones ``ptlab.trainer.kube_status`` reads."""
    mlflow_uri = spec.tracking.mlflow_uri or config.mlflow_uri
    env: list[dict[str, Any]] = [
        {"name": "PTLAB_RUN_NAME", "value": run},
        {
            "name": "PTLAB_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "PTLAB_STUDY", "value": spec.study or ""},
        {"name": "HOME", "value": SCRATCH["tmp"]},
        {"name": "XDG_CACHE_HOME", "value": SCRATCH["cache"]},
        {"name": "HF_HOME", "value": f"{SCRATCH['cache']}/huggingface"},
        {"name": "PTLAB_CACHE", "value": f"{SCRATCH['cache']}/ptlab"},
        {"name": "MLFLOW_EXPERIMENT_NAME", "value": spec.tracking.experiment},
    ]
    if mlflow_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": mlflow_uri})
    return env


def _resources(spec: PostTrainingRunSpec) -> dict[str, Any]:
    """Requests/limits of one pod; GPUs go in limits (Kubernetes copies them to requests)."""
    res = spec.resources
    limits: dict[str, Any] = {"memory": res.memory}
    if res.gpus:
        limits["nvidia.com/gpu"] = res.gpus
    return {"requests": {"cpu": res.cpu, "memory": res.memory}, "limits": limits}


def _volumes(run: str, gpus: int) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, mounts): the spec ConfigMap read-only, emptyDirs for every writable path."""
    volumes: list[Manifest] = [
        {"name": "spec", "configMap": {"name": spec_configmap_name(run)}},
        *({"name": name, "emptyDir": {}} for name in SCRATCH),
    ]
    mounts: list[Manifest] = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        *({"name": name, "mountPath": path} for name, path in SCRATCH.items()),
    ]
    if gpus:  # NCCL needs a large /dev/shm between the processes of one node
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def build_pod_template(
    run: str,
    spec: PostTrainingRunSpec,
    config: OperatorConfig,
    container: str,
    restart_policy: str,
) -> Manifest:
    """Pod template of a trainer (shared by PyTorchJob replicas and the batch Job)."""
    volumes, mounts = _volumes(run, spec.resources.gpus)
    port = config.trainer_metrics_port
    return {
        "metadata": {
            "labels": run_labels(run, spec.study),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "serviceAccountName": config.trainer_service_account,
            "restartPolicy": restart_policy,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": container,
                    "image": spec.resources.image or config.image,
                    "imagePullPolicy": config.image_pull_policy,
                    "command": train_command(spec, config),
                    "env": _env(run, spec, config),
                    "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
                    "resources": _resources(spec),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }


def build_pytorchjob(
    run: str, namespace: str, spec: PostTrainingRunSpec, config: OperatorConfig
) -> Manifest:
    """``kubeflow.org/v1`` PyTorchJob: one Master plus ``nodes - 1`` Workers.

    ``nprocPerNode`` = GPUs per node (1 on CPU). The training operator requires the container
    to be named ``pytorch``.
    """
    template = build_pod_template(run, spec, config, "pytorch", "OnFailure")
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template}
    }
    if spec.resources.nodes > 1:
        replicas["Worker"] = {
            "replicas": spec.resources.nodes - 1,
            "restartPolicy": "OnFailure",
            "template": template,
        }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": run, "namespace": namespace, "labels": run_labels(run, spec.study)},
        "spec": {
            "nprocPerNode": str(max(spec.resources.gpus, 1)),
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": config.backoff_limit},
            "pytorchReplicaSpecs": replicas,
        },
    }


def build_batch_job(
    run: str, namespace: str, spec: PostTrainingRunSpec, config: OperatorConfig
) -> Manifest:
    """``batch/v1`` Job for a single-node run (clusters without the Kubeflow operator)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run, "namespace": namespace, "labels": run_labels(run, spec.study)},
        "spec": {
            "backoffLimit": config.backoff_limit,
            "completions": 1,
            "parallelism": 1,
            "template": build_pod_template(run, spec, config, "trainer", "OnFailure"),
        },
    }


def choose_backend(spec: PostTrainingRunSpec, pytorchjob_available: bool) -> Backend:
    """``backend: auto`` → PyTorchJob when its CRD is served, else a batch Job."""
    wanted = spec.resources.backend
    if wanted == "auto":
        return "pytorchjob" if pytorchjob_available else "job"
    return wanted


def build_job(
    run: str, namespace: str, spec: PostTrainingRunSpec, config: OperatorConfig, backend: Backend
) -> Manifest:
    """The workload of a run for the chosen backend."""
    builder = build_pytorchjob if backend == "pytorchjob" else build_batch_job
    return builder(run, namespace, spec, config)


def owner_reference(owner: Mapping[str, Any]) -> Manifest:
    """Controller owner reference to ``owner`` (deletion of the owner cascades)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(manifest: Manifest, owner: Mapping[str, Any]) -> Manifest:
    """``manifest`` with ``owner`` as its controller and in the owner's namespace."""
    meta = {**manifest["metadata"], "ownerReferences": [owner_reference(owner)]}
    meta.setdefault("namespace", owner["metadata"].get("namespace"))
    return {**manifest, "metadata": meta}
