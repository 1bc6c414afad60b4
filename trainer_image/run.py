"""Entrypoint logic of one PostTrainingRun: the run contract of DESIGN.md §4.

``train(run_or_spec, out_dir)`` writes into ``out_dir``:
    spec.json         the resolved spec (with its content hash)
    metrics.jsonl     one line per optimizer step
    checkpoints/      atomic, every ``training.checkpoint_every`` steps (resume after a kill)
    model/            the final policy (``save_pretrained``) when training succeeded
    eval/items.jsonl  per-item scores of the held-out evaluation
    result.json       written atomically LAST; if it exists the run is done (a no-op rerun)
Only rank 0 writes. A failed run (non-finite loss) still writes result.json with
``status: failed`` and ``reason``; the CLI exits non-zero for it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptlab import __version__
from ptlab.api.hashing import content_hash
from ptlab.api.models import PostTrainingRun, PostTrainingRunSpec
from ptlab.errors import UserError
from ptlab.trainer import distributed, modeling
from ptlab.trainer.kube_status import StatusReporter
from ptlab.trainer.observability import MlflowTracker, Reporter, read_jsonl
from ptlab.trainer.recipes.common import NonFiniteError, Outcome, RunContext

log = logging.getLogger("ptlab.trainer")


def coerce(run_or_spec: Any) -> tuple[str, PostTrainingRunSpec]:
    """``(run name, spec)`` from a PostTrainingRun, a spec, or their dict form."""
    if isinstance(run_or_spec, PostTrainingRun):
        return run_or_spec.metadata.name, run_or_spec.spec
    if isinstance(run_or_spec, PostTrainingRunSpec):
        return "run", run_or_spec
    if isinstance(run_or_spec, Mapping):
        if run_or_spec.get("kind") == "PostTrainingRun" or "spec" in run_or_spec:
            run = PostTrainingRun.model_validate(dict(run_or_spec))
            return run.metadata.name, run.spec
        return "run", PostTrainingRunSpec.model_validate(dict(run_or_spec))
    raise UserError(f"cannot train a {type(run_or_spec).__name__}", "pass a PostTrainingRun or its spec")


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON via a temporary file and rename (readers never see half a file)."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def code_version() -> str:
    """ptlab version plus the git commit of the source tree when available."""
    try:
        import subprocess

        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def data_hash(spec: PostTrainingRunSpec) -> str:
    """Hash of what determines the training data (domain, source, sizes, pairs, seed)."""
    return content_hash({"data": spec.data.model_dump(mode="json"), "seed": spec.training.seed})


def pick_recipe(ctx: RunContext) -> Any:
    """The recipe module for the entry: online when it needs rollouts, else offline."""
    if ctx.algorithm.needs_rollouts or ctx.algorithm.family in ("online-rl", "online-pref"):
        from ptlab.trainer.recipes import online

        return online
    from ptlab.trainer.recipes import offline

    return offline


def build_reporter(
    spec: PostTrainingRunSpec, name: str, spec_hash: str, out: Path, info: distributed.DistInfo,
    metrics_port: int | None,
) -> Reporter:
    """metrics.jsonl + Prometheus + MLflow (when a URI is configured) + Kubernetes status."""
    labels = {"run": name, "algorithm": spec.algorithm.name}
    tags = {
        "algorithm": spec.algorithm.name,
        "scale": spec.model.scale or spec.model.name or spec.model.path or "",
        "domain": spec.data.domain,
        "seed": str(spec.training.seed),
        "spec_hash": spec_hash,
        **({"study": spec.study} if spec.study else {}),
    }
    uri = spec.tracking.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    tracker = None
    if uri and info.is_main:
        tracker = MlflowTracker(
            uri, spec.tracking.experiment, name, out / "mlflow",
            spec.model_dump(mode="json"), tags,
        )
    status = StatusReporter.from_env() if info.is_main else None
    return Reporter(out, is_main=info.is_main, metrics_port=metrics_port, labels=labels,
                    mlflow=tracker, status=status)


def evaluate_policy(outcome: Outcome, ctx: RunContext) -> dict[str, float]:
    """Held-out evaluation of the trained policy on every eval domain (eval/items.jsonl).

    Items are the same for every seed and algorithm (seed 0 of the split) so that runs can be
    compared item by item; sampling for pass@k uses the run's seed. With several domains the
    metrics are prefixed ``<domain>/`` and ``accuracy`` is their mean.
    """
    from ptlab.trainer.domains import get_domain
    from ptlab.trainer.evaluation import evaluate

    spec = ctx.spec
    model = getattr(outcome.model, "lm", outcome.model)  # reward models: their language model
    model.eval()
    n_samples = spec.eval.sampling.n if spec.eval.sampling.n > 1 else 0
    domains = spec.eval.domains or [spec.data.domain]
    per_domain = {}
    for name in domains:
        domain = get_domain(name)
        per_domain[name] = evaluate(
            model, outcome.tokenizer, domain, domain.items(spec.eval.split, spec.eval.items, seed=0),
            max_new_tokens=spec.eval.max_new_tokens,
            pass_k=[k for k in spec.eval.pass_k if k <= n_samples], n_samples=n_samples,
            temperature=spec.eval.sampling.temperature, seed=spec.training.seed,
            out_dir=ctx.out_dir / "eval",
        )
    if len(domains) == 1:
        return per_domain[domains[0]]
    merged = {f"{d}/{k}": v for d, m in per_domain.items() for k, v in m.items()}
    merged["accuracy"] = sum(m["accuracy"] for m in per_domain.values()) / len(domains)
    return merged


def train(run_or_spec: Any, out_dir: str | Path, *, metrics_port: int | None = None) -> dict[str, Any]:
    """Train one run into ``out_dir`` and return its result (see the module docstring)."""
    import ptlab.algorithms as algorithms

    name, spec = coerce(run_or_spec)
    out = Path(out_dir)
    result_path = out / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    spec_json = spec.model_dump(mode="json")
    spec_hash = content_hash(spec_json)
    info = distributed.init()
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        previous = out / "spec.json"
        if previous.exists() and json.loads(previous.read_text()).get("hash") != spec_hash:
            raise UserError(f"{out} holds a different run (spec hash differs)", "use another --out")
        write_json_atomic(previous, {"hash": spec_hash, "name": name, "spec": spec_json})
    distributed.barrier()

    threads = modeling.configure_determinism(spec.training.seed)
    algo = algorithms.get(spec.algorithm.name)
    params = algorithms.resolve_params(spec.algorithm.name, spec.algorithm.params)
    reporter = build_reporter(spec, name, spec_hash, out, info, metrics_port)
    ctx = RunContext(spec, algo, params, out, info, reporter)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "name": name, "algorithm": algo.name, "family": algo.family, "seed": spec.training.seed,
        "config_hash": spec_hash, "data_hash": data_hash(spec), "code_version": code_version(),
        "threads": threads, "world_size": info.world_size, "scale": spec.model.scale,
        "domain": spec.data.domain, "study": spec.study,
    }
    try:
        try:
            outcome = pick_recipe(ctx).train(ctx)
        except NonFiniteError as err:
            last = (read_jsonl(out / "metrics.jsonl") or [{}])[-1]
            result.update(status="failed", reason=str(err), steps=err.step - 1,
                          wall_s=time.perf_counter() - started, metrics={},
                          train_tokens=last.get("train_tokens", 0), flops=last.get("flops", 0.0))
        else:
            metrics: dict[str, float] = {}
            if info.is_main:
                metrics = evaluate_policy(outcome, ctx)
                reporter.log_eval(outcome.budget.steps, metrics)
                save_model(outcome, out / "model")
            result.update(
                status="succeeded", steps=outcome.budget.steps, wall_s=outcome.wall_s,
                train_tokens=outcome.budget.train_tokens,
                generated_tokens=outcome.budget.generated_tokens, flops=outcome.budget.flops,
                n_params=outcome.budget.n_params, metrics=metrics, **outcome.extra,
            )
        if info.is_main:
            if reporter.mlflow is not None:
                result["mlflow_run_id"] = reporter.mlflow.run_id
            write_json_atomic(out / "result.json", result)
            reporter.finish(result, [out / "result.json", out / "eval" / "items.jsonl", out / "spec.json"])
        return result
    finally:
        reporter.close()
        distributed.finish()


def save_model(outcome: Outcome, directory: Path) -> None:
    """The final policy in HF format (merged LoRA weights are left to peft's own format)."""
    model = getattr(outcome.model, "lm", outcome.model)
    model.save_pretrained(directory)
    outcome.tokenizer.save_pretrained(directory)
