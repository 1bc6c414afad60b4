"""Plan a ComparisonStudy: expand it into fully resolved, content-hashed training runs.

Pure (spec in, plan out; no I/O, no torch), so the local executor and the Kubernetes operator
share it. A study runs in up to two phases:

1. **tune** — for every (algorithm, scale, domain), the same number of trials from the
   algorithm's ``tune`` grid, each with ``tune.budget_fraction`` of the training budget and
   evaluated on the *validation* split (``eval.split: validation``), first seed only;
2. **final** — every algorithm with its chosen config (best mean validation metric of its
   trials) × seeds, full budget, evaluated on the eval split.

Final runs of a group appear once all its trials have an observed score, so callers loop:
run what the plan lists → collect validation scores → plan again. Sequential seeds work the
same way: :func:`extend_seeds` turns the analysis' recommendations into more seeds for
unresolved (scale, domain) cells, and the next :func:`plan_study` call lists those runs.
Every fairness decision is recorded in :attr:`StudyPlan.decisions`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ptlab.api.hashing import canonical_json, content_hash
from ptlab.api.models import (
    API_VERSION,
    AlgorithmRef,
    Budget,
    ComparisonStudy,
    DataSpec,
    ModelSpec,
    ParamValue,
    PostTrainingRunSpec,
    StudyAlgorithm,
    TrainingSpec,
)

RunPhase = Literal["tune", "final"]
Cell = tuple[str, str]
"""A (scale, domain) cell of the study."""

NAME_MAX = 63
"""Run names are DNS labels (they become PostTrainingRun, Job and Pod names)."""

HASH_EXCLUDE = frozenset({"study", "tracking"})
"""Spec fields that cannot change a run's outcome, so they are not part of its hash."""
HASH_KEYS = tuple(sorted(set(PostTrainingRunSpec.model_fields) - HASH_EXCLUDE))


@dataclass(frozen=True)
class PlannedRun:
    """One fully resolved training run of the study."""

    name: str
    spec_hash: str
    phase: RunPhase
    algorithm: str
    scale: str
    domain: str
    seed: int
    params: Mapping[str, ParamValue]
    params_hash: str
    trial: int | None
    parts: Mapping[str, Any] = field(repr=False, compare=False)
    """The spec's fields (shared, pre-validated objects); :attr:`spec` is built on first use."""

    @functools.cached_property
    def spec(self) -> PostTrainingRunSpec:
        """The fully resolved run spec."""
        return PostTrainingRunSpec.model_construct(**self.parts)

    @property
    def cell(self) -> Cell:
        return (self.scale, self.domain)

    def labels(self, study: str) -> dict[str, str]:
        """Kubernetes labels (also MLflow tags) identifying this run."""
        return {
            "ptlab.io/study": label_value(study),
            "ptlab.io/algorithm": label_value(self.algorithm),
            "ptlab.io/scale": label_value(self.scale),
            "ptlab.io/domain": label_value(self.domain),
            "ptlab.io/seed": str(self.seed),
            "ptlab.io/phase": self.phase,
            "ptlab.io/spec-hash": self.spec_hash,
        }

    def manifest(self, study: str, namespace: str | None = None) -> dict[str, Any]:
        """The PostTrainingRun object (plain dict) for this run."""
        metadata: dict[str, Any] = {"name": self.name, "labels": self.labels(study)}
        if namespace:
            metadata["namespace"] = namespace
        return {
            "apiVersion": API_VERSION,
            "kind": "PostTrainingRun",
            "metadata": metadata,
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    def summary(self) -> dict[str, Any]:
        """Small JSON record (no spec) for plan files and status."""
        return {
            "name": self.name,
            "spec_hash": self.spec_hash,
            "phase": self.phase,
            "algorithm": self.algorithm,
            "scale": self.scale,
            "domain": self.domain,
            "seed": self.seed,
            "trial": self.trial,
            "params": dict(self.params),
            "params_hash": self.params_hash,
        }


@dataclass(frozen=True)
class Decision:
    """A recorded planning decision: what was decided, for whom, and why."""

    kind: str
    subject: str
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail, "data": dict(self.data)}


@dataclass(frozen=True)
class Cost:
    """Estimated size of the study (train tokens are an upper bound for step budgets)."""

    runs: int
    tune_runs: int
    final_runs: int
    max_runs: int
    train_tokens: float
    flops: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Observations:
    """What the caller knows so far.

    Attributes:
        scores: spec hash of a finished tuning run → its validation metric (None = failed).
        seeds: seeds per (scale, domain) cell after sequential extension; default = initial.
    """

    scores: Mapping[str, float | None] = field(default_factory=dict)
    seeds: Mapping[Cell, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyPlan:
    """The runs of a study known so far, the decisions behind them, and their cost."""

    study: str
    runs: tuple[PlannedRun, ...]
    decisions: tuple[Decision, ...]
    cost: Cost
    waiting: tuple[str, ...]
    """Groups whose final runs wait on tuning scores (empty once every final run is listed)."""

    @property
    def complete(self) -> bool:
        """True when no further run can appear without sequential seeds."""
        return not self.waiting

    def by_name(self) -> dict[str, PlannedRun]:
        return {run.name: run for run in self.runs}

    def phase(self, phase: RunPhase) -> list[PlannedRun]:
        return [run for run in self.runs if run.phase == phase]

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "complete": self.complete,
            "waiting": list(self.waiting),
            "cost": self.cost.to_json(),
            "decisions": [d.to_json() for d in self.decisions],
            "runs": [run.summary() for run in self.runs],
        }


# --------------------------------------------------------------------------- naming & hashing


def label_value(text: str) -> str:
    """A valid Kubernetes label value (≤63 of [A-Za-z0-9._-], alphanumeric ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return value.strip("-._")


@functools.lru_cache(maxsize=4096)
def dns_part(text: str) -> str:
    """Lower-case DNS-label fragment of ``text`` ("0.5B" → "0-5b")."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")


def run_name(study: str, algorithm: str, scale: str, domain: str, tag: str, spec_hash: str) -> str:
    """Deterministic DNS-label name: readable prefix, then 8 hash chars that make it unique."""
    prefix = "-".join(p for p in map(dns_part, (study, algorithm, scale, domain, tag)) if p)
    prefix = prefix[: NAME_MAX - 9].rstrip("-")
    return f"{prefix}-{spec_hash[:8]}" if prefix else f"run-{spec_hash[:8]}"


def run_hash(spec: PostTrainingRunSpec | Mapping[str, Any]) -> str:
    """Content hash of a run spec, ignoring fields that cannot change its outcome."""
    data = spec.model_dump(mode="json", by_alias=True) if isinstance(spec, PostTrainingRunSpec) else dict(spec)
    return content_hash({k: v for k, v in data.items() if k not in HASH_EXCLUDE})


# --------------------------------------------------------------------------- tuning grid


def grid_size(tune: Mapping[str, Sequence[ParamValue]]) -> int:
    """Number of configurations in a tuning grid (1 when there is nothing to tune)."""
    return math.prod(len(values) for values in tune.values())


def grid_config(tune: Mapping[str, Sequence[ParamValue]], index: int) -> dict[str, ParamValue]:
    """The ``index``-th grid configuration (row-major over sorted keys, last key fastest)."""
    config: dict[str, ParamValue] = {}
    for key in sorted(tune, reverse=True):
        values = tune[key]
        index, pos = divmod(index, len(values))
        config[key] = values[pos]
    return dict(sorted(config.items()))


def tuning_configs(
    study: str, algorithm: StudyAlgorithm, trials: int
) -> list[dict[str, ParamValue]]:
    """``trials`` configs of the algorithm's grid: the whole grid, or a seeded random subset.

    The subset is drawn without replacement with a RNG seeded by (study, algorithm), so the
    plan is reproducible; configs keep grid order.
    """
    size = grid_size(algorithm.tune)
    if trials >= size:
        indices: Iterable[int] = range(size)
    else:
        rng = random.Random(f"{study}/{algorithm.name}")
        indices = sorted(rng.sample(range(size), trials))
    return [{**algorithm.params, **grid_config(algorithm.tune, i)} for i in indices]


def tuning_trials(study: ComparisonStudy) -> int:
    """Trials per algorithm: ``tune.trials``, else the size of the largest grid (0 = no tuning)."""
    sizes = [grid_size(a.tune) for a in study.spec.algorithms if a.tune]
    if not sizes:
        return 0
    return study.spec.tune.trials or max(sizes)


def scaled_budget(budget: Budget, fraction: float) -> Budget:
    """``fraction`` of a budget in the same unit (steps/tokens rounded up, at least 1)."""
    if fraction == 1.0:
        return budget
    if budget.steps is not None:
        return Budget(steps=max(1, math.ceil(budget.steps * fraction)))
    if budget.tokens is not None:
        return Budget(tokens=max(1, math.ceil(budget.tokens * fraction)))
    return Budget(flops=float(budget.flops or 0.0) * fraction)


def choose_config(
    trials: Sequence[PlannedRun], scores: Mapping[str, float | None]
) -> tuple[PlannedRun | None, bool]:
    """Best trial by validation metric (higher is better, ties → first trial).

    Returns ``(best, ready)``: ``ready`` is False while a trial has no observed score;
    ``best`` is None when every trial failed (or scored NaN).
    """
    if any(t.spec_hash not in scores for t in trials):
        return None, False
    valid = [(s, -i, t) for i, t in enumerate(trials) if (s := scores[t.spec_hash]) is not None and s == s]
    return (max(valid, key=lambda v: (v[0], v[1]))[2] if valid else None), True


# --------------------------------------------------------------------------- planning


@dataclass
class _Builder:
    """Assembles run specs from pre-validated parts (fast: no per-run validation)."""

    study: ComparisonStudy
    runs: list[PlannedRun] = field(default_factory=list)
    _refs: dict[str, AlgorithmRef] = field(default_factory=dict)
    _models: dict[str, ModelSpec] = field(default_factory=dict)
    _data: dict[str, DataSpec] = field(default_factory=dict)
    _training: dict[tuple[str, int], TrainingSpec] = field(default_factory=dict)
    _evals: dict[str, Any] = field(default_factory=dict)
    _fragments: dict[int, tuple[Any, str]] = field(default_factory=dict)
    _params_hashes: dict[str, str] = field(default_factory=dict)

    def fragment(self, part: Any) -> str:
        """Canonical JSON of a (cached, shared) spec part, computed once per part."""
        hit = self._fragments.get(id(part))
        if hit is None:
            hit = (part, canonical_json(part) if part is not None else "null")
            self._fragments[id(part)] = hit  # keeps ``part`` alive, so its id stays unique
        return hit[1]

    def spec_hash(self, parts: Mapping[str, Any]) -> str:
        """:func:`run_hash` of the spec made of ``parts``, from the parts' canonical JSON.

        Canonical JSON of a mapping is ``{"k":v,...}`` in sorted key order, so joining the
        parts' canonical texts gives exactly ``canonical_json`` of the whole spec.
        """
        body = ",".join(f'"{k}":{self.fragment(parts[k])}' for k in HASH_KEYS)
        return hashlib.sha256(("{" + body + "}").encode()).hexdigest()[:16]

    def algorithm(self, name: str, params: Mapping[str, ParamValue]) -> tuple[AlgorithmRef, str]:
        """Validated AlgorithmRef and params hash of a config (once per config)."""
        key = repr((name, sorted(params.items())))
        if key not in self._refs:
            ref = AlgorithmRef(name=name, params=dict(params))
            self._refs[key] = ref
            self._params_hashes[key] = content_hash([name, params], length=12)
        return self._refs[key], self._params_hashes[key]

    def model(self, scale: str) -> ModelSpec:
        if scale not in self._models:
            spec = next(s for s in self.study.spec.scales if s.name == scale)
            self._models[scale] = spec.model.model_copy(update={"scale": spec.model.scale or scale})
        return self._models[scale]

    def data(self, domain: str) -> DataSpec:
        if domain not in self._data:
            template = self.study.spec.template.data
            source = self.study.spec.datasets.get(domain, template.source)
            self._data[domain] = template.model_copy(update={"domain": domain, "source": source})
        return self._data[domain]

    def training(self, phase: RunPhase, seed: int) -> TrainingSpec:
        key = (phase, seed)
        if key not in self._training:
            fraction = self.study.spec.tune.budget_fraction if phase == "tune" else 1.0
            budget = scaled_budget(self.study.spec.budget, fraction)
            self._training[key] = self.study.spec.template.training.model_copy(
                update={"budget": budget, "seed": seed}
            )
        return self._training[key]

    def eval(self, phase: RunPhase) -> Any:
        if phase not in self._evals:
            split = "validation" if phase == "tune" else "eval"
            self._evals[phase] = self.study.spec.template.eval.model_copy(update={"split": split})
        return self._evals[phase]

    def add(
        self,
        phase: RunPhase,
        algorithm: str,
        params: Mapping[str, ParamValue],
        cell: Cell,
        seed: int,
        trial: int | None,
    ) -> PlannedRun:
        scale, domain = cell
        template = self.study.spec.template
        ref, params_hash = self.algorithm(algorithm, params)
        parts = {
            "algorithm": ref,
            "model": self.model(scale),
            "reference": template.reference,
            "data": self.data(domain),
            "training": self.training(phase, seed),
            "rollout": template.rollout,
            "eval": self.eval(phase),
            "resources": template.resources,
        }
        spec_hash = self.spec_hash(parts)
        tag = f"t{trial}" if trial is not None else f"s{seed}"
        run = PlannedRun(
            name=run_name(self.study.metadata.name, algorithm, scale, domain, tag, spec_hash),
            spec_hash=spec_hash,
            phase=phase,
            algorithm=algorithm,
            scale=scale,
            domain=domain,
            seed=seed,
            params=dict(params),
            params_hash=params_hash,
            trial=trial,
            parts={**parts, "tracking": template.tracking, "study": self.study.metadata.name},
        )
        self.runs.append(run)
        return run


def study_seeds(study: ComparisonStudy, count: int) -> list[int]:
    """The first ``count`` seeds: the initial ones, then consecutive integers after them."""
    initial = study.spec.seeds.values()
    extra = count - len(initial)
    start = max(initial) + 1
    return initial[:count] + list(range(start, start + max(0, extra)))


def max_seeds(study: ComparisonStudy) -> int:
    """Most seeds a cell can get (the initial count, or ``sequential.max``)."""
    initial = len(study.spec.seeds.values())
    seq = study.spec.seeds.sequential
    return max(initial, seq.max) if seq else initial


def fairness_decisions(study: ComparisonStudy, trials: int) -> list[Decision]:
    """The study-wide fairness guarantees, as recorded decisions."""
    spec = study.spec
    unit, amount = next((k, v) for k, v in spec.budget.model_dump().items() if v is not None)
    data = spec.template.data
    decisions = [
        Decision(
            "budget",
            "all algorithms",
            f"every run trains for {amount:g} {unit}"
            + (" (online RL counts generated tokens too)" if unit != "steps" else ""),
            {"unit": unit, "amount": amount, "template_budget_ignored": True},
        ),
        Decision(
            "data",
            "all algorithms",
            "same domain data per cell: identical data spec (source, sizes, difficulty, pairs)",
            {"train_size": data.train_size, "validation_size": data.validation_size,
             "difficulty": data.difficulty, "pairs": data.pairs,
             "datasets": sorted(spec.datasets)},
        ),
        Decision(
            "eval",
            "all algorithms",
            f"final runs are evaluated on the same {spec.template.eval.items} eval items per "
            "domain; tuning never sees the eval split",
            {"items": spec.template.eval.items, "pass_k": spec.template.eval.pass_k},
        ),
        Decision(
            "seeds",
            "all algorithms",
            f"every algorithm runs the same seeds {spec.seeds.values()} in every cell"
            + (f"; sequential up to {max_seeds(study)} where unresolved" if spec.seeds.sequential else ""),
            {"initial": spec.seeds.values(), "max": max_seeds(study)},
        ),
    ]
    if trials:
        decisions.append(
            Decision(
                "tuning",
                "all algorithms",
                f"{trials} tuning trial(s) per algorithm and cell at "
                f"{spec.tune.budget_fraction:g}× budget, scored on the validation split; "
                "the best mean validation metric is the config every seed runs",
                {"trials": trials, "budget_fraction": spec.tune.budget_fraction,
                 "split": "validation", "metric": spec.analysis.metric,
                 "selection": "max validation metric, ties → first trial in grid order"},
            )
        )
        for alg in spec.algorithms:
            size = grid_size(alg.tune) if alg.tune else 0
            if size < trials:
                decisions.append(
                    Decision(
                        "tuning-unequal",
                        alg.name,
                        (f"grid of {alg.name} has only {size} config(s) < {trials} trials: "
                         "it gets fewer tuning runs (add values to its tune grid to equalise)")
                        if size else
                        (f"{alg.name} has no tune grid: it runs its given params untuned while "
                         f"others get {trials} trials (add a tune grid to equalise)"),
                        {"grid_size": size, "trials": trials},
                    )
                )
    return decisions


def parse_param_count(label: str | None) -> float | None:
    """Parameters from a scale label such as "0.5B", "16M" or "Qwen2.5-7B" (None if absent)."""
    if not label:
        return None
    found = re.findall(r"(\d+(?:\.\d+)?)\s*([KkMmBbTt])(?![A-Za-z])", label)
    if not found:
        return None
    number, unit = found[-1]
    return float(number) * {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[unit.lower()]


def run_tokens(spec: PostTrainingRunSpec) -> float:
    """Upper bound of tokens one run processes (every sequence at ``max_len``)."""
    t = spec.training
    if t.budget.tokens is not None:
        return float(t.budget.tokens)
    per_step = t.batch_size * t.grad_accum * t.max_len
    if t.budget.steps is not None:
        return float(t.budget.steps * per_step)
    params = parse_param_count(spec.model.scale) or parse_param_count(spec.model.name)
    return float(t.budget.flops or 0) / (6 * params) if params else 0.0


def estimate_cost(study: ComparisonStudy, runs: Sequence[PlannedRun], max_runs: int) -> Cost:
    """Tokens and FLOPs (6·N·tokens, when the scale label gives N) of ``runs``."""
    tokens = 0.0
    flops: float | None = 0.0
    cache: dict[tuple[str, str], tuple[float, float | None]] = {}
    for run in runs:
        key = (run.scale, run.phase)
        if key not in cache:
            n = parse_param_count(run.spec.model.scale) or parse_param_count(run.spec.model.name)
            tok = run_tokens(run.spec)
            budget_flops = run.spec.training.budget.flops
            cache[key] = (tok, budget_flops if budget_flops else (6 * n * tok if n else None))
        tok, fl = cache[key]
        tokens += tok
        flops = None if flops is None or fl is None else flops + fl
    tune = sum(r.phase == "tune" for r in runs)
    return Cost(len(runs), tune, len(runs) - tune, max_runs, tokens, flops)


def plan_study(study: ComparisonStudy, observed: Observations | None = None) -> StudyPlan:
    """Expand a study into runs: tuning trials, then final seeds of the chosen configs.

    Args:
        study: a validated ComparisonStudy.
        observed: validation scores of finished tuning runs and sequential seed counts.
    """
    observed = observed or Observations()
    spec = study.spec
    name = study.metadata.name
    trials = tuning_trials(study)
    builder = _Builder(study)
    decisions = fairness_decisions(study, trials)
    waiting: list[str] = []
    cells = [(s.name, d) for s in spec.scales for d in spec.domains]
    initial = len(spec.seeds.values())
    first_seed = spec.seeds.values()[0]

    for alg in spec.algorithms:
        configs = tuning_configs(name, alg, trials) if alg.tune and trials else []
        for cell in cells:
            params: Mapping[str, ParamValue] = alg.params
            if configs:
                group = [builder.add("tune", alg.name, c, cell, first_seed, i) for i, c in enumerate(configs)]
                best, ready = choose_config(group, observed.scores)
                subject = f"{alg.name}@{cell[0]}/{cell[1]}"
                if not ready:
                    waiting.append(subject)
                    continue
                if best is None:
                    decisions.append(Decision("tuning-choice", subject, "every tuning trial failed; final runs use the untuned params", {"params": dict(alg.params)}))
                else:
                    params = best.params
                    decisions.append(
                        Decision(
                            "tuning-choice",
                            subject,
                            f"trial {best.trial} has the best validation {spec.analysis.metric} "
                            f"{observed.scores[best.spec_hash]:.4g}",
                            {"params": dict(best.params), "run": best.name,
                             "scores": {t.name: observed.scores[t.spec_hash] for t in group}},
                        )
                    )
            count = max(initial, min(observed.seeds.get(cell, initial), max_seeds(study)))
            for seed in study_seeds(study, count):
                builder.add("final", alg.name, params, cell, seed, None)

    for cell in cells:
        count = observed.seeds.get(cell, initial)
        if count > initial:
            decisions.append(
                Decision("sequential", f"{cell[0]}/{cell[1]}",
                         f"{min(count, max_seeds(study))} seeds (sequential: added while unresolved)",
                         {"seeds": min(count, max_seeds(study)), "initial": initial})
            )
    n_algs = len(spec.algorithms)
    max_runs = len(cells) * n_algs * (max_seeds(study)) + sum(
        len(cells) * (min(trials, grid_size(a.tune)) if a.tune else 0) for a in spec.algorithms
    )
    cost = estimate_cost(study, builder.runs, max_runs)
    return StudyPlan(name, tuple(builder.runs), tuple(decisions), cost, tuple(waiting))


def unresolved_cells(recommendations: Iterable[Mapping[str, Any]]) -> set[Cell]:
    """Cells whose recommended top set holds more than one algorithm (not separable)."""
    return {
        (str(r["scale"]), str(r["domain"])) for r in recommendations if len(r.get("best") or []) > 1
    }


def extend_seeds(
    study: ComparisonStudy,
    recommendations: Iterable[Mapping[str, Any]],
    seeds: Mapping[Cell, int],
) -> tuple[dict[Cell, int], list[Decision]]:
    """One sequential round: one more seed for every unresolved cell below ``sequential.max``.

    Returns the new seed counts per cell and a decision per cell explaining it; the counts
    are unchanged (and no decision made) when seeds are not sequential.
    """
    out = {(s.name, d): seeds.get((s.name, d), len(study.spec.seeds.values()))
           for s in study.spec.scales for d in study.spec.domains}
    if study.spec.seeds.sequential is None:
        return out, []
    limit = max_seeds(study)
    decisions = []
    open_cells = unresolved_cells(recommendations)
    for cell, count in out.items():
        subject = f"{cell[0]}/{cell[1]}"
        if cell not in open_cells:
            decisions.append(Decision("sequential", subject, f"resolved with {count} seeds", {"seeds": count}))
        elif count >= limit:
            decisions.append(Decision("sequential", subject, f"still unresolved at the maximum of {limit} seeds", {"seeds": count}))
        else:
            out[cell] = count + 1
            decisions.append(Decision("sequential", subject, f"unresolved with {count} seeds: one more seed ({count + 1} in all)", {"seeds": count + 1}))
    return out, decisions


def group_key(run: PlannedRun) -> tuple[str, str, str]:
    """(algorithm, scale, domain) of a run."""
    return (run.algorithm, run.scale, run.domain)


def fairness_violations(plan: StudyPlan) -> list[str]:
    """Differences between final runs of one cell other than the algorithm (expected: none).

    Within a (scale, domain) cell, the specs of all algorithms for one seed must be equal
    once ``algorithm`` is removed; the seeds must be the same set for every algorithm.
    """
    problems: list[str] = []
    by_cell_seed: dict[tuple[str, str, int], set[str]] = {}
    seeds_by_group: dict[tuple[str, str, str], set[int]] = {}
    for run in plan.phase("final"):
        rest = run.spec.model_dump(mode="json", exclude={"algorithm"})
        by_cell_seed.setdefault((*run.cell, run.seed), set()).add(content_hash(rest))
        seeds_by_group.setdefault(group_key(run), set()).add(run.seed)
    for key, hashes in by_cell_seed.items():
        if len(hashes) > 1:
            problems.append(f"cell {key[0]}/{key[1]} seed {key[2]}: specs differ beyond the algorithm")
    for cell in {(s, d) for _, s, d in seeds_by_group}:
        sets = {frozenset(v) for (_, s, d), v in seeds_by_group.items() if (s, d) == cell}
        if len(sets) > 1:
            problems.append(f"cell {cell[0]}/{cell[1]}: algorithms run different seeds")
    return problems


__all__ = [
    "Cell",
    "Cost",
    "Decision",
    "Observations",
    "PlannedRun",
    "StudyPlan",
    "choose_config",
    "extend_seeds",
    "fairness_violations",
    "grid_config",
    "grid_size",
    "plan_study",
    "run_hash",
    "run_name",
    "tuning_configs",
    "unresolved_cells",
]
