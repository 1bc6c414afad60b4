"""Read ptlab objects from (multi-document) YAML/JSON files with one-line errors.

Every problem becomes ``file:doc: field.path: message (hint)`` so a user can fix it without
reading code; nothing here prints a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ptlab.api.models import API_VERSION, KINDS, ComparisonStudy, Model, PostTrainingRun
from ptlab.errors import UserError, one_line

MAX_BYTES = 16 * 1024 * 1024
# libyaml's safe loader when built in (5x faster on a spec), else PyYAML's own.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Problem:
    """One validation problem of one document."""

    file: str
    doc: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.doc}" if self.doc else self.file
        field = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return one_line(f"{where}: {field}{self.message}{hint}")


@dataclass(frozen=True)
class Outcome:
    """Validation result of one document: the parsed object or its problems."""

    file: str
    doc: int
    obj: Model | None
    problems: tuple[Problem, ...] = ()


def read_text(path: Path) -> str:
    """File text, or a UserError for missing, huge, binary or non-UTF-8 files."""
    if not path.exists():
        raise UserError(f"{path}: no such file", "check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a directory", "pass a YAML file")
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise UserError(f"{path}: file is larger than 16 MiB", "pass a ptlab YAML spec")
    if b"\x00" in data:
        raise UserError(f"{path}: binary file, not YAML", "pass a ptlab YAML spec")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not UTF-8 text (byte {err.start})", "save the file as UTF-8 YAML"
        ) from None


def load_documents(path: Path) -> list[tuple[int, Any]]:
    """Non-empty YAML documents of a file as ``(1-based index, data)``; JSON is YAML too."""
    text = read_text(path)
    docs: list[tuple[int, Any]] = []
    try:
        for index, data in enumerate(yaml.load_all(text, Loader=_LOADER), start=1):
            if data is not None:
                docs.append((index, data))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(
            f"{path}:{len(docs) + 1}: YAML syntax error{where}: {problem}",
            "fix the YAML syntax",
        ) from None
    except RecursionError:
        raise UserError(
            f"{path}:{len(docs) + 1}: YAML nested too deeply", "a ptlab spec nests a few levels"
        ) from None
    if not docs:
        raise UserError(
            f"{path}: no YAML documents (the file is empty)",
            "add a PostTrainingRun or ComparisonStudy",
        )
    return docs


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Valid field names of the model reached by following ``loc`` (for unknown-field hints)."""
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            field = next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        model = _model_of(field.annotation)
    return sorted((f.alias or n) for n, f in model.model_fields.items()) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _hint(kind: str, err: dict[str, Any], model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        return f"remove it or fix the spelling; valid: {', '.join(valid)}" if valid else "remove it"
    if kind == "missing":
        return "add this required field"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "change the value to fit the range"
    if kind == "too_short":
        return "add at least one entry"
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type", "bool_parsing"):
        return "use a number" if "bool" not in kind else "use true or false"
    if kind == "literal_error":
        return "use one of the listed values"
    return ""


def _field_path(loc: tuple[Any, ...]) -> str:
    """``spec.algorithms[0].params['odd key']``: keys that are not plain names are quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int) or not _PLAIN_KEY.match(str(part)):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from(err: ValidationError, file: str, doc: int, model: type[BaseModel]) -> list[Problem]:
    """One Problem per pydantic error, with the field path and a fix hint."""
    out = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        message = str(e["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if e["type"] == "extra_forbidden":
            message = "unknown field"
        elif e["type"] == "missing":
            message = "field required"
        out.append(Problem(file, doc, _field_path(loc), message, _hint(e["type"], e, model, loc)))
    return out


def parse_object(data: Any, *, file: str = "<input>", doc: int = 1) -> Outcome:
    """Validate one document as a ptlab object (kind chosen by its ``kind`` field)."""
    if not isinstance(data, dict):
        got = type(data).__name__
        return Outcome(file, doc, None, (Problem(file, doc, "", f"document is a {got}", "expected a mapping with apiVersion, kind, metadata, spec"),))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        message = "missing" if kind is None else f"{kind!r} is not a ptlab kind"
        return Outcome(file, doc, None, (Problem(file, doc, "kind", message, f"use one of {', '.join(KINDS)}"),))
    if data.get("apiVersion") != API_VERSION:
        got = data.get("apiVersion")
        return Outcome(file, doc, None, (Problem(file, doc, "apiVersion", f"{got!r} is not supported", f"use {API_VERSION}"),))
    model = KINDS[kind]
    try:
        return Outcome(file, doc, model.model_validate(data))
    except ValidationError as err:
        return Outcome(file, doc, None, tuple(problems_from(err, file, doc, model)))


def validate_file(path: Path) -> list[Outcome]:
    """Outcomes for every document of a file (file-level problems raise UserError)."""
    return [parse_object(data, file=str(path), doc=i) for i, data in load_documents(path)]


def load_one(path: Path, kind: type[Model]) -> Model:
    """The single object of ``kind`` in ``path``; the first problem raises UserError."""
    outcomes = validate_file(path)
    for outcome in outcomes:
        if outcome.problems:
            raise UserError(str(outcome.problems[0]))
    objs = [o.obj for o in outcomes if isinstance(o.obj, kind)]
    if len(objs) != 1:
        raise UserError(
            f"{path}: expected exactly one {kind.__name__}, found {len(objs)}",
            "put one object per file",
        )
    return objs[0]


def load_study(path: Path) -> ComparisonStudy:
    """Read a ComparisonStudy file (one-line UserError on any problem)."""
    study = load_one(path, ComparisonStudy)
    assert isinstance(study, ComparisonStudy)
    return study


def load_run(path: Path) -> PostTrainingRun:
    """Read a PostTrainingRun from YAML/JSON: a full object or a bare spec."""
    docs = load_documents(path)
    if len(docs) == 1 and isinstance(docs[0][1], dict) and "kind" not in docs[0][1]:
        wrapped = {"apiVersion": API_VERSION, "kind": "PostTrainingRun", "metadata": {"name": path.stem.lower().replace("_", "-") or "run"}, "spec": docs[0][1]}
        outcome = parse_object(wrapped, file=str(path), doc=1)
        if outcome.problems:
            raise UserError(str(outcome.problems[0]))
        assert isinstance(outcome.obj, PostTrainingRun)
        return outcome.obj
    run = load_one(path, PostTrainingRun)
    assert isinstance(run, PostTrainingRun)
    return run


def dump_json(obj: BaseModel) -> str:
    """Canonical JSON of an object (aliases, no nulls) as written to spec.json."""
    return json.dumps(obj.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2, sort_keys=True)
