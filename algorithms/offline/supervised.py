"""Supervised losses over one completion per row; token-level outputs (B, T), zero off the mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ptlab.algorithms.registry import NoParams, param, register
from ptlab.algorithms.types import LossOutput, SingleBatch


def token_nll(logps: Tensor, mask: Tensor) -> Tensor:
    """−log p per completion token (B, T), zero where ``mask`` is 0."""
    return -logps * mask.to(logps.dtype)


def _out(loss: Tensor, batch: SingleBatch) -> LossOutput:
    return LossOutput(
        loss=loss, metrics={"nll": token_nll(batch.logps, batch.mask).detach()}, token_level=True
    )


@register(
    "sft",
    family="sft",
    input_kind="single",
    citation="maximum likelihood on demonstrations (no single source)",
    formula="−log πθ(y_t | x, y_<t) on completion tokens",
    params=NoParams,
)
def sft_loss(batch: SingleBatch, params: NoParams) -> LossOutput:
    """Token NLL on completion tokens (prompt tokens masked); aggregate with ``common.aggregate``."""
    return _out(token_nll(batch.logps, batch.mask), batch)


@dataclass(frozen=True)
class RftParams:
    samples_per_prompt: int = param(4, ge=1, doc="self-samples drawn per prompt before filtering")
    keep: str = param("correct", choices=("correct", "correct_dedup"), doc="verifier filter")


@register(
    "rft",
    family="sft",
    input_kind="single",
    citation="Yuan+ 2023, arXiv:2308.01825",
    formula="SFT NLL on self-samples the verifier accepts (rejection-sampling fine-tuning)",
    params=RftParams,
    needs_rollouts=True,
    trainer={"data": "self-samples filtered by the domain verifier"},
)
def rft_loss(batch: SingleBatch, params: RftParams) -> LossOutput:
    """RFT: the trainer samples and filters (``trainer`` metadata); the loss is the SFT NLL."""
    return _out(token_nll(batch.logps, batch.mask), batch)


@register(
    "dft",
    family="sft",
    input_kind="single",
    citation="Wu+ 2025, arXiv:2508.05629",
    formula="−sg(p_t)·log p_t on completion tokens",
    params=NoParams,
)
def dft_loss(batch: SingleBatch, params: NoParams) -> LossOutput:
    """Dynamic fine-tuning: each token's NLL is weighted by its own (detached) probability."""
    weight = torch.exp(batch.logps.detach())
    return _out(weight * token_nll(batch.logps, batch.mask), batch)
