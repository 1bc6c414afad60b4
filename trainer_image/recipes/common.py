"""What every recipe shares: the run context, data order, loss normalisation, the step guard,
checkpoint/resume of the loop state.

A recipe is ``train(ctx: RunContext) -> Outcome``; :mod:`ptlab.trainer.run` builds the context
(resolved spec, output folder, process info, reporter) and turns the outcome into result.json.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ptlab.algorithms.registry import AlgorithmSpec
from ptlab.algorithms.types import LossOutput
from ptlab.api.models import PostTrainingRunSpec
from ptlab.trainer import checkpoint
from ptlab.trainer.budget import Budget
from ptlab.trainer.distributed import DistInfo, Engine, all_sum
from ptlab.trainer.observability import Reporter

TIMING_KEYS = frozenset({"tokens_per_second", "generated_tokens_per_second", "step_time_s"})
"""Per-step metrics that measure wall time (the only ones that differ between identical runs)."""


class NonFiniteError(RuntimeError):
    """A NaN/inf loss or gradient: the run stops and keeps its last good checkpoint."""

    def __init__(self, step: int):
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


@dataclass
class RunContext:
    """Everything a recipe needs from the run: spec, resolved algorithm, I/O, process info."""

    spec: PostTrainingRunSpec
    algorithm: AlgorithmSpec
    params: Any
    out_dir: Path
    info: DistInfo
    reporter: Reporter

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"


@dataclass
class Outcome:
    """What a recipe returns: the trained policy (for evaluation) and the loop's counters."""

    model: nn.Module
    tokenizer: Any
    budget: Budget
    wall_s: float
    status: str = "succeeded"
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Recipe-specific result fields (e.g. reference forward passes, cache hit)."""


class DataOrder:
    """Deterministic epoch-wise shuffling of ``n`` examples with a resumable position."""

    def __init__(self, n: int, seed: int, epoch: int = 0, offset: int = 0):
        self.n, self.seed, self.epoch, self.offset = n, seed, epoch, offset

    def _perm(self, epoch: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen).tolist()

    def take(self, k: int) -> list[int]:
        """The next ``k`` example indices (crossing into the next epoch when needed)."""
        out: list[int] = []
        while len(out) < k:
            perm = self._perm(self.epoch)
            grab = perm[self.offset : self.offset + k - len(out)]
            out.extend(grab)
            self.offset += len(grab)
            if self.offset >= self.n:
                self.epoch, self.offset = self.epoch + 1, 0
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}


def shard(indices: list[int], info: DistInfo, micro_steps: int) -> list[list[int]]:
    """This rank's micro-batches of a global batch: ``world × micro_steps`` contiguous chunks."""
    chunks = info.world_size * micro_steps
    if len(indices) < chunks:
        raise ValueError(
            f"training.batch_size={len(indices)} is smaller than processes × grad_accum = {chunks}"
        )
    size = math.ceil(len(indices) / chunks)
    parts = [indices[i * size : (i + 1) * size] for i in range(chunks)]
    return [p for p in parts[info.rank * micro_steps : (info.rank + 1) * micro_steps] if p]


@dataclass(frozen=True)
class Totals:
    """Denominators of the global batch: rows, completion tokens, padded width."""

    rows: float
    tokens: float
    width: float = 1.0


def micro_share(
    out: LossOutput, mask: Tensor, totals: Totals, mode: str = "token-mean", rows: int | None = None
) -> Tensor:
    """This micro-batch's share of the global-batch loss (summing shares = one big batch).

    Sequence-level losses are averaged over the global rows (``rows`` = examples in this
    micro-batch, default ``len(out.loss)``; a loss may have one row per sequence, e.g. both
    completions of a pair). Token-level losses (B, T) follow ``mode`` (see
    ``ptlab.algorithms.common.aggregate``) with global denominators, so gradient accumulation
    and data parallelism do not change the loss definition.
    """
    if not out.token_level:
        return out.loss.mean() * ((rows or out.loss.shape[0]) / totals.rows)
    m = mask.to(out.loss.dtype)
    if mode == "token-mean":
        return (out.loss * m).sum() / totals.tokens
    if mode == "seq-mean-token-sum":
        return (out.loss * m).sum() / totals.rows
    if mode == "seq-mean-token-mean":
        return ((out.loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)).sum() / totals.rows
    if mode == "seq-mean-token-sum-norm":
        return (out.loss * m).sum() / (totals.rows * totals.width)
    raise ValueError(f"aggregation={mode!r} is not a known loss aggregation")


def metric_sums(metrics: Mapping[str, Tensor]) -> dict[str, tuple[float, float]]:
    """Per metric (sum, count) so that micro-batches and ranks can be averaged exactly."""
    out = {}
    for key, value in metrics.items():
        v = value.detach().float()
        out[key] = (float(v.sum()), float(v.numel()))
    return out


def reduce_metrics(parts: list[dict[str, tuple[float, float]]]) -> dict[str, float]:
    """Mean of each metric over micro-batches and ranks (one all-reduce for all of them)."""
    keys = sorted({k for p in parts for k in p})
    if not keys:
        return {}
    flat = torch.tensor(
        [[sum(p[k][0] for p in parts if k in p), sum(p[k][1] for p in parts if k in p)] for k in keys],
        dtype=torch.float64,
    )
    flat = all_sum(flat)
    return {k: float(s / c) if c else 0.0 for k, (s, c) in zip(keys, flat.tolist(), strict=True)}


def check_finite(value: float, step: int) -> None:
    """Raise :class:`NonFiniteError` for a NaN/inf loss or gradient norm."""
    if not math.isfinite(value):
        raise NonFiniteError(step)


def optimizer_step(engine: Engine, loss_sum: Tensor, step: int) -> tuple[float, float, float]:
    """End of an optimizer step: all-reduce the loss, guard it, step, guard the gradient.

    Returns ``(loss, lr used by this step, gradient norm before clipping)``; raises
    :class:`NonFiniteError` (before any update for a bad loss; the engine skips the update
    for a bad gradient).
    """
    loss = float(all_sum(loss_sum))
    check_finite(loss, step)
    lr = engine.lr
    grad_norm = engine.step()
    check_finite(grad_norm, step)
    return loss, lr, grad_norm


class Loop:
    """Resume, per-step bookkeeping and periodic checkpoints of one recipe's loop."""

    def __init__(self, ctx: RunContext, engine: Engine, budget: Budget, order: DataOrder):
        self.ctx, self.engine, self.budget, self.order = ctx, engine, budget, order
        self.extra: dict[str, Any] = {}
        self.wall_before = 0.0
        self.started = time.perf_counter()
        checkpoint.clean_partial(ctx.checkpoint_dir) if ctx.info.is_main else None
        last = checkpoint.latest(ctx.checkpoint_dir)
        self.resumed_from = 0
        if last is not None:
            state = checkpoint.load(last, engine, ctx.info)
            self.budget.steps = state["budget"]["steps"]
            self.budget.train_tokens = state["budget"]["train_tokens"]
            self.budget.generated_tokens = state["budget"]["generated_tokens"]
            self.order.epoch, self.order.offset = state["data"]["epoch"], state["data"]["offset"]
            self.extra = state.get("extra", {})
            self.wall_before = state.get("wall_s", 0.0)
            self.resumed_from = self.budget.steps
        ctx.reporter.start(self.resumed_from)

    @property
    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def end_step(self, metrics: Mapping[str, Any], total_steps: int) -> None:
        """Log the finished step; checkpoint when due (``training.checkpoint_every``)."""
        step = self.budget.steps
        self.ctx.reporter.log_step(step, {"step": step, **metrics}, total_steps)
        if step % self.ctx.spec.training.checkpoint_every == 0:
            self.save()

    def save(self) -> None:
        state = {
            "budget": self.budget.as_dict(),
            "data": self.order.state(),
            "extra": self.extra,
            "wall_s": self.wall_s,
        }
        checkpoint.save(self.ctx.checkpoint_dir, self.budget.steps, self.engine, state, self.ctx.info)
