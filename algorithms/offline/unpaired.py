"""Unpaired binary-feedback losses (KTO, BCO, unpaired APO): one completion per row + a label."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.common import REDUCTIONS, log_ratio, require, seq_logps
from ptlab.algorithms.registry import param, register
from ptlab.algorithms.types import LossOutput, UnpairedBatch

FAMILY = "unpaired-offline"


def _logratio(batch: UnpairedBatch, reduction: str, entry: str) -> Tensor:
    ref = require(batch.ref_logps, "ref_logps", entry)
    return log_ratio(batch.policy_logps, ref, batch.mask, reduction)


def _metrics(rewards: Tensor, labels: Tensor) -> dict[str, Tensor]:
    r = rewards.detach()
    return {"rewards": r, "labels": labels.to(r.dtype)}


def _weighted(
    labels: Tensor, desirable: Tensor, undesirable: Tensor, dw: float, uw: float
) -> Tensor:
    return torch.where(labels, dw * desirable, uw * undesirable)


@dataclass(frozen=True)
class KtoParams:
    beta: float = param(0.1, gt=0)
    desirable_weight: float = param(1.0, gt=0, doc="λ_D")
    undesirable_weight: float = param(1.0, gt=0, doc="λ_U")
    z0: str = param(
        "mismatched",
        choices=("mismatched", "batch", "zero"),
        doc="reference point: mismatched-pair KL (paper, TRL), batch mean of h, or 0",
    )
    logp_reduction: str = param("sum", choices=REDUCTIONS)


def kto_reference_point(batch: UnpairedBatch, h: Tensor, mode: str) -> Tensor:
    """KTO's z0 (detached, clamped ≥ 0): mean KL estimate from mismatched (x, y') pairs."""
    if mode == "zero":
        return h.new_zeros(())
    if mode == "batch":
        return h.detach().mean().clamp(min=0)
    kl_mask = require(batch.kl_mask, "kl_mask", "kto")
    kl_policy = seq_logps(
        require(batch.kl_policy_logps, "kl_policy_logps", "kto"), kl_mask, name="kl_mask"
    )
    kl_ref = seq_logps(require(batch.kl_ref_logps, "kl_ref_logps", "kto"), kl_mask, name="kl_mask")
    return (kl_policy - kl_ref).detach().mean().clamp(min=0)


@register(
    "kto",
    family=FAMILY,
    input_kind="unpaired",
    citation="Ethayarajh+ 2024, arXiv:2402.01306",
    formula="λ_D(1 − σ(β(h − z0))) if desirable else λ_U(1 − σ(β(z0 − h)))",
    params=KtoParams,
    needs_reference=True,
)
def kto_loss(batch: UnpairedBatch, params: KtoParams) -> LossOutput:
    """KTO (Eq. 7/8). z0 defaults to the paper's and TRL's mismatched-pair estimate, clamped at 0."""
    h = _logratio(batch, params.logp_reduction, "kto")
    z0 = kto_reference_point(batch, h, params.z0)
    loss = _weighted(
        batch.labels.bool(),
        1 - torch.sigmoid(params.beta * (h - z0)),
        1 - torch.sigmoid(params.beta * (z0 - h)),
        params.desirable_weight,
        params.undesirable_weight,
    )
    metrics = _metrics(params.beta * h, batch.labels)
    metrics["kl"] = z0.detach()
    return LossOutput(loss=loss, metrics=metrics)


@dataclass(frozen=True)
class ApoUnpairedParams:
    beta: float = param(0.1, gt=0)
    desirable_weight: float = param(1.0, gt=0)
    undesirable_weight: float = param(1.0, gt=0)
    logp_reduction: str = param("sum", choices=REDUCTIONS)


@register(
    "apo_unpaired",
    family=FAMILY,
    input_kind="unpaired",
    citation="D'Oosterlinck+ 2024, arXiv:2408.06266",
    formula="1 − σ(βh) if desirable else σ(βh)",
    params=ApoUnpairedParams,
    aliases=("apo_zero_unpaired",),
    needs_reference=True,
)
def apo_unpaired_loss(batch: UnpairedBatch, params: ApoUnpairedParams) -> LossOutput:
    """Unpaired APO-zero (TRL KTO ``apo_zero_unpaired``)."""
    h = _logratio(batch, params.logp_reduction, "apo_unpaired")
    z = params.beta * h
    loss = _weighted(
        batch.labels.bool(),
        1 - torch.sigmoid(z),
        torch.sigmoid(z),
        params.desirable_weight,
        params.undesirable_weight,
    )
    return LossOutput(loss=loss, metrics=_metrics(z, batch.labels))


@dataclass(frozen=True)
class BcoParams:
    beta: float = param(0.1, gt=0)
    logp_reduction: str = param("sum", choices=REDUCTIONS)


@register(
    "bco",
    family=FAMILY,
    input_kind="unpaired",
    citation="Jung+ 2024, arXiv:2404.04656",
    formula="−log σ(βh − δ) if desirable else −log σ(−(βh − δ)), δ = running mean of βh",
    params=BcoParams,
    needs_reference=True,
    trainer={"running_stat": "mean implicit reward βh → batch.reward_shift"},
)
def bco_loss(batch: UnpairedBatch, params: BcoParams) -> LossOutput:
    """BCO (Eq. 8): a binary classifier whose logit is the implicit reward, shifted by δ.

    δ is the trainer's running mean (``batch.reward_shift``); without it, the detached batch mean.
    Note: the optional density-ratio (UDM) weighting of the paper is not part of this loss.
    """
    h = _logratio(batch, params.logp_reduction, "bco")
    r = params.beta * h
    delta = batch.reward_shift if batch.reward_shift is not None else r.detach().mean()
    loss = torch.where(batch.labels.bool(), -F.logsigmoid(r - delta), -F.logsigmoid(-(r - delta)))
    metrics = _metrics(r, batch.labels)
    metrics["delta"] = torch.as_tensor(delta).detach()
    return LossOutput(loss=loss, metrics=metrics)
