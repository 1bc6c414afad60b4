"""One registry for every post-training loss, policy loss and advantage estimator.

Each entry is a pure function ``fn(batch, params) -> LossOutput`` (or ``AdvantageOutput``
for advantage estimators) plus metadata the trainer branches on (never on the name).
Parameters are a frozen dataclass per entry whose fields carry their valid range
(see :func:`param`); :func:`resolve_params` validates user overrides against it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal[
    "sft",
    "distill",
    "reward-model",
    "paired-offline",
    "unpaired-offline",
    "reference-free",
    "online-pref",
    "online-rl",
    "advantage",
]
InputKind = Literal["single", "paired", "unpaired", "scores", "rollout", "rewards"]
Role = Literal["loss", "policy_loss", "advantage", "algorithm"]

FAMILIES: tuple[str, ...] = Family.__args__  # type: ignore[attr-defined]


class UnknownAlgorithmError(KeyError):
    """An algorithm name that is neither registered nor an alias."""

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidParamError(ValueError):
    """A parameter override that is unknown or outside its documented range."""


@dataclass(frozen=True)
class ParamRange:
    """Valid range of one parameter; ``None`` bounds are open-ended."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def check(self, name: str, value: Any) -> str | None:
        """Return an error message if ``value`` is out of range, else ``None``."""
        if self.choices is not None:
            if value not in self.choices:
                return f"{name}={value!r} is not one of {list(self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(float(value)):
            return f"{name}={value!r} must be finite"
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            op = ">" if self.min_exclusive else ">="
            return f"{name}={value!r} must be {op} {self.min}"
        if self.max is not None and (value >= self.max if self.max_exclusive else value > self.max):
            op = "<" if self.max_exclusive else "<="
            return f"{name}={value!r} must be {op} {self.max}"
        return None


def param(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field carrying its valid range, e.g. ``beta: float = param(0.1, gt=0)``."""
    rng = ParamRange(
        min=gt if gt is not None else ge,
        max=lt if lt is not None else le,
        min_exclusive=gt is not None,
        max_exclusive=lt is not None,
        choices=choices,
        doc=doc,
    )
    return field(default=default, metadata={"range": rng})


@dataclass(frozen=True)
class NoParams:
    """Parameters of an entry that has none."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """Metadata of one registry entry; the trainer reads these flags, never the name."""

    name: str
    fn: Callable[..., Any]
    family: Family
    input_kind: InputKind
    params: type
    citation: str
    formula: str
    role: Role = "loss"
    aliases: tuple[str, ...] = ()
    needs_reference: bool = False
    needs_teacher: bool = False
    needs_rollouts: bool = False
    needs_old_logps: bool = False
    needs_critic: bool = False
    trainer: Mapping[str, Any] = field(default_factory=dict)
    """Trainer requirements beyond the loss (e.g. ``{"sample_pairs": True, "judge": "verifier"}``)."""

    def param_ranges(self) -> dict[str, tuple[Any, ParamRange]]:
        """Map each parameter name to ``(default, range)``."""
        out: dict[str, tuple[Any, ParamRange]] = {}
        for f in dataclasses.fields(self.params):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out[f.name] = (default, f.metadata.get("range", ParamRange()))
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-ready description used by ``ptlab algorithms list --json``."""
        params = {
            name: {
                "default": default,
                "min": rng.min,
                "max": rng.max,
                **({"choices": list(rng.choices)} if rng.choices is not None else {}),
            }
            for name, (default, rng) in self.param_ranges().items()
        }
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "family": self.family,
            "role": self.role,
            "input_kind": self.input_kind,
            "needs_reference": self.needs_reference,
            "needs_teacher": self.needs_teacher,
            "needs_rollouts": self.needs_rollouts,
            "params": params,
            "citation": self.citation,
            "formula": self.formula,
        }


REGISTRY: dict[str, AlgorithmSpec] = {}
ALIASES: dict[str, str] = {}


def register(
    name: str,
    *,
    family: Family,
    input_kind: InputKind,
    citation: str,
    formula: str,
    params: type = NoParams,
    role: Role = "loss",
    aliases: tuple[str, ...] = (),
    needs_reference: bool = False,
    needs_teacher: bool = False,
    needs_rollouts: bool = False,
    needs_old_logps: bool = False,
    needs_critic: bool = False,
    trainer: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` under ``name`` (and ``aliases``); duplicate names raise."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = AlgorithmSpec(
            name=name,
            fn=fn,
            family=family,
            input_kind=input_kind,
            params=params,
            citation=citation,
            formula=formula,
            role=role,
            aliases=aliases,
            needs_reference=needs_reference,
            needs_teacher=needs_teacher,
            needs_rollouts=needs_rollouts,
            needs_old_logps=needs_old_logps,
            needs_critic=needs_critic,
            trainer=dict(trainer or {}),
        )
        add(spec)
        return fn

    return wrap


def add(spec: AlgorithmSpec) -> None:
    """Register a prepared spec; names and aliases must be new."""
    for key in (spec.name, *spec.aliases):
        if key in REGISTRY or key in ALIASES:
            raise ValueError(f"algorithm name {key!r} is registered twice")
    REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        ALIASES[alias] = spec.name


def close_matches(name: str, n: int = 3) -> list[str]:
    """Registered names (or aliases) closest to ``name``."""
    return difflib.get_close_matches(name, [*REGISTRY, *ALIASES], n=n, cutoff=0.5)


def get(name: str) -> AlgorithmSpec:
    """Look an entry up by name or alias; an unknown name lists the closest matches."""
    key = ALIASES.get(name, name)
    if key in REGISTRY:
        return REGISTRY[key]
    hint = close_matches(name)
    suffix = f"did you mean {' or '.join(hint)}?" if hint else "see `ptlab algorithms list`"
    raise UnknownAlgorithmError(f"unknown algorithm {name!r} ({suffix})")


def resolve_params(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """Build the entry's Params dataclass from defaults + ``overrides``, checking every range."""
    spec = get(name)
    ranges = spec.param_ranges()
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(ranges))
    if unknown:
        valid = ", ".join(sorted(ranges)) or "none"
        raise InvalidParamError(f"{spec.name}: unknown parameter {unknown[0]!r} (valid: {valid})")
    for key, value in overrides.items():
        default, rng = ranges[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise InvalidParamError(f"{spec.name}: {key}={value!r} must be true or false")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParamError(f"{spec.name}: {key}={value!r} must be a number")
            if isinstance(default, float):
                overrides[key] = float(value)
        message = rng.check(key, value)
        if message:
            raise InvalidParamError(f"{spec.name}: {message}")
    return spec.params(**overrides)


def entries(*, family: str | None = None, role: str | None = None) -> list[AlgorithmSpec]:
    """Registered entries (aliases excluded), sorted by family then name."""
    selected = [
        s
        for s in REGISTRY.values()
        if (family is None or s.family == family) and (role is None or s.role == role)
    ]
    return sorted(selected, key=lambda s: (FAMILIES.index(s.family), s.name))
