"""PostTrainingRun and ComparisonStudy (ptlab.io/v1alpha1): the single source of truth.

The CRD schemas in ``crds/`` are generated from these models (``ptlab crds generate``).
Cross-field rules are written twice on purpose, once as a Python validator (local runs) and
once as a CEL rule in ``x-kubernetes-validations`` (admission); ``tests/api`` checks that both
reject the same objects with messages naming the same field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ptlab.api import hooks

GROUP = "ptlab.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

ParamValue = float | int | str | bool
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry (``fieldPath`` names the offending field)."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def with_cel(*rules: dict[str, str]) -> ConfigDict:
    """Model config attaching CEL rules to the generated schema of that object."""
    return ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"x-kubernetes-validations": list(rules)},
    )


class Model(BaseModel):
    """Base: unknown fields are errors (a typo must never be silently ignored)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- shared pieces


def _check_name(name: str) -> str:
    """Reject algorithm names the registry does not know (with close matches)."""
    hooks.check_algorithm(name, {})
    return name


def _check_params(name: str | None, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
    """Reject parameter overrides outside the entry's ranges (skipped if the name failed)."""
    if name is not None:
        hooks.check_algorithm(name, params)
    return params


class AlgorithmRef(Model):
    """Which registry entry to train with, and overrides of its parameters."""

    name: str = Field(min_length=1, description="Registry name or alias, e.g. dpo, simpo, grpo.")
    params: dict[str, ParamValue] = Field(
        default={},
        description="Overrides of the entry's parameters (see `ptlab algorithms show NAME`).",
    )

    _known_name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _valid_params = field_validator("params")(
        classmethod(lambda cls, v, info: _check_params(info.data.get("name"), v))
    )


class LoraSpec(Model):
    """Low-rank adapters (peft); the reference is the adapter-disabled base model."""

    r: int = Field(8, ge=1, le=1024, description="Adapter rank.")
    alpha: float = Field(16.0, gt=0, description="Scaling numerator (lora_alpha).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on adapter inputs.")
    target_modules: list[str] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Module names that get adapters.",
    )


class ModelSpec(Model):
    """A causal LM: a hub id / zoo name (`name`) or a local directory (`path`)."""

    model_config = with_cel(
        cel("has(self.name) != has(self.path)", "set exactly one of model.name or model.path"),
    )

    name: str | None = Field(
        None,
        min_length=1,
        description="Hub id (Qwen/Qwen2.5-0.5B-Instruct) or a tiny-zoo model (zoo/<scale>).",
    )
    path: str | None = Field(None, min_length=1, description="Local HF-format model directory.")
    scale: str | None = Field(None, description="Scale label used in analyses, e.g. 0.5B.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Weights/compute dtype: float32 on CPU, bfloat16 on GPU."
    )
    lora: LoraSpec | None = Field(None, description="Train LoRA adapters instead of all weights.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSpec:
        if (self.name is None) == (self.path is None):
            raise ValueError("set exactly one of model.name or model.path")
        return self


class ReferenceSpec(Model):
    """Reference policy; default: a frozen copy of the starting model."""

    model_config = with_cel(
        cel(
            "!has(self.name) || !has(self.path)",
            "set at most one of reference.name or reference.path",
        ),
    )

    name: str | None = Field(None, min_length=1, description="Hub id or zoo name.")
    path: str | None = Field(None, min_length=1, description="Local model directory.")
    update: Literal["none", "soft", "hard"] = Field(
        "none", description="Move the reference toward the policy (TR-DPO): soft or hard."
    )
    tau: float = Field(0.05, gt=0, le=1, description="Soft update weight per step.")
    every: int = Field(64, ge=1, description="Hard update period in steps.")

    @model_validator(mode="after")
    def _at_most_one_source(self) -> ReferenceSpec:
        if self.name is not None and self.path is not None:
            raise ValueError("set at most one of reference.name or reference.path")
        return self


class DataSource(Model):
    """Where a domain's data comes from: generated by ptlab, a local file, or the hub."""

    model_config = with_cel(
        cel(
            "self.format == 'generated' || has(self.path) || has(self.hub)",
            "a file-based data source needs path (local file) or hub (dataset name)",
            ".path",
        ),
    )

    format: Literal["generated", "gsm8k", "math", "pairs", "multiple_choice"] = Field(
        "generated", description="generated = ptlab's own domain; otherwise a jsonl format."
    )
    path: str | None = Field(None, min_length=1, description="Local jsonl file.")
    hub: str | None = Field(None, min_length=1, description="datasets.load_dataset name.")
    split: str = Field("train", description="Split name when loading from the hub.")

    @model_validator(mode="after")
    def _needs_location(self) -> DataSource:
        if self.format != "generated" and self.path is None and self.hub is None:
            raise ValueError(
                "a file-based data source needs path (local file) or hub (dataset name)"
            )
        return self


class DataSpec(Model):
    """Training data of one run."""

    domain: str = Field("arith", min_length=1, description="arith, algebra, general, or custom.")
    source: DataSource = Field(default=DataSource())
    train_size: int = Field(2000, ge=1, description="Training prompts (items).")
    validation_size: int = Field(200, ge=1, description="Validation items used for tuning.")
    pairs: Literal["given", "self-sampled"] = Field(
        "given", description="Preference pairs: corrupted worked solutions or on-policy samples."
    )
    difficulty: int = Field(1, ge=1, le=5, description="Generator difficulty knob.")


class Budget(Model):
    """Training budget, identical for every algorithm in a study: exactly one unit."""

    model_config = with_cel(
        cel(
            "[has(self.steps), has(self.tokens), has(self.flops)].filter(x, x).size() == 1",
            "set exactly one of budget.steps, budget.tokens or budget.flops",
        ),
    )

    steps: int | None = Field(None, ge=1, description="Optimizer steps.")
    tokens: int | None = Field(
        None, ge=1, description="Train tokens (online RL counts generated tokens too)."
    )
    flops: float | None = Field(None, gt=0, description="Estimated FLOPs (train + generation).")

    @model_validator(mode="after")
    def _exactly_one_unit(self) -> Budget:
        if sum(v is not None for v in (self.steps, self.tokens, self.flops)) != 1:
            raise ValueError("set exactly one of budget.steps, budget.tokens or budget.flops")
        return self


class TrainingSpec(Model):
    """Optimisation settings."""

    model_config = with_cel(
        cel(
            "self.warmup_steps <= 100000",
            "training.warmup_steps must be at most 100000",
            ".warmup_steps",
        ),
    )

    budget: Budget = Field(default=Budget(steps=100))
    batch_size: int = Field(8, ge=1, description="Prompts (or pairs) per optimizer step.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(1e-5, gt=0, le=1, description="Peak learning rate.")
    schedule: Literal["constant", "linear", "cosine"] = Field("cosine")
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_len: int = Field(256, ge=8, le=131072, description="Max prompt+completion tokens.")
    seed: int = Field(0, ge=0, description="Seed of data order, init and sampling.")
    checkpoint_every: int = Field(50, ge=1, description="Steps between checkpoints.")


class RolloutSpec(Model):
    """Generation for online methods."""

    engine: Literal["hf", "vllm"] = Field("hf", description="HF generate, or vLLM.")
    num_generations: int = Field(4, ge=1, le=1024, description="Completions per prompt.")
    max_new_tokens: int = Field(64, ge=1, le=131072)
    temperature: float = Field(1.0, ge=0, le=10)
    top_p: float = Field(1.0, gt=0, le=1)
    sync_every: int = Field(1, ge=1, description="Steps between weight syncs to the engine.")


class SamplingSpec(Model):
    """Sampling for pass@k evaluation."""

    n: int = Field(1, ge=1, description="Samples per item (n ≥ max(pass_k)).")
    temperature: float = Field(0.8, ge=0, le=10)
    top_p: float = Field(1.0, gt=0, le=1)


class EvalSpec(Model):
    """Held-out evaluation (greedy accuracy plus optional pass@k)."""

    model_config = with_cel(
        cel(
            "self.pass_k.all(k, k <= self.sampling.n)",
            "every eval.pass_k must be <= eval.sampling.n",
            ".pass_k",
        ),
    )

    domains: list[str] = Field(
        default=[], description="Domains to evaluate; empty = the training domain."
    )
    items: int = Field(200, ge=1, description="Eval items per domain.")
    split: Literal["eval", "validation"] = Field(
        "eval",
        description="Split evaluated: validation for tuning trials (studies), eval otherwise.",
    )
    pass_k: list[Annotated[int, Field(ge=1)]] = Field(default=[1])
    sampling: SamplingSpec = Field(default=SamplingSpec())
    max_new_tokens: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _pass_k_within_samples(self) -> EvalSpec:
        if any(k > self.sampling.n for k in self.pass_k):
            raise ValueError("every eval.pass_k must be <= eval.sampling.n")
        return self


class DeepSpeedSpec(Model):
    """DeepSpeed ZeRO settings (torchrun)."""

    zero_stage: int = Field(0, ge=0, le=3)
    offload: bool = Field(
        False, description="Offload optimizer state (ZeRO 1-3) and parameters (ZeRO-3) to CPU memory; GPU only."
    )
    persistence_threshold: int = Field(
        100_000, ge=0,
        description="ZeRO-3: parameters with fewer elements stay whole on every rank (0 = shard all).",
    )


class ResourcesSpec(Model):
    """Compute per run."""

    gpus: int = Field(0, ge=0, le=64, description="GPUs per node (= nproc_per_node).")
    nodes: int = Field(1, ge=1, le=1024)
    cpu: str = Field("2", description="CPU request per pod.")
    memory: str = Field("8Gi", description="Memory request per pod.")
    deepspeed: DeepSpeedSpec | None = None
    backend: Literal["auto", "pytorchjob", "job"] = Field(
        "auto", description="auto = PyTorchJob when Kubeflow is installed, else a batch Job."
    )
    image: str | None = Field(None, description="Trainer image; default: the operator's.")


class TrackingSpec(Model):
    """Experiment tracking."""

    mlflow_uri: str | None = Field(
        None,
        description=(
            "MLflow tracking URI. None: a run uses $MLFLOW_TRACKING_URI (else no MLflow); "
            "`ptlab study run` logs the study to <out>/mlflow.db."
        ),
    )
    experiment: str = Field("ptlab", min_length=1)


# --------------------------------------------------------------------------- PostTrainingRun


class PostTrainingRunSpec(Model):
    """One training run of one algorithm at one scale on one domain with one seed."""

    algorithm: AlgorithmRef = Field(description="Registry entry and parameter overrides.")
    model: ModelSpec = Field(description="The policy to train.")
    reference: ReferenceSpec | None = Field(None, description="Reference policy (default: the model).")
    data: DataSpec = Field(default=DataSpec(), description="Training data.")
    training: TrainingSpec = Field(default=TrainingSpec(), description="Optimisation and budget.")
    rollout: RolloutSpec = Field(default=RolloutSpec(), description="Generation (online methods).")
    eval: EvalSpec = Field(default=EvalSpec(), description="Held-out evaluation.")
    resources: ResourcesSpec = Field(default=ResourcesSpec(), description="Compute (cluster).")
    tracking: TrackingSpec = Field(default=TrackingSpec(), description="MLflow tracking.")
    study: str | None = Field(None, description="Owning ComparisonStudy, if any.")


class Condition(Model):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None


class Progress(Model):
    step: int = Field(0, ge=0)
    total: int = Field(0, ge=0)
    percent: int = Field(0, ge=0, le=100)


Phase = Literal["Pending", "Running", "Succeeded", "Failed"]


class PostTrainingRunStatus(Model):
    phase: Phase = "Pending"
    conditions: list[Condition] = Field(default=[])
    progress: Progress = Field(default=Progress())
    result: dict[str, float] = Field(default={})
    score: str | None = Field(None, description="Headline metric for `kubectl get`.")
    mlflowRunId: str | None = None
    jobName: str | None = None
    message: str | None = None
    startTime: str | None = None
    completionTime: str | None = None


class ObjectMeta(Model):
    """The part of Kubernetes metadata ptlab reads; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=253, pattern=DNS_LABEL.replace("[-a-z0-9]", "[-.a-z0-9]"))
    namespace: str | None = None
    labels: dict[str, str] = Field(default={})
    annotations: dict[str, str] = Field(default={})


class PostTrainingRun(Model):
    apiVersion: Literal["ptlab.io/v1alpha1"] = API_VERSION
    kind: Literal["PostTrainingRun"] = "PostTrainingRun"
    metadata: ObjectMeta
    spec: PostTrainingRunSpec
    status: PostTrainingRunStatus | None = None


# --------------------------------------------------------------------------- ComparisonStudy


class StudyAlgorithm(Model):
    """One algorithm of a study, with an optional tuning grid (equal budget per algorithm)."""

    model_config = with_cel(
        cel(
            "!has(self.tune) || self.tune.all(k, size(self.tune[k]) >= 1)",
            "every tune grid needs at least one value",
            ".tune",
        ),
    )

    name: str = Field(min_length=1)
    params: dict[str, ParamValue] = Field(default={})
    tune: dict[str, list[ParamValue]] = Field(
        default={}, description="Grid of parameter values tried on the validation split."
    )

    _known_name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _valid_params = field_validator("params")(
        classmethod(lambda cls, v, info: _check_params(info.data.get("name"), v))
    )

    @field_validator("tune")
    @classmethod
    def _valid_grid(cls, tune: dict[str, list[ParamValue]], info: ValidationInfo) -> dict[str, list[ParamValue]]:
        name, params = info.data.get("name"), info.data.get("params", {})
        for key, values in tune.items():
            if not values:
                raise ValueError(f"tune.{key} needs at least one value")
            for value in values:
                _check_params(name, {**params, key: value})
        return tune


class Scale(Model):
    name: str = Field(min_length=1, description="Scale label, e.g. 0.5B or s1.")
    model: ModelSpec = Field(description="Model at this scale.")


class SequentialSeeds(Model):
    max: int = Field(10, ge=1, le=1000, description="Most seeds any cell may get.")
    until: Literal["separable"] = Field(
        "separable", description="Stop adding seeds once the top set is separable at alpha."
    )


class Seeds(Model):
    model_config = with_cel(
        cel("has(self.count) != has(self.list)", "set exactly one of seeds.count or seeds.list"),
        cel(
            "!has(self.sequential) || !has(self.count) || self.sequential.max >= self.count",
            "seeds.sequential.max must be >= seeds.count",
            ".sequential.max",
        ),
    )

    count: int | None = Field(None, ge=1, le=1000)
    seed_list: list[Annotated[int, Field(ge=0)]] | None = Field(None, alias="list", min_length=1)
    sequential: SequentialSeeds | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Seeds:
        if (self.count is None) == (self.seed_list is None):
            raise ValueError("set exactly one of seeds.count or seeds.list")
        if self.seed_list is not None and len(set(self.seed_list)) != len(self.seed_list):
            raise ValueError("seeds.list has duplicates")
        if self.sequential and self.count and self.sequential.max < self.count:
            raise ValueError("seeds.sequential.max must be >= seeds.count")
        return self

    def values(self) -> list[int]:
        """The initial seeds."""
        return list(self.seed_list) if self.seed_list is not None else list(range(self.count or 0))


class AnalysisSpec(Model):
    metric: str = Field("accuracy", min_length=1, description="Eval metric compared.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Family-wise significance level (Holm).")
    equivalence_margin: float = Field(
        0.02, ge=0, description="TOST margin: differences within it count as equivalent."
    )
    bootstrap: int = Field(2000, ge=100, le=1_000_000, description="Bootstrap resamples.")


class TuneSpec(Model):
    """How each algorithm's grid is searched (same budget for all)."""

    trials: int | None = Field(
        None, ge=1, description="Random trials from the grid; None = the full grid."
    )
    budget_fraction: float = Field(
        1.0, gt=0, le=1, description="Fraction of the training budget per tuning trial."
    )
    split: Literal["validation"] = "validation"


class RunTemplate(Model):
    """Run fields shared by every run of a study (algorithm/model/seed are filled in)."""

    reference: ReferenceSpec | None = None
    data: DataSpec = Field(default=DataSpec())
    training: TrainingSpec = Field(default=TrainingSpec())
    rollout: RolloutSpec = Field(default=RolloutSpec())
    eval: EvalSpec = Field(default=EvalSpec())
    resources: ResourcesSpec = Field(default=ResourcesSpec())
    tracking: TrackingSpec = Field(default=TrackingSpec())


class ComparisonStudySpec(Model):
    model_config = with_cel(
        cel(
            "self.scales.all(a, self.scales.exists_one(b, b.name == a.name))",
            "scales must have unique names",
            ".scales",
        ),
        cel(
            "self.algorithms.all(a, self.algorithms.exists_one(b, b.name == a.name))",
            "algorithms must have unique names",
            ".algorithms",
        ),
        cel(
            "self.domains.all(a, self.domains.exists_one(b, b == a))",
            "domains must have unique names",
            ".domains",
        ),
    )

    algorithms: list[StudyAlgorithm] = Field(
        min_length=1, max_length=128, description="Algorithms compared (names unique)."
    )
    scales: list[Scale] = Field(
        min_length=1, max_length=32, description="Model scales (names unique), smallest first."
    )
    domains: list[str] = Field(
        min_length=1, max_length=32, description="Domains: arith, algebra, general or a dataset."
    )
    datasets: dict[str, DataSource] = Field(
        default={}, description="Data sources of custom (non-generated) domains."
    )
    seeds: Seeds = Field(default=Seeds(count=3), description="Seeds per cell (fixed or sequential).")
    budget: Budget = Field(description="Training budget, equal for every algorithm.")
    tune: TuneSpec = Field(default=TuneSpec(), description="Equal tuning budget per algorithm.")
    template: RunTemplate = Field(default=RunTemplate(), description="Fields shared by every run.")
    parallelism: int = Field(4, ge=1, le=10000, description="Runs executing at once.")
    analysis: AnalysisSpec = Field(default=AnalysisSpec(), description="Statistics settings.")
    suspend: bool = Field(False, description="Pause creating new runs.")

    @field_validator("domains")
    @classmethod
    def _domain_names(cls, domains: list[str]) -> list[str]:
        _require_unique("domains", domains)
        for name in domains:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
                raise ValueError(f"domain {name!r} must be lower-case letters, digits, - or _")
        return domains

    @field_validator("scales", "algorithms")
    @classmethod
    def _unique_names(cls, items: list[Any], info: ValidationInfo) -> list[Any]:
        _require_unique(str(info.field_name), [item.name for item in items])
        return items


def _require_unique(label: str, names: list[str]) -> None:
    """Raise naming the first duplicate, e.g. ``scales must have unique names (duplicate: s1)``."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{label} must have unique names (duplicate: {dupes[0]})")


class Ranking(Model):
    model_config = ConfigDict(extra="allow")
    scale: str
    domain: str
    algorithms: list[dict[str, Any]] = Field(default=[])


class StudyRuns(Model):
    total: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class ComparisonStudyStatus(Model):
    model_config = ConfigDict(extra="forbid")

    phase: Phase = "Pending"
    conditions: list[Condition] = Field(default=[])
    runs: StudyRuns = Field(default=StudyRuns())
    progress: str | None = Field(None, description="Succeeded/total, for `kubectl get`.")
    best: str | None = Field(None, description="Recommendation summary, for `kubectl get`.")
    rankings: list[Ranking] = Field(default=[])
    inversions: list[dict[str, Any]] = Field(default=[])
    recommendations: list[dict[str, Any]] = Field(default=[])
    reportUri: str | None = None
    mlflowRunId: str | None = None
    message: str | None = None


class ComparisonStudy(Model):
    apiVersion: Literal["ptlab.io/v1alpha1"] = API_VERSION
    kind: Literal["ComparisonStudy"] = "ComparisonStudy"
    metadata: ObjectMeta
    spec: ComparisonStudySpec
    status: ComparisonStudyStatus | None = None


KINDS: dict[str, type[Model]] = {
    "PostTrainingRun": PostTrainingRun,
    "ComparisonStudy": ComparisonStudy,
}
