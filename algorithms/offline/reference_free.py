"""Reference-free paired preference losses (CPO, SimPO, ORPO, ...): no πref forward pass needed.

Notation: l_w, l_l = policy sequence log-probs (sum or per-token mean, per entry), Δ = l_w − l_l.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.common import (
    REDUCTIONS,
    log1mexp,
    nll_rows,
    pair_logps,
    preference_metrics,
    registrar,
    sigmoid_pref_loss,
)
from ptlab.algorithms.registry import NoParams, param
from ptlab.algorithms.types import LossOutput, PairedBatch

FAMILY = "reference-free"
_NLL = param("token_mean", choices=("token_mean", "seq_mean"), doc="TRL: token mean over the batch")


_reg = registrar(FAMILY, "paired")


def _with_nll(
    pref: Tensor, batch: PairedBatch, weight: float, reduction: str, rw: Tensor, rl: Tensor
) -> LossOutput:
    metrics = preference_metrics(rw, rl)
    if weight:
        nll = nll_rows(batch.policy_chosen_logps, batch.chosen_mask, reduction)
        metrics["nll"] = nll.detach()
        pref = pref + weight * nll
    return LossOutput(loss=pref, metrics=metrics)


@dataclass(frozen=True)
class CpoParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(1.0, ge=0, doc="NLL weight (TRL cpo_alpha)")
    label_smoothing: float = param(0.0, ge=0, le=0.5)
    logp_reduction: str = param("sum", choices=REDUCTIONS, doc="CPO/TRL: sum")
    nll_reduction: str = _NLL


@_reg("cpo", "Xu+ 2024, arXiv:2401.08417", "−log σ(β(l_w − l_l)) + α·NLL(y_w)", CpoParams)
def cpo_loss(batch: PairedBatch, params: CpoParams) -> LossOutput:
    """CPO (Eq. 3): DPO with a uniform reference plus a behaviour-cloning NLL on the chosen."""
    lw, ll = pair_logps(batch, params.logp_reduction)
    pref = sigmoid_pref_loss(params.beta * (lw - ll), params.label_smoothing)
    return _with_nll(
        pref, batch, params.alpha, params.nll_reduction, params.beta * lw, params.beta * ll
    )


@dataclass(frozen=True)
class SimpoParams:
    beta: float = param(2.0, gt=0, doc="paper range 2.0–2.5")
    gamma: float = param(1.0, ge=0, doc="target margin")
    gamma_mode: str = param(
        "absolute",
        choices=("absolute", "ratio"),
        doc="absolute: subtract γ (paper Eq. 6, TRL simpo_gamma); ratio: γ is γ/β (SimPO code)",
    )
    label_smoothing: float = param(0.0, ge=0, le=0.5)
    alpha: float = param(0.0, ge=0, doc="NLL weight (0 = pure SimPO)")
    logp_reduction: str = param("mean", choices=REDUCTIONS, doc="SimPO: length-normalised")
    nll_reduction: str = _NLL


def _simpo_margin(params: SimpoParams) -> float:
    return params.gamma if params.gamma_mode == "absolute" else params.gamma * params.beta


def _simpo(batch: PairedBatch, params: SimpoParams, rw: Tensor, rl: Tensor) -> LossOutput:
    pref = sigmoid_pref_loss(
        params.beta * (rw - rl) - _simpo_margin(params), params.label_smoothing
    )
    return _with_nll(
        pref, batch, params.alpha, params.nll_reduction, params.beta * rw, params.beta * rl
    )


@_reg(
    "simpo",
    "Meng+ 2024, arXiv:2405.14734",
    "−log σ(β(l̄_w − l̄_l) − γ), l̄ = mean token log-prob",
    SimpoParams,
)
def simpo_loss(batch: PairedBatch, params: SimpoParams) -> LossOutput:
    """SimPO (Eq. 6). Default γ absolute (paper/TRL); ``gamma_mode='ratio'`` reads γ as γ/β."""
    lw, ll = pair_logps(batch, params.logp_reduction)
    return _simpo(batch, params, lw, ll)


@dataclass(frozen=True)
class CpoSimpoParams(SimpoParams):
    alpha: float = param(1.0, ge=0, doc="NLL weight (TRL cpo_alpha)")


@_reg(
    "cpo_simpo",
    "Meng+ 2024, arXiv:2405.14734 + Xu+ 2024, arXiv:2401.08417",
    "SimPO + α·NLL(y_w)",
    CpoSimpoParams,
)
def cpo_simpo_loss(batch: PairedBatch, params: CpoSimpoParams) -> LossOutput:
    """CPO-SimPO: the SimPO margin loss plus CPO's chosen NLL (TRL CPO ``simpo`` with cpo_alpha)."""
    return simpo_loss(batch, params)


@dataclass(frozen=True)
class AlphapoParams(SimpoParams):
    alpha_shape: float = param(0.25, gt=0, le=5, doc="reward shape α; α→0 recovers SimPO")
    exp_clamp: float = param(80.0, gt=0, doc="clamp of −α·l̄ before exp (only extreme log-probs)")


@_reg(
    "alphapo",
    "Gupta+ 2025, arXiv:2501.03884",
    "−log σ(β(r_w − r_l) − γ), r = (1 − p̄^(−α))/α, p̄ = exp(l̄)",
    AlphapoParams,
)
def alphapo_loss(batch: PairedBatch, params: AlphapoParams) -> LossOutput:
    """AlphaPO: SimPO on the α-shaped reward (TRL CPO ``simpo`` with ``alpha``).

    Note: the catalog pointer 2507.03045 is wrong; the paper is arXiv:2501.03884.
    """
    lw, ll = pair_logps(batch, params.logp_reduction)
    a = params.alpha_shape

    def shape(lp: Tensor) -> Tensor:
        return -torch.expm1(torch.clamp(-a * lp, max=params.exp_clamp)) / a

    return _simpo(batch, params, shape(lw), shape(ll))


@dataclass(frozen=True)
class OrpoParams:
    beta: float = param(0.1, gt=0, doc="λ of the odds-ratio term (TRL beta)")
    nll_reduction: str = _NLL
    max_logp: float = param(
        -1e-7, lt=0, doc="mean log-probs are clamped here so log(1 − p) is finite"
    )


@_reg(
    "orpo",
    "Hong+ 2024, arXiv:2403.07691",
    "NLL(y_w) − λ·log σ(log odds(y_w) − log odds(y_l)), odds = p̄/(1 − p̄)",
    OrpoParams,
)
def orpo_loss(batch: PairedBatch, params: OrpoParams) -> LossOutput:
    """ORPO (Eq. 6–7) on per-token mean log-probs, as in the paper and TRL."""
    lw, ll = (torch.clamp(x, max=params.max_logp) for x in pair_logps(batch, "mean"))
    log_odds = (lw - ll) - (log1mexp(lw) - log1mexp(ll))
    out = _with_nll(
        -params.beta * F.logsigmoid(log_odds),
        batch,
        1.0,
        params.nll_reduction,
        params.beta * lw,
        params.beta * ll,
    )
    out.metrics["log_odds_ratio"] = log_odds.detach()
    return out


@_reg(
    "simper",
    "Xiao+ 2025, arXiv:2502.00883",
    "−exp(l̄_w) + exp(l̄_l) (inverse perplexities)",
    NoParams,
)
def simper_loss(batch: PairedBatch, params: NoParams) -> LossOutput:
    """SimPER: hyperparameter-free; raise the chosen's and lower the rejected's inverse perplexity.

    Note: the catalog pointer 2411.17210 is wrong; the paper is arXiv:2502.00883.
    """
    lw, ll = pair_logps(batch, "mean")
    return LossOutput(loss=-torch.exp(lw) + torch.exp(ll), metrics=preference_metrics(lw, ll))


@dataclass(frozen=True)
class SlicCalParams:
    delta: float = param(1.0, gt=0, doc="calibration margin δ")
    lambda_: float = param(0.1, ge=0, doc="weight of the cross-entropy regulariser")
    logp_reduction: str = param("sum", choices=REDUCTIONS)
    nll_reduction: str = _NLL


@_reg(
    "slic_cal",
    "Zhao+ 2023 (SLiC-HF), arXiv:2305.10425",
    "max(0, δ − l_w + l_l) + λ·NLL(y_w)",
    SlicCalParams,
)
def slic_cal_loss(batch: PairedBatch, params: SlicCalParams) -> LossOutput:
    """SLiC-HF rank calibration (Eq. 1) with the chosen sequence as the regularisation target."""
    lw, ll = pair_logps(batch, params.logp_reduction)
    return _with_nll(
        torch.relu(params.delta - lw + ll), batch, params.lambda_, params.nll_reduction, lw, ll
    )
