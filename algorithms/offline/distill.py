"""Distillation losses from teacher logits; token-level outputs (B, T), zero off the mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.common import require
from ptlab.algorithms.registry import param, register
from ptlab.algorithms.types import LossOutput, SingleBatch

FAMILY = "distill"


def generalized_jsd(
    student_logits: Tensor, teacher_logits: Tensor, beta: float, temperature: float
) -> Tensor:
    """Per-token generalised JSD (B, T) (GKD Eq. 1): β·KL(p_T‖m) + (1−β)·KL(p_S‖m), m = βp_T + (1−β)p_S.

    β = 0 is KL(p_T‖p_S) (forward KL), β = 1 is KL(p_S‖p_T) (reverse KL), both at temperature τ.
    """
    s = F.log_softmax(student_logits / temperature, dim=-1)
    t = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        return (t.exp() * (t - s)).sum(-1)
    if beta == 1:
        return (s.exp() * (s - t)).sum(-1)
    b = torch.tensor(beta, dtype=s.dtype)
    m = torch.logsumexp(torch.stack([s + torch.log1p(-b), t + torch.log(b)]), dim=0)
    return beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)


def _logits(batch: SingleBatch, entry: str) -> tuple[Tensor, Tensor]:
    return require(batch.logits, "logits", entry), require(
        batch.teacher_logits, "teacher_logits", entry
    )


def _divergence(
    batch: SingleBatch, beta: float, temperature: float, scale_t2: bool, entry: str
) -> LossOutput:
    student, teacher = _logits(batch, entry)
    per_token = generalized_jsd(student, teacher, beta, temperature)
    if scale_t2:
        per_token = per_token * temperature**2
    loss = per_token * batch.mask.to(per_token.dtype)
    return LossOutput(loss=loss, metrics={"divergence": loss.detach()}, token_level=True)


@dataclass(frozen=True)
class KdParams:
    temperature: float = param(1.0, gt=0)
    scale_t2: bool = param(False, doc="multiply by τ² (Hinton) — off by default, as in TRL GKD")


@register(
    "kd_forward",
    family=FAMILY,
    input_kind="single",
    citation="Hinton+ 2015, arXiv:1503.02531",
    formula="KL(p_T^τ ‖ p_S^τ) per token",
    params=KdParams,
    needs_teacher=True,
)
def kd_forward_loss(batch: SingleBatch, params: KdParams) -> LossOutput:
    """Forward-KL distillation (mean-seeking); τ² scaling is the ``scale_t2`` option."""
    return _divergence(batch, 0.0, params.temperature, params.scale_t2, "kd_forward")


@register(
    "kd_reverse",
    family=FAMILY,
    input_kind="single",
    citation="Gu+ 2024 (MiniLLM), arXiv:2306.08543",
    formula="KL(p_S^τ ‖ p_T^τ) per token",
    params=KdParams,
    needs_teacher=True,
)
def kd_reverse_loss(batch: SingleBatch, params: KdParams) -> LossOutput:
    """Reverse-KL distillation (mode-seeking), token-level form on the given sequences."""
    return _divergence(batch, 1.0, params.temperature, params.scale_t2, "kd_reverse")


@dataclass(frozen=True)
class GkdParams:
    beta: float = param(0.5, ge=0, le=1, doc="JSD interpolation (0 = forward KL, 1 = reverse KL)")
    temperature: float = param(1.0, gt=0)
    lmbda: float = param(0.5, ge=0, le=1, doc="fraction of student-generated sequences (trainer)")


@register(
    "gkd",
    family=FAMILY,
    input_kind="single",
    citation="Agarwal+ 2024, arXiv:2306.13649",
    formula="JSD_β(p_T ‖ p_S) per token on a λ-mix of on-/off-policy sequences",
    params=GkdParams,
    needs_teacher=True,
    trainer={"on_policy_fraction": "lmbda"},
)
def gkd_loss(batch: SingleBatch, params: GkdParams) -> LossOutput:
    """GKD's generalised JSD (TRL ``generalized_jsd_loss``); the trainer mixes in student samples."""
    return _divergence(batch, params.beta, params.temperature, False, "gkd")


@dataclass(frozen=True)
class OnPolicyDistillParams:
    temperature: float = param(1.0, gt=0)


@register(
    "on_policy_distill",
    family=FAMILY,
    input_kind="single",
    citation="Agarwal+ 2024 (GKD with λ=1, β=1), arXiv:2306.13649",
    formula="KL(p_S ‖ p_T) per token on student-sampled sequences",
    params=OnPolicyDistillParams,
    needs_teacher=True,
    needs_rollouts=True,
    trainer={"on_policy_fraction": 1.0},
)
def on_policy_distill_loss(batch: SingleBatch, params: OnPolicyDistillParams) -> LossOutput:
    """On-policy distillation: reverse KL on the student's own samples (the trainer samples)."""
    return _divergence(batch, 1.0, params.temperature, False, "on_policy_distill")


@dataclass(frozen=True)
class UldParams:
    lambda_: float = param(1.0, ge=0, doc="weight of the Wasserstein term")
    temperature: float = param(1.0, gt=0)
    ce_weight: float = param(1.0, ge=0, doc="weight of the student's NLL on the labels")


@register(
    "uld",
    family=FAMILY,
    input_kind="single",
    citation="Boizard+ 2024, arXiv:2402.12030",
    formula="NLL + λ·Σ_i |sort↓(p_S)_i − sort↓(p_T)_i| (vocabularies zero-padded)",
    params=UldParams,
    needs_teacher=True,
)
def uld_loss(batch: SingleBatch, params: UldParams) -> LossOutput:
    """Universal logit distillation: W1 between sorted probabilities, so vocabularies may differ."""
    student, teacher = _logits(batch, "uld")
    ps = torch.sort(F.softmax(student / params.temperature, -1), dim=-1, descending=True).values
    pt = torch.sort(F.softmax(teacher / params.temperature, -1), dim=-1, descending=True).values
    width = max(ps.shape[-1], pt.shape[-1])
    ps = F.pad(ps, (0, width - ps.shape[-1]))
    pt = F.pad(pt, (0, width - pt.shape[-1]))
    mask = batch.mask.to(ps.dtype)
    wasserstein = (ps - pt).abs().sum(-1) * mask
    loss = params.ce_weight * -batch.logps * mask + params.lambda_ * wasserstein
    return LossOutput(loss=loss, metrics={"wasserstein": wasserstein.detach()}, token_level=True)
