"""The Helm chart: real `helm lint`/`helm template`, rendered paths, schema, validation, drift."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ptlab"
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "namespaced": ["operator.namespaced=true"],
    "monitoring": ["monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true",
                   "trainer.mlflowUri=http://mlflow:5000", "image.tag=1.2.3"],
}


def render(helm: Path, *sets: str) -> list[dict[str, Any]]:
    args = [str(helm), "template", "rel", str(CHART), "--namespace", "lab", "--include-crds"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_helm_lint_strict(helm_bin):
    for sets in VALUE_SETS.values():
        args = [str(helm_bin), "lint", str(CHART), "--strict"] + [a for s in sets for a in ("--set", s)]
        result = subprocess.run(args, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_crds_in_chart_equal_generated():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_chart_crds.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_manifests_validate_against_kubernetes_schemas(helm_bin, name):
    import kubernetes_validate

    docs = render(helm_bin, *VALUE_SETS[name])
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # CRD-defined kinds have no upstream schema
        kubernetes_validate.validate(doc, "1.30", strict=True)
        checked += 1
    assert checked >= 10


def test_cluster_mode_uses_clusterroles_without_secrets(helm_bin):
    docs = render(helm_bin)
    role = find(docs, "ClusterRole", "rel-ptlab")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources
    assert {"posttrainingruns", "comparisonstudies", "pytorchjobs", "jobs", "configmaps"} <= resources
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert not verbs & {"delete", "deletecollection", "*"}
    trainer = find(docs, "ClusterRole", "rel-ptlab-trainer")
    assert trainer["rules"] == [{"apiGroups": ["ptlab.io"], "resources": ["posttrainingruns/status"],
                                 "verbs": ["patch"]}]
    args = find(docs, "Deployment", "rel-ptlab")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["operator"]


def test_namespaced_mode_uses_roles_and_watches_the_release_namespace(helm_bin):
    docs = render(helm_bin, *VALUE_SETS["namespaced"])
    assert find(docs, "Role", "rel-ptlab")["metadata"]["namespace"] == "lab"
    assert find(docs, "RoleBinding", "rel-ptlab-trainer")["subjects"][0]["name"] == "ptlab-trainer"
    assert not [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "rel-ptlab"]
    container = find(docs, "Deployment", "rel-ptlab")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator", "--namespace=lab"]


def test_deployment_paths(helm_bin):
    docs = render(helm_bin, *VALUE_SETS["monitoring"])
    pod = find(docs, "Deployment", "rel-ptlab")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["image"] == env["PTLAB_OPERATOR_IMAGE"] == "ghcr.io/ptlab/ptlab:1.2.3"
    assert env["PTLAB_OPERATOR_MLFLOW_URI"] == "http://mlflow:5000"
    assert pod["serviceAccountName"] == "rel-ptlab"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert find(docs, "ServiceMonitor", "rel-ptlab")["spec"]["endpoints"][0]["port"] == "metrics"
    pm = find(docs, "PodMonitor", "rel-ptlab-trainers")
    assert pm["spec"]["selector"]["matchExpressions"] == [{"key": "ptlab.io/run", "operator": "Exists"}]
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert crds == {"posttrainingruns.ptlab.io", "comparisonstudies.ptlab.io"}


def test_operator_env_names_are_operator_settings(helm_bin):
    from dataclasses import fields

    from ptlab.operator.config import ENV_PREFIX, OperatorConfig

    container = find(render(helm_bin), "Deployment", "rel-ptlab")["spec"]["template"]["spec"]["containers"][0]
    known = {ENV_PREFIX + f.name.upper() for f in fields(OperatorConfig)}
    ours = {e["name"] for e in container["env"] if e["name"].startswith(ENV_PREFIX)}
    assert ours and ours <= known


def test_every_values_key_is_documented():
    """Every key has a `# --` comment, except section headers and keys inside a documented
    value (e.g. the requests/limits inside a documented `resources`)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of enclosing keys
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z]\w*):(.*)$", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = i > 0 and lines[i - 1].strip().startswith("# --")
        inside_documented = any(doc for _, doc in stack)
        header = m.group(3).strip() == "" and not documented
        assert documented or inside_documented or header, f"values.yaml:{i + 1} {line.strip()}"
        stack.append((indent, documented))


def test_values_schema_is_closed_and_rejects_typos(helm_bin):
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, sub in node["properties"].items():
                walk(sub, f"{path}.{key}")

    walk(schema, "values")
    bad = subprocess.run([str(helm_bin), "template", "rel", str(CHART), "--set", "operator.namespacd=true"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "namespacd" in bad.stderr


def checkov_bin() -> str | None:
    return os.environ.get("CHECKOV") or shutil.which("checkov") or next(
        (str(p) for p in [ROOT / ".venv-checkov" / "bin" / "checkov"] if p.exists()), None)


# Findings accepted on purpose, each with the reason (everything else, and any HIGH, fails).
ACCEPTED = {
    "CKV_K8S_14": "image tag is the chart appVersion, not a digest: users pin by tag",
    "CKV_K8S_43": "image digest: same as above",
    "CKV_K8S_35": "no Secrets at all: nothing to mount as files",
    "CKV_K8S_21": "the default namespace is set by helm --namespace at install time",
    "CKV_K8S_40": "UID 10001 is high, checkov wants >10000 via a different field path",
    "CKV_K8S_38": "the operator needs its service-account token to call the API",
    "CKV2_K8S_6": "NetworkPolicy is cluster-specific and left to the installer",
    "CKV_K8S_15": "pull policy is configurable; IfNotPresent with pinned tags",
}


@pytest.mark.slow
def test_checkov_on_rendered_chart(helm_bin, tmp_path):
    binary = checkov_bin()
    if binary is None:
        pytest.skip("checkov is not installed (CI: python -m venv .venv-checkov && .venv-checkov/bin/pip install checkov)")
    for name, sets in VALUE_SETS.items():
        out = tmp_path / f"{name}.yaml"
        out.write_text(yaml.safe_dump_all(
            [d for d in render(helm_bin, *sets) if d["kind"] != "CustomResourceDefinition"]))
    result = subprocess.run([binary, "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json",
                             "--quiet", "--compact"], capture_output=True, text=True)
    report = json.loads(result.stdout or "{}")
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    unexplained = sorted({(c["check_id"], c.get("severity")) for c in failed if c["check_id"] not in ACCEPTED})
    assert unexplained == [], unexplained
