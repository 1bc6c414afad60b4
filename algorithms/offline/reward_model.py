"""Reward-model losses over scalar scores (outcome RMs) or per-step logits (process RMs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.common import require
from ptlab.algorithms.registry import NoParams, param, register
from ptlab.algorithms.types import LossOutput, ScoreBatch

FAMILY = "reward-model"


@dataclass(frozen=True)
class RmBtParams:
    center_rewards_coefficient: float = param(0.0, ge=0, doc="TRL: weight of mean((r_w + r_l)²)")


def _bt(batch: ScoreBatch, margin: Tensor | float, center: float, entry: str) -> LossOutput:
    chosen = require(batch.chosen, "chosen", entry)
    rejected = require(batch.rejected, "rejected", entry)
    loss = -F.logsigmoid(chosen - rejected - margin)
    if center:
        loss = loss + center * (chosen + rejected) ** 2
    gap = (chosen - rejected).detach()
    return LossOutput(loss=loss, metrics={"margin": gap, "accuracy": (gap > 0).to(gap.dtype)})


@register(
    "rm_bt",
    family=FAMILY,
    input_kind="scores",
    citation="Ouyang+ 2022 (InstructGPT), arXiv:2203.02155",
    formula="−log σ(r(y_w) − r(y_l))",
    params=RmBtParams,
)
def rm_bt_loss(batch: ScoreBatch, params: RmBtParams) -> LossOutput:
    """Bradley–Terry pairwise reward-model loss (TRL RewardTrainer without margins)."""
    return _bt(batch, 0.0, params.center_rewards_coefficient, "rm_bt")


@register(
    "rm_bt_margin",
    family=FAMILY,
    input_kind="scores",
    citation="Touvron+ 2023 (Llama 2), arXiv:2307.09288",
    formula="−log σ(r(y_w) − r(y_l) − m)",
    params=RmBtParams,
)
def rm_bt_margin_loss(batch: ScoreBatch, params: RmBtParams) -> LossOutput:
    """Bradley–Terry with a preference-strength margin m (``batch.margins``), as in Llama 2."""
    margin = require(batch.margins, "margins", "rm_bt_margin")
    return _bt(batch, margin, params.center_rewards_coefficient, "rm_bt_margin")


@register(
    "rm_regression",
    family=FAMILY,
    input_kind="scores",
    citation="scalar-label regression reward model (no single source)",
    formula="(r(y) − t)²",
    params=NoParams,
)
def rm_regression_loss(batch: ScoreBatch, params: NoParams) -> LossOutput:
    """Squared error to scalar labels (e.g. verifier scores in [0, 1])."""
    scores = require(batch.scores, "scores", "rm_regression")
    targets = require(batch.targets, "targets", "rm_regression")
    return LossOutput(loss=(scores - targets) ** 2, metrics={"error": (scores - targets).detach()})


@dataclass(frozen=True)
class PrmBceParams:
    pos_weight: float = param(1.0, gt=0, doc="weight of positive (correct-step) labels")


@register(
    "prm_bce",
    family=FAMILY,
    input_kind="scores",
    citation="Lightman+ 2023, arXiv:2305.20050",
    formula="BCE(σ(s_k), label_k) per reasoning step k",
    params=PrmBceParams,
)
def prm_bce_loss(batch: ScoreBatch, params: PrmBceParams) -> LossOutput:
    """Process reward model: per-step binary cross-entropy, (B, S), zero on padded steps."""
    logits = require(batch.step_logits, "step_logits", "prm_bce")
    labels = require(batch.step_labels, "step_labels", "prm_bce").to(logits.dtype)
    mask = require(batch.step_mask, "step_mask", "prm_bce").to(logits.dtype)
    pos_weight = torch.tensor(params.pos_weight, dtype=logits.dtype)
    loss = (
        F.binary_cross_entropy_with_logits(logits, labels, reduction="none", pos_weight=pos_weight)
        * mask
    )
    acc = ((logits.detach() > 0).to(logits.dtype) == labels).to(logits.dtype) * mask
    return LossOutput(loss=loss, metrics={"step_accuracy": acc}, token_level=True)
