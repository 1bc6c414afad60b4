"""Exact-dict tests of the pure builders, one per variant (kopf style: build, compare whole)."""

from __future__ import annotations

from typing import Any

import pytest

from ptlab.api.models import PostTrainingRunSpec
from ptlab.operator import builders
from ptlab.operator.config import OperatorConfig

CONFIG = OperatorConfig(image="ptlab:1", mlflow_uri="http://mlflow:5000")


def spec(gpus: int = 0, nodes: int = 1, lora: bool = False, **res: Any) -> PostTrainingRunSpec:
    model: dict[str, Any] = {"name": "zoo/s1"}
    if lora:
        model["lora"] = {"r": 4}
    return PostTrainingRunSpec.model_validate({
        "algorithm": {"name": "dpo"},
        "model": model,
        "study": "st",
        "resources": {"gpus": gpus, "nodes": nodes, "cpu": "4", "memory": "16Gi", **res},
    })


LABELS = {
    "app.kubernetes.io/name": "ptlab-trainer",
    "app.kubernetes.io/instance": "r1",
    "app.kubernetes.io/component": "trainer",
    "app.kubernetes.io/part-of": "ptlab",
    "app.kubernetes.io/managed-by": "ptlab-operator",
    "ptlab.io/run": "r1",
    "ptlab.io/study": "st",
}


TRAIN_ARGS = ["train", "/etc/ptlab/spec.json", "--out", "/work/run", "--metrics-port", "9090"]


def command(gpus: int, nodes: int) -> list[str]:
    """One process: ``ptlab train``; several per node or several nodes: under torchrun."""
    if max(gpus, 1) == 1 and nodes == 1:
        return ["ptlab", *TRAIN_ARGS]
    return ["torchrun", f"--nproc-per-node={gpus}", "-m", "ptlab.cli.main", *TRAIN_ARGS]


def expected_pod(container: str, gpus: int, image: str = "ptlab:1", nodes: int = 1) -> dict[str, Any]:
    limits: dict[str, Any] = {"memory": "16Gi"}
    volumes: list[dict[str, Any]] = [
        {"name": "spec", "configMap": {"name": "r1-spec"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "work", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "spec", "mountPath": "/etc/ptlab", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": "/home/ptlab/.cache"},
        {"name": "work", "mountPath": "/work"},
    ]
    if gpus:
        limits["nvidia.com/gpu"] = gpus
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return {
        "metadata": {
            "labels": LABELS,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                            "prometheus.io/path": "/metrics"},
        },
        "spec": {
            "serviceAccountName": "ptlab-trainer",
            "restartPolicy": "OnFailure",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": container,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": command(gpus, nodes),
                "env": [
                    {"name": "PTLAB_RUN_NAME", "value": "r1"},
                    {"name": "PTLAB_NAMESPACE",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "PTLAB_STUDY", "value": "st"},
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "XDG_CACHE_HOME", "value": "/home/ptlab/.cache"},
                    {"name": "HF_HOME", "value": "/home/ptlab/.cache/huggingface"},
                    {"name": "PTLAB_CACHE", "value": "/home/ptlab/.cache/ptlab"},
                    {"name": "MLFLOW_EXPERIMENT_NAME", "value": "ptlab"},
                    {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
                ],
                "ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": limits},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }


@pytest.mark.parametrize(("gpus", "nodes"), [(0, 1), (8, 1), (4, 3)])
def test_pytorchjob_exact(gpus, nodes):
    job = builders.build_pytorchjob("r1", "ns", spec(gpus, nodes), CONFIG)
    pod = expected_pod("pytorch", gpus, nodes=nodes)
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}}
    if nodes > 1:
        replicas["Worker"] = {"replicas": nodes - 1, "restartPolicy": "OnFailure", "template": pod}
    assert job == {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "r1", "namespace": "ns", "labels": LABELS},
        "spec": {
            "nprocPerNode": str(max(gpus, 1)),
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 2},
            "pytorchReplicaSpecs": replicas,
        },
    }


@pytest.mark.parametrize("gpus", [0, 1])
def test_batch_job_exact(gpus):
    job = builders.build_batch_job("r1", "ns", spec(gpus, image="own:2"), CONFIG)
    assert job == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "r1", "namespace": "ns", "labels": LABELS},
        "spec": {"backoffLimit": 2, "completions": 1, "parallelism": 1,
                 "template": expected_pod("trainer", gpus, image="own:2")},
    }


@pytest.mark.parametrize("lora", [False, True])
def test_spec_configmap_holds_the_resolved_spec(lora):
    import json

    s = spec(lora=lora)
    cm = builders.build_spec_configmap("r1", "ns", s, CONFIG)
    data = json.loads(cm["data"]["spec.json"])
    expected = s.model_dump(mode="json", by_alias=True)
    expected["tracking"]["mlflow_uri"] = "http://mlflow:5000"  # operator default filled in
    assert data == expected
    assert (data["model"]["lora"] or {}).get("r") == (4 if lora else None)
    assert cm["metadata"] == {
        "name": "r1-spec", "namespace": "ns", "labels": LABELS,
        "annotations": {"ptlab.io/spec-hash": builders.content_hash(expected)},
    }
    # LoRA changes only the spec, never the workload
    job = builders.build_pytorchjob("r1", "ns", s, CONFIG)
    assert job == builders.build_pytorchjob("r1", "ns", spec(lora=not lora), CONFIG)


@pytest.mark.parametrize(
    ("backend", "available", "kind"),
    [("auto", True, "PyTorchJob"), ("auto", False, "Job"), ("job", True, "Job"),
     ("pytorchjob", True, "PyTorchJob")],
)
def test_backend_choice(backend, available, kind):
    s = spec(backend=backend)
    chosen = builders.choose_backend(s, available)
    assert builders.build_job("r1", "ns", s, CONFIG, chosen)["kind"] == kind


def test_owned_adds_the_controller_reference_and_namespace():
    owner = {"apiVersion": "ptlab.io/v1alpha1", "kind": "PostTrainingRun",
             "metadata": {"name": "r1", "namespace": "ns", "uid": "u-1"}}
    child = builders.owned({"kind": "ConfigMap", "metadata": {"name": "c"}}, owner)
    assert child == {"kind": "ConfigMap", "metadata": {
        "name": "c", "namespace": "ns",
        "ownerReferences": [{"apiVersion": "ptlab.io/v1alpha1", "kind": "PostTrainingRun",
                             "name": "r1", "uid": "u-1", "controller": True,
                             "blockOwnerDeletion": True}]}}
