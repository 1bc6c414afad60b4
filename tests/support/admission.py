"""What the API server's admission would say about an object, without an API server.

kmock validates nothing, so tests check objects against the generated CRD the way
kube-apiserver does: prune nulls, apply structural defaults, validate the openAPIV3Schema
(OpenAPI 3.0 = JSON Schema draft 4 semantics for exclusive bounds) with ``jsonschema``,
then evaluate every ``x-kubernetes-validations`` CEL rule with a Python CEL runtime
(cel-python). Returns messages naming the field, like the server's.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    """openAPIV3Schema of the generated CRD for ``kind``."""
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting: fill missing properties that declare a default, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _cel_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        ok = program.evaluate({"self": celpy.json_to_cel(value)})
        if not bool(ok):
            where = path + rule.get("fieldPath", "")
            errors.append(f"{where}: Invalid value: {rule['message']}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += _cel_errors(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += _cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def _schema_error(err: jsonschema.ValidationError) -> str:
    """Render like kube-apiserver: ``spec.budget: Required value`` names the missing field."""
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path).replace(".[", "[")
    if err.validator == "required":
        missing = err.message.split("'")[1]
        return f"{path}.{missing}: Required value" if path else f"{missing}: Required value"
    return f"{path}: {err.message}"


def admission_errors(obj: dict[str, Any]) -> list[str]:
    """Errors the API server would return when creating ``obj`` (empty = admitted)."""
    schema = crd_schema(obj["kind"])
    value = apply_defaults(schema, _prune_nulls(copy.deepcopy(obj)))
    validator = jsonschema.Draft4Validator(schema)
    errors = [_schema_error(e) for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))]
    if errors:  # like the server: CEL runs only on a schema-valid object
        return errors
    return [e.removeprefix(".") for e in _cel_errors(schema, value, "")]
