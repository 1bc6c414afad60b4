"""Shared helpers for registry entries: masked reductions, log-ratios, metrics, example batches.

Stable API (other families import these; append new helpers at the end, never rename):
``require``, ``masked_sum``, ``masked_mean``, ``seq_logps``, ``log_ratio``, ``pair_logratios``,
``pair_logps``, ``aggregate``, ``nll_rows``, ``log1mexp``, ``preference_metrics``,
``sigmoid_pref_loss``, ``random_batch``, ``registrar``.

Conventions: per-token tensors are (B, T) and zero where ``mask`` is 0. A sequence-level reduction
of a row with no completion token raises ``ValueError`` (a silent log-ratio of 0 would bias the
loss); token-level losses simply give such a row zero contribution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.registry import register
from ptlab.algorithms.types import (
    PairedBatch,
    RewardBatch,
    RolloutBatch,
    ScoreBatch,
    SingleBatch,
    UnpairedBatch,
)

Reduction = Literal["sum", "mean"]
Aggregation = Literal[
    "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
]
REDUCTIONS: tuple[str, ...] = ("sum", "mean")
AGGREGATIONS: tuple[str, ...] = (
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)


def require(value: Tensor | None, field: str, entry: str) -> Tensor:
    """Return ``value`` or raise a one-line error naming the missing batch field."""
    if value is None:
        raise ValueError(f"{entry}: batch field {field!r} is required by this loss (it is None)")
    return value


def masked_sum(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Σ x·mask along ``dim`` (mask may be bool or float)."""
    return (x * mask.to(x.dtype)).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over positions where mask is 1 (whole tensor if ``dim`` is None); 0 if empty."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1.0)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)


def _token_counts(mask: Tensor, name: str) -> Tensor:
    counts = mask.to(torch.float64).sum(-1)
    empty = (counts == 0).nonzero()
    if empty.numel():
        row = int(empty[0, 0])
        raise ValueError(
            f"{name} has a row with no completion tokens (row {row}); drop empty completions "
            "before a sequence-level loss"
        )
    return counts


def seq_logps(logps: Tensor, mask: Tensor, reduction: str = "sum", name: str = "mask") -> Tensor:
    """Sequence log-prob (B,): Σ_t logp (``sum``) or Σ_t logp / |y| (``mean``, length-normalised)."""
    counts = _token_counts(mask, name)
    total = masked_sum(logps, mask)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / counts.to(total.dtype)
    raise ValueError(f"logp_reduction={reduction!r} is not one of {list(REDUCTIONS)}")


def log_ratio(
    policy_logps: Tensor,
    ref_logps: Tensor,
    mask: Tensor,
    reduction: str = "sum",
    name: str = "mask",
) -> Tensor:
    """h = log πθ(y|x) − log πref(y|x) per sequence (B,), reduced with ``reduction``."""
    return seq_logps(policy_logps - ref_logps, mask, reduction, name)


def pair_logps(batch: PairedBatch, reduction: str = "sum") -> tuple[Tensor, Tensor]:
    """Policy sequence log-probs (chosen, rejected), each (B,)."""
    return (
        seq_logps(batch.policy_chosen_logps, batch.chosen_mask, reduction, "chosen_mask"),
        seq_logps(batch.policy_rejected_logps, batch.rejected_mask, reduction, "rejected_mask"),
    )


def pair_logratios(
    batch: PairedBatch, reduction: str = "sum", entry: str = "loss"
) -> tuple[Tensor, Tensor]:
    """Log-ratios (h_w, h_l), each (B,); needs the reference log-probs."""
    ref_w = require(batch.ref_chosen_logps, "ref_chosen_logps", entry)
    ref_l = require(batch.ref_rejected_logps, "ref_rejected_logps", entry)
    h_w = log_ratio(batch.policy_chosen_logps, ref_w, batch.chosen_mask, reduction, "chosen_mask")
    h_l = log_ratio(
        batch.policy_rejected_logps, ref_l, batch.rejected_mask, reduction, "rejected_mask"
    )
    return h_w, h_l


def aggregate(loss: Tensor, mask: Tensor, mode: str = "token-mean") -> Tensor:
    """Aggregate a token-level loss (B, T) to a scalar.

    token-mean: Σ loss / Σ mask; seq-mean-token-sum: mean_b Σ_t loss; seq-mean-token-mean:
    mean_b (Σ_t loss / |y_b|); seq-mean-token-sum-norm: Σ loss / (B·T) (Dr.GRPO's constant).
    """
    m = mask.to(loss.dtype)
    if mode == "token-mean":
        return (loss * m).sum() / m.sum().clamp(min=1.0)
    if mode == "seq-mean-token-sum":
        return (loss * m).sum(-1).mean()
    if mode == "seq-mean-token-mean":
        return ((loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if mode == "seq-mean-token-sum-norm":
        return (loss * m).sum() / loss.numel()
    raise ValueError(f"aggregation={mode!r} is not one of {list(AGGREGATIONS)}")


def nll_rows(logps: Tensor, mask: Tensor, reduction: str = "token_mean") -> Tensor:
    """Per-row NLL (B,) whose batch mean is the chosen NLL convention.

    ``token_mean`` (TRL's cross-entropy over all chosen tokens of the batch): row b contributes
    B·Σ_t(−logp)/N with N the batch token count, so ``rows.mean()`` is the token mean.
    ``seq_mean``: each row's own mean token NLL.
    """
    m = mask.to(logps.dtype)
    token_nll = -(logps * m).sum(-1)
    if reduction == "token_mean":
        return token_nll * (logps.shape[0] / m.sum().clamp(min=1.0))
    if reduction == "seq_mean":
        return token_nll / _token_counts(mask, "chosen_mask").to(logps.dtype)
    raise ValueError(f"nll_reduction={reduction!r} is not one of ['token_mean', 'seq_mean']")


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − exp(x)) for x < 0, stable on both sides of −ln 2 (Mächler 2012)."""
    return torch.where(
        x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x))
    )


def preference_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, Tensor]:
    """Detached (B,) statistics: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies."""
    cw, cl = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards/chosen": cw,
        "rewards/rejected": cl,
        "rewards/margins": cw - cl,
        "rewards/accuracies": (cw > cl).to(cw.dtype),
    }


def sigmoid_pref_loss(logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """−(1−ε)·log σ(z) − ε·log σ(−z): the (conservative) Bradley–Terry preference loss."""
    loss = -F.logsigmoid(logits)
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-logits)
    return loss


def _token_logps(shape: tuple[int, int], gen: torch.Generator, dtype: torch.dtype) -> Tensor:
    return -torch.rand(shape, generator=gen, dtype=dtype) * 3.0 - 0.01


def _lengths_mask(batch: int, seq_len: int, gen: torch.Generator) -> Tensor:
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=gen)
    return (torch.arange(seq_len)[None, :] < lengths[:, None]).to(torch.float64)


def random_batch(
    kind: str,
    batch_size: int = 4,
    seq_len: int = 6,
    *,
    vocab: int = 7,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Any:
    """A random, valid batch of ``kind`` (an ``InputKind``) with right-padding and every optional
    field filled, for contract tests and benchmarks. Log-probs are in (−3, 0); every row has ≥1 token.
    """
    batch = _random_batch(
        kind, batch_size, seq_len, vocab, torch.Generator().manual_seed(seed), dtype
    )
    return _fill_optional(batch, torch.Generator().manual_seed(seed + 1), dtype)


def _fill_optional(batch: Any, gen: torch.Generator, dtype: torch.dtype) -> Any:
    """Fill optional (B, T) fields added later by naming convention: ``*_mask`` and ``*_logps``."""
    ref = next((f for f in ("mask", "chosen_mask", "step_mask") if hasattr(batch, f)), None)
    if ref is None:
        return batch
    b, t = getattr(batch, ref).shape
    filled: dict[str, Tensor] = {}
    for f in dataclasses.fields(batch):
        if getattr(batch, f.name) is None and f.name.endswith("_mask"):
            filled[f.name] = _lengths_mask(b, t, gen).to(dtype)
    for f in dataclasses.fields(batch):
        if getattr(batch, f.name) is None and f.name.endswith("_logps"):
            mask = filled.get(f.name.replace("_logps", "_mask"), getattr(batch, ref))
            filled[f.name] = _token_logps((b, t), gen, dtype) * mask
    return dataclasses.replace(batch, **filled)


def _random_batch(
    kind: str, batch_size: int, seq_len: int, vocab: int, gen: torch.Generator, dtype: torch.dtype
) -> Any:
    b, t = batch_size, seq_len

    def lp() -> Tensor:
        return _token_logps((b, t), gen, dtype)

    def msk() -> Tensor:
        return _lengths_mask(b, t, gen).to(dtype)

    if kind == "single":
        mask = msk()
        logits = torch.randn(b, t, vocab, generator=gen, dtype=dtype)
        labels = torch.randint(0, vocab, (b, t), generator=gen)
        logps = torch.log_softmax(logits, -1).gather(-1, labels[..., None])[..., 0] * mask
        return SingleBatch(
            logps=logps,
            mask=mask,
            logits=logits,
            teacher_logits=torch.randn(b, t, vocab + 2, generator=gen, dtype=dtype)[..., :vocab],
            labels=labels,
            ref_logps=lp() * mask,
            rewards=torch.rand(b, generator=gen, dtype=dtype),
        )
    if kind == "paired":
        cm, rm = msk(), msk()
        return PairedBatch(
            policy_chosen_logps=lp() * cm,
            policy_rejected_logps=lp() * rm,
            chosen_mask=cm,
            rejected_mask=rm,
            ref_chosen_logps=lp() * cm,
            ref_rejected_logps=lp() * rm,
            margins=torch.rand(b, generator=gen, dtype=dtype) + 0.1,
            chosen_rewards=torch.rand(b, generator=gen, dtype=dtype) + 0.5,
            rejected_rewards=torch.rand(b, generator=gen, dtype=dtype),
            chosen_log_sum_sq=lp() * cm * 0.5,
            rejected_log_sum_sq=lp() * rm * 0.5,
            chosen_token_kl=torch.rand(b, t, generator=gen, dtype=dtype) * cm * 0.1,
            rejected_token_kl=torch.rand(b, t, generator=gen, dtype=dtype) * rm * 0.1,
        )
    if kind == "unpaired":
        mask, kl_mask = msk(), msk()
        labels = torch.arange(b) % 2 == 0
        return UnpairedBatch(
            policy_logps=lp() * mask,
            mask=mask,
            labels=labels,
            ref_logps=lp() * mask,
            kl_policy_logps=lp() * kl_mask,
            kl_ref_logps=lp() * kl_mask,
            kl_mask=kl_mask,
        )
    if kind == "scores":
        steps = msk()
        return ScoreBatch(
            chosen=torch.randn(b, generator=gen, dtype=dtype),
            rejected=torch.randn(b, generator=gen, dtype=dtype),
            margins=torch.rand(b, generator=gen, dtype=dtype),
            scores=torch.randn(b, generator=gen, dtype=dtype),
            targets=torch.randn(b, generator=gen, dtype=dtype),
            step_logits=torch.randn(b, t, generator=gen, dtype=dtype),
            step_labels=(torch.rand(b, t, generator=gen) > 0.5).to(dtype),
            step_mask=steps,
        )
    if kind == "rollout":
        mask = msk()
        logps = lp() * mask
        return RolloutBatch(
            logps=logps,
            mask=mask,
            advantages=torch.randn(b, t, generator=gen, dtype=dtype) * mask,
            old_logps=(logps + 0.05 * torch.randn(b, t, generator=gen, dtype=dtype)) * mask,
            ref_logps=(logps + 0.05 * torch.randn(b, t, generator=gen, dtype=dtype)) * mask,
            rollout_logps=(logps + 0.05 * torch.randn(b, t, generator=gen, dtype=dtype)) * mask,
            values=torch.randn(b, t, generator=gen, dtype=dtype) * mask,
            old_values=torch.randn(b, t, generator=gen, dtype=dtype) * mask,
            returns=torch.randn(b, t, generator=gen, dtype=dtype) * mask,
            entropy=torch.rand(b, t, generator=gen, dtype=dtype) * mask,
            rewards=torch.rand(b, generator=gen, dtype=dtype),
            group_ids=torch.zeros(b, dtype=torch.long),
        )
    if kind == "rewards":
        mask = msk()
        return RewardBatch(
            rewards=torch.rand(b, generator=gen, dtype=dtype),
            mask=mask,
            group_ids=torch.zeros(b, dtype=torch.long),
            token_rewards=torch.rand(b, t, generator=gen, dtype=dtype) * mask,
            values=torch.randn(b, t, generator=gen, dtype=dtype) * mask,
            baseline_rewards=torch.rand(b, generator=gen, dtype=dtype),
        )
    raise ValueError(f"unknown input kind {kind!r}")


def registrar(family: str, input_kind: str, **fixed: Any) -> Callable[..., Any]:
    """A ``register`` with a family's fixed metadata: ``_reg(name, citation, formula, params, aliases=(), **kw)``."""

    def reg(
        name: str,
        citation: str,
        formula: str,
        params: type,
        aliases: tuple[str, ...] = (),
        **kw: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return register(
            name,
            family=family,  # type: ignore[arg-type]
            input_kind=input_kind,  # type: ignore[arg-type]
            citation=citation,
            formula=formula,
            params=params,
            aliases=aliases,
            **fixed,
            **kw,
        )

    return reg
