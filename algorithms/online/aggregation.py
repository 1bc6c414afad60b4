"""Token → scalar loss aggregation: its own small registry (verl ``agg_loss`` names).

Every online policy loss returns a per-token loss (B, T); the trainer reduces it with one of
these modes. The choice changes the gradient weight of long vs short completions, which is why
it is an explicit option of every online recipe (Liu+ 2503.20783 §3.1, Yu+ 2503.14476 §3.3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

AggregationFn = Callable[[Tensor, Tensor, "int | None"], Tensor]
AGGREGATIONS: dict[str, AggregationFn] = {}


def _register(name: str) -> Callable[[AggregationFn], AggregationFn]:
    def wrap(fn: AggregationFn) -> AggregationFn:
        AGGREGATIONS[name] = fn
        return fn

    return wrap


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (denominator clamped to ≥1)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x − mean) / sqrt(var + eps) over masked positions; the variance is Bessel-corrected (verl)."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1).clamp(min=1.0)
    return (x - mean) * torch.rsqrt(var + eps)


@_register("token-mean")
def token_mean(loss: Tensor, mask: Tensor, norm_length: int | None = None) -> Tensor:
    """Σ_{i,t} l_it / Σ_{i,t} m_it — every token weighs the same (DAPO, BNPO, CISPO)."""
    return masked_mean(loss, mask)


@_register("seq-mean-token-sum")
def seq_mean_token_sum(loss: Tensor, mask: Tensor, norm_length: int | None = None) -> Tensor:
    """(1/B) Σ_i Σ_t l_it — sequence sums averaged over sequences."""
    return (loss * mask.to(loss.dtype)).sum(-1).mean()


@_register("seq-mean-token-mean")
def seq_mean_token_mean(loss: Tensor, mask: Tensor, norm_length: int | None = None) -> Tensor:
    """(1/B) Σ_i (1/|y_i|) Σ_t l_it — the original GRPO objective (Shao+ 2402.03300 eq. 3)."""
    return masked_mean(loss, mask, dim=-1).mean()


@_register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(loss: Tensor, mask: Tensor, norm_length: int | None = None) -> Tensor:
    """(1/(B·L)) Σ_{i,t} l_it with a constant L (max completion length; Dr. GRPO 2503.20783).

    Note: verl divides by L only (no 1/B); we follow TRL's ``dr_grpo`` (B·L), which is the
    paper's batch mean. ``norm_length`` defaults to the padded width T.
    """
    length = loss.shape[-1] if norm_length is None else norm_length
    return (loss * mask.to(loss.dtype)).sum() / (loss.shape[0] * length)


def aggregate(loss: Tensor, mask: Tensor, mode: str, norm_length: int | None = None) -> Tensor:
    """Reduce a per-token loss (B, T) — or a per-sequence loss (B, 1) broadcast over tokens —
    to a scalar with aggregation ``mode``; unknown modes list the valid ones."""
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregation={mode!r} is not one of {sorted(AGGREGATIONS)}")
    if loss.shape != mask.shape:
        loss = loss.expand_as(mask)
    return AGGREGATIONS[mode](loss, mask, norm_length)
