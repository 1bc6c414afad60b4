"""Generated CRDs: current, structural, and rejecting what the models reject (schema + CEL)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ptlab.api.crd import build_crd, stale_crds
from ptlab.api.models import KINDS
from tests.support.admission import admission_errors

ROOT = Path(__file__).resolve().parents[2]

RUN: dict[str, Any] = {
    "apiVersion": "ptlab.io/v1alpha1",
    "kind": "PostTrainingRun",
    "metadata": {"name": "r1"},
    "spec": {"algorithm": {"name": "dpo"}, "model": {"name": "zoo/s1"}},
}
STUDY: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())


def mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy of ``base`` with the dotted ``path`` set to ``value`` (``[i]`` for list items)."""
    obj = copy.deepcopy(base)
    node: Any = obj
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return obj


DELETE = object()

# (case, object, field path both validators must name)
INVALID = [
    ("run: both model sources", mutate(RUN, "spec.model.path", "/m"), "spec.model"),
    ("run: no model source", mutate(RUN, "spec.model", {"dtype": "float32"}), "spec.model"),
    ("run: lr = 0", mutate(RUN, "spec.training", {"lr": 0}), "spec.training.lr"),
    ("run: two budget units", mutate(RUN, "spec.training", {"budget": {"steps": 5, "tokens": 9}}), "spec.training.budget"),
    ("run: pass_k > samples", mutate(RUN, "spec.eval", {"pass_k": [1, 4], "sampling": {"n": 2}}), "spec.eval.pass_k"),
    ("run: zero nodes", mutate(RUN, "spec.resources", {"nodes": 0}), "spec.resources.nodes"),
    ("run: zero stage 4", mutate(RUN, "spec.resources", {"deepspeed": {"zero_stage": 4}}), "spec.resources.deepspeed.zero_stage"),
    ("run: unknown dtype", mutate(RUN, "spec.model.dtype", "int4"), "spec.model.dtype"),
    ("run: file source without path", mutate(RUN, "spec.data", {"source": {"format": "gsm8k"}}), "spec.data.source"),
    ("study: duplicate scales", mutate(STUDY, "spec.scales[1].name", "s1"), "spec.scales"),
    ("study: duplicate algorithms", mutate(STUDY, "spec.algorithms[1].name", "sft"), "spec.algorithms"),
    ("study: empty algorithms", mutate(STUDY, "spec.algorithms", []), "spec.algorithms"),
    ("study: zero parallelism", mutate(STUDY, "spec.parallelism", 0), "spec.parallelism"),
    ("study: seeds count and list", mutate(STUDY, "spec.seeds", {"count": 2, "list": [1, 2]}), "spec.seeds"),
    ("study: zero seeds", mutate(STUDY, "spec.seeds", {"count": 0}), "spec.seeds.count"),
    ("study: sequential max < count", mutate(STUDY, "spec.seeds", {"count": 3, "sequential": {"max": 2}}), "spec.seeds.sequential.max"),
    ("study: alpha 1.5", mutate(STUDY, "spec.analysis.alpha", 1.5), "spec.analysis.alpha"),
    ("study: no budget", mutate(STUDY, "spec.budget", DELETE), "spec.budget"),
    ("study: empty tune grid", mutate(STUDY, "spec.algorithms[1].tune", {"beta": []}), "spec.algorithms[1].tune"),
]


def test_checked_in_crds_match_the_models() -> None:
    assert stale_crds(ROOT / "crds") == [], "run `ptlab crds generate`"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_is_structural_with_status_columns_and_short_names(kind: str) -> None:
    crd = build_crd(kind)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"
    assert {"Phase", "Progress", "Best"} <= {c["name"] for c in version["additionalPrinterColumns"]}
    assert crd["spec"]["names"]["shortNames"] == (["ptr"] if kind == "PostTrainingRun" else ["pts"])

    def walk(node: dict[str, Any], path: str) -> None:
        assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(version["schema"]["openAPIV3Schema"], kind)


@pytest.mark.parametrize("obj", [RUN, STUDY, *(yaml.safe_load(p.read_text()) for p in sorted((ROOT / "examples").glob("*.yaml")))])
def test_valid_objects_are_admitted(obj: dict[str, Any]) -> None:
    assert admission_errors(obj) == []


@pytest.mark.parametrize(("case", "obj", "field"), INVALID, ids=[c for c, _, _ in INVALID])
def test_models_and_crd_reject_the_same_objects_naming_the_field(case: str, obj: dict[str, Any], field: str) -> None:
    errors = admission_errors(obj)
    assert errors, f"{case}: admitted by the CRD"
    assert any(e.startswith(field) for e in errors), errors
    with pytest.raises(ValidationError) as info:
        KINDS[obj["kind"]].model_validate(obj)
    # A model-level validator reports at the object (e.g. spec.eval); its message then names the field.
    leaf = field.rsplit(".", 1)[-1].split("[")[0]
    named = [
        (loc, e["msg"])
        for e in info.value.errors()
        for loc in [".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"]).replace(".[", "[")]
        if loc.startswith(field) or (field.startswith(loc) and leaf in e["msg"])
    ]
    assert named, info.value.errors()


async def test_real_api_server_rejects_invalid_objects(k8s_api) -> None:
    """With KUBEBUILDER_ASSETS the real kube-apiserver enforces schema + CEL; kmock validates nothing."""
    if k8s_api.kind != "envtest":
        pytest.skip("kmock does not validate; set KUBEBUILDER_ASSETS to run against kube-apiserver")
    await k8s_api.install_crds()
    for case, obj, field in INVALID:
        status, body = await k8s_api.create(copy.deepcopy(obj))
        assert status == 422, f"{case}: {status} {body}"
        assert field.removeprefix("spec.").split(".")[0].split("[")[0] in body["message"], body["message"]
    status, body = await k8s_api.create(copy.deepcopy(STUDY))
    assert status == 201, body
