"""Generate CustomResourceDefinitions from the pydantic models (``ptlab crds generate``).

Pydantic's JSON Schema (draft 2020-12) is turned into a Kubernetes *structural* OpenAPI v3
schema: ``$ref`` inlined, ``anyOf [X, null]`` → ``X`` + ``nullable``, numeric exclusive bounds
in the OpenAPI 3.0 form, free-form maps marked ``x-kubernetes-preserve-unknown-fields``,
titles dropped, CEL rules kept as ``x-kubernetes-validations``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ptlab.api.models import (
    GROUP,
    VERSION,
    ComparisonStudySpec,
    ComparisonStudyStatus,
    PostTrainingRunSpec,
    PostTrainingRunStatus,
)

KEEP = {
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "description",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "format",
}

# CEL cost estimation needs bounded strings/lists/maps; these bounds apply where the model sets none.
MAX_STRING = 1024
MAX_ITEMS = 1024
MAX_PROPERTIES = 256


def _deref(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every ``$ref`` (the models have no recursive types)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
            return _deref(merged, defs)
        return {k: _deref(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v, defs) for v in node]
    return node


def _drop_nulls(value: Any) -> Any:
    """Defaults without null members (they would be pruned by the server anyway)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Convert one JSON-Schema node to a structural OpenAPI v3 node."""
    node = dict(node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            # Optional fields are simply not required: the API server prunes nulls of
            # non-nullable fields, so `has(self.x)` in CEL is false for `x: null`.
            options = [o for o in node.pop(key) if o.get("type") != "null"]
            if len(options) == 1:
                node = {**_structural(options[0]), **{k: v for k, v in node.items() if k in KEEP}}
            else:
                # A scalar union (param values: float|int|str|bool) has no structural form.
                node = {
                    "x-kubernetes-preserve-unknown-fields": True,
                    **{k: v for k, v in node.items() if k == "description"},
                }
    if "default" in node:
        if node["default"] is None:
            node.pop("default")
        else:
            node["default"] = _drop_nulls(node["default"])
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
        node.get("exclusiveMinimum"), bool
    ):
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if isinstance(node.get("exclusiveMaximum"), int | float) and not isinstance(
        node.get("exclusiveMaximum"), bool
    ):
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True
    typ = node.get("type")
    if typ == "object":
        props = node.get("properties")
        addl = node.get("additionalProperties")
        if props is not None:
            node["properties"] = {k: _structural(v) for k, v in props.items()}
            node.pop("additionalProperties", None)
        elif isinstance(addl, dict) and addl:
            value = _structural(addl)
            if value.get("x-kubernetes-preserve-unknown-fields") and "type" not in value:
                node.pop("additionalProperties")
                node["x-kubernetes-preserve-unknown-fields"] = True
            else:
                node["additionalProperties"] = value
                node.setdefault("maxProperties", MAX_PROPERTIES)
        else:
            node.pop("additionalProperties", None)
            node["x-kubernetes-preserve-unknown-fields"] = True
    elif typ == "array":
        node["items"] = _structural(node.get("items", {}))
        node.setdefault("maxItems", MAX_ITEMS)
    elif typ == "string" and "enum" not in node:
        node.setdefault("maxLength", MAX_STRING)
    if typ is None and "x-kubernetes-preserve-unknown-fields" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    allowed = KEEP | {"maxProperties"}
    return {k: v for k, v in node.items() if k in allowed}


def openapi_schema(model: type) -> dict[str, Any]:
    """Structural OpenAPI v3 schema of a pydantic model (validation mode, by alias)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    defs = raw.pop("$defs", {})
    return _structural(_deref(raw, defs))


PRINTER_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "PostTrainingRun": [
        {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm.name"},
        {"name": "Scale", "type": "string", "jsonPath": ".spec.model.scale"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "integer", "jsonPath": ".status.progress.percent", "description": "Percent of the training budget done"},
        {"name": "Best", "type": "string", "jsonPath": ".status.score", "description": "Headline eval metric"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "ComparisonStudy": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress", "description": "Succeeded runs / total"},
        {"name": "Best", "type": "string", "jsonPath": ".status.best", "description": "Recommended algorithm(s)"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}

RESOURCES = {
    "PostTrainingRun": ("posttrainingruns", "posttrainingrun", ["ptr"], PostTrainingRunSpec, PostTrainingRunStatus),
    "ComparisonStudy": ("comparisonstudies", "comparisonstudy", ["pts"], ComparisonStudySpec, ComparisonStudyStatus),
}


def build_crd(kind: str) -> dict[str, Any]:
    """The full CRD manifest for ``kind`` (pure: models in, dict out)."""
    plural, singular, short, spec_model, status_model = RESOURCES[kind]
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(spec_model),
            "status": openapi_schema(status_model),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "ptlab"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short,
                "categories": ["ptlab"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind],
                }
            ],
        },
    }


HEADER = "# Generated by `ptlab crds generate` from ptlab/api/models.py. Do not edit.\n"


def render_crd(kind: str) -> str:
    """YAML text of the CRD (stable key order for diffs)."""
    return HEADER + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)


def crd_filename(kind: str) -> str:
    return f"{GROUP}_{RESOURCES[kind][0]}.yaml"


def write_crds(out_dir: Path) -> list[Path]:
    """Write every CRD file into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in RESOURCES:
        path = out_dir / crd_filename(kind)
        path.write_text(render_crd(kind))
        paths.append(path)
    return paths


def stale_crds(out_dir: Path) -> list[Path]:
    """CRD files in ``out_dir`` that differ from (or lack) the generated text."""
    return [
        out_dir / crd_filename(kind)
        for kind in RESOURCES
        if not (out_dir / crd_filename(kind)).exists()
        or (out_dir / crd_filename(kind)).read_text() != render_crd(kind)
    ]
