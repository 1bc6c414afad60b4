"""Paired offline preference losses with a reference model (DPO and its variants).

Notation: h = log πθ(y|x) − log πref(y|x) per sequence (token sums unless ``logp_reduction`` says
``mean``), Δ = h_w − h_l, σ the sigmoid. Every entry returns a per-pair loss (B,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.common import (
    REDUCTIONS,
    masked_sum,
    nll_rows,
    pair_logps,
    pair_logratios,
    preference_metrics,
    registrar,
    require,
    seq_logps,
    sigmoid_pref_loss,
)
from ptlab.algorithms.registry import param
from ptlab.algorithms.types import LossOutput, PairedBatch

FAMILY = "paired-offline"

_RED = param("sum", choices=REDUCTIONS, doc="token→sequence log-prob reduction (paper: sum)")


def _out(loss: Tensor, beta: float, h_w: Tensor, h_l: Tensor) -> LossOutput:
    return LossOutput(loss=loss, metrics=preference_metrics(beta * h_w, beta * h_l))


_reg = registrar(FAMILY, "paired", needs_reference=True)


# --- DPO and label-noise variants ---------------------------------------------------------------


@dataclass(frozen=True)
class DpoParams:
    beta: float = param(0.1, gt=0, doc="KL strength β (typical 0.01–0.5)")
    logp_reduction: str = _RED


@_reg(
    "dpo",
    "Rafailov+ 2023, arXiv:2305.18290",
    "−log σ(β(h_w − h_l))",
    DpoParams,
    aliases=("sigmoid",),
)
def dpo_loss(batch: PairedBatch, params: DpoParams) -> LossOutput:
    """DPO (Eq. 7): −log σ(βΔ). Default sum log-probs as in the paper and TRL ``sigmoid``."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "dpo")
    return _out(-F.logsigmoid(params.beta * (h_w - h_l)), params.beta, h_w, h_l)


@dataclass(frozen=True)
class LnDpoParams:
    beta: float = param(0.1, gt=0)
    logp_reduction: str = param(
        "mean", choices=REDUCTIONS, doc="mean = length-normalised (default)"
    )


@_reg(
    "ln_dpo",
    "Rafailov+ 2023, arXiv:2305.18290 (length-normalised; TRL sigmoid_norm)",
    "−log σ(β(h_w/|y_w| − h_l/|y_l|))",
    LnDpoParams,
    aliases=("sigmoid_norm",),
)
def ln_dpo_loss(batch: PairedBatch, params: LnDpoParams) -> LossOutput:
    """DPO on per-token mean log-ratios (TRL ``sigmoid_norm``); ``logp_reduction='sum'`` is DPO."""
    return dpo_loss(batch, DpoParams(params.beta, params.logp_reduction))  # type: ignore[arg-type]


@dataclass(frozen=True)
class CdpoParams:
    beta: float = param(0.1, gt=0)
    label_smoothing: float = param(0.1, ge=0, le=0.5, doc="assumed label-flip rate ε")
    logp_reduction: str = _RED


@_reg(
    "cdpo",
    "Mitchell 2023, 'A note on DPO with noisy preferences' (no arXiv id)",
    "−(1−ε)·log σ(βΔ) − ε·log σ(−βΔ)",
    CdpoParams,
)
def cdpo_loss(batch: PairedBatch, params: CdpoParams) -> LossOutput:
    """Conservative DPO: BCE against smoothed labels. Note: biased, unlike ``robust_dpo``; ε=0 is DPO."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "cdpo")
    loss = sigmoid_pref_loss(params.beta * (h_w - h_l), params.label_smoothing)
    return _out(loss, params.beta, h_w, h_l)


@dataclass(frozen=True)
class RobustDpoParams:
    beta: float = param(0.1, gt=0)
    label_smoothing: float = param(0.1, ge=0, lt=0.5, doc="label-flip rate ε (paper suggests 0.1)")
    logp_reduction: str = _RED


@_reg(
    "robust_dpo",
    "Chowdhury+ 2024, arXiv:2403.00409",
    "[(1−ε)(−log σ(βΔ)) − ε(−log σ(−βΔ))] / (1−2ε)",
    RobustDpoParams,
    aliases=("robust", "rdpo"),
)
def robust_dpo_loss(batch: PairedBatch, params: RobustDpoParams) -> LossOutput:
    """rDPO (Eq. 7): unbiased loss under flip rate ε; note the ε term *subtracts* (cf. ``cdpo``)."""
    eps = params.label_smoothing
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "robust_dpo")
    z = params.beta * (h_w - h_l)
    loss = (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)
    return _out(loss, params.beta, h_w, h_l)


# --- squared / margin losses ----------------------------------------------------------------------


@dataclass(frozen=True)
class IpoParams:
    beta: float = param(0.1, gt=0, doc="τ of the paper; target margin is 1/(2τ)")
    logp_reduction: str = param(
        "mean", choices=REDUCTIONS, doc="mean (TRL, confirmed with the authors) or sum (paper text)"
    )


@_reg("ipo", "Azar+ 2023, arXiv:2310.12036", "(Δ − 1/(2β))²", IpoParams)
def ipo_loss(batch: PairedBatch, params: IpoParams) -> LossOutput:
    """IPO (Eq. 17). Default per-token mean log-ratios (TRL); ``sum`` is the paper's literal form."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "ipo")
    return _out((h_w - h_l - 1 / (2 * params.beta)) ** 2, params.beta, h_w, h_l)


@dataclass(frozen=True)
class HingeParams:
    beta: float = param(0.1, gt=0, doc="1/δ of SLiC's margin")
    logp_reduction: str = _RED


@_reg(
    "hinge",
    "Zhao+ 2023 (SLiC-HF), arXiv:2305.10425",
    "max(0, 1 − βΔ)",
    HingeParams,
    aliases=("slic",),
)
def hinge_loss(batch: PairedBatch, params: HingeParams) -> LossOutput:
    """SLiC-style hinge on the reference-normalised margin (TRL ``hinge``)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "hinge")
    return _out(torch.relu(1 - params.beta * (h_w - h_l)), params.beta, h_w, h_l)


@dataclass(frozen=True)
class SppoHardParams:
    beta: float = param(0.1, gt=0)
    logp_reduction: str = _RED


@_reg(
    "sppo_hard",
    "Wu+ 2024, arXiv:2405.00675",
    "(h_w − 1/(2β))² + (h_l + 1/(2β))²",
    SppoHardParams,
)
def sppo_hard_loss(batch: PairedBatch, params: SppoHardParams) -> LossOutput:
    """SPPO with hard win probabilities P(y_w ≻ y_l) = 1 (Eq. 4.7 with P ∈ {0, 1})."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "sppo_hard")
    half = 0.5 / params.beta
    return _out((h_w - half) ** 2 + (h_l + half) ** 2, params.beta, h_w, h_l)


# --- absolute-likelihood variants -----------------------------------------------------------------


@dataclass(frozen=True)
class ExoParams:
    beta: float = param(0.1, gt=0)
    label_smoothing: float = param(1e-3, gt=0, lt=0.5, doc="ε of the target [1−ε, ε]; must be > 0")
    logp_reduction: str = _RED


@_reg(
    "exo", "Ji+ 2024, arXiv:2402.00856", "KL(σ(±βΔ) ‖ [1−ε, ε])", ExoParams, aliases=("exo_pair",)
)
def exo_loss(batch: PairedBatch, params: ExoParams) -> LossOutput:
    """EXO-pref (Eq. 16, K=2): reverse KL from the model's pair distribution to smoothed labels."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "exo")
    z = params.beta * (h_w - h_l)
    eps = params.label_smoothing
    loss = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-eps)) + torch.sigmoid(-z) * (
        F.logsigmoid(-z) - math.log(eps)
    )
    return _out(loss, params.beta, h_w, h_l)


@dataclass(frozen=True)
class NcaParams:
    beta: float = param(0.1, gt=0)
    logp_reduction: str = _RED


@_reg(
    "nca",
    "Chen+ 2024, arXiv:2402.05369",
    "−log σ(βh_w) − ½log σ(−βh_w) − ½log σ(−βh_l)",
    NcaParams,
    aliases=("nca_pair",),
)
def nca_loss(batch: PairedBatch, params: NcaParams) -> LossOutput:
    """NCA, pairwise form: optimises absolute (not relative) likelihoods of both responses."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "nca")
    rw, rl = params.beta * h_w, params.beta * h_l
    loss = -F.logsigmoid(rw) - 0.5 * F.logsigmoid(-rw) - 0.5 * F.logsigmoid(-rl)
    return _out(loss, params.beta, h_w, h_l)


def bco_terms(chosen_rewards: Tensor, rejected_rewards: Tensor, delta: Tensor | float) -> Tensor:
    """BCO's binary cross-entropy: −log σ(r_w − δ) − log σ(−(r_l − δ))."""
    return -F.logsigmoid(chosen_rewards - delta) - F.logsigmoid(-(rejected_rewards - delta))


@dataclass(frozen=True)
class BcoPairParams:
    beta: float = param(0.1, gt=0)
    reward_shift: str = param(
        "none",
        choices=("none", "running"),
        doc="none = TRL 1.16 bco_pair; running = paper's δ (batch.running_margin, else batch mean)",
    )
    logp_reduction: str = _RED


@_reg(
    "bco_pair",
    "Jung+ 2024, arXiv:2404.04656",
    "−log σ(βh_w − δ) − log σ(−(βh_l − δ))",
    BcoPairParams,
)
def bco_pair_loss(batch: PairedBatch, params: BcoPairParams) -> LossOutput:
    """Paired BCO. Default δ=0 as TRL 1.16; ``running`` uses the trainer's running mean of rewards."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "bco_pair")
    rw, rl = params.beta * h_w, params.beta * h_l
    delta: Tensor | float = 0.0
    if params.reward_shift == "running":
        delta = (
            batch.running_margin
            if batch.running_margin is not None
            else torch.cat([rw, rl]).detach().mean()
        )
    return _out(bco_terms(rw, rl, delta), params.beta, h_w, h_l)


@dataclass(frozen=True)
class ApoParams:
    beta: float = param(0.1, gt=0)
    logp_reduction: str = _RED


@_reg("apo_zero", "D'Oosterlinck+ 2024, arXiv:2408.06266", "(1 − σ(βh_w)) + σ(βh_l)", ApoParams)
def apo_zero_loss(batch: PairedBatch, params: ApoParams) -> LossOutput:
    """APO-zero (Eq. 7): push chosen up and rejected down (chosen better than the model's outputs)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "apo_zero")
    loss = 1 - torch.sigmoid(params.beta * h_w) + torch.sigmoid(params.beta * h_l)
    return _out(loss, params.beta, h_w, h_l)


@_reg("apo_down", "D'Oosterlinck+ 2024, arXiv:2408.06266", "σ(βh_w) + (1 − σ(βΔ))", ApoParams)
def apo_down_loss(batch: PairedBatch, params: ApoParams) -> LossOutput:
    """APO-down (Eq. 8): push both down, rejected more (chosen worse than the model's outputs)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "apo_down")
    loss = torch.sigmoid(params.beta * h_w) + 1 - torch.sigmoid(params.beta * (h_w - h_l))
    return _out(loss, params.beta, h_w, h_l)


# --- distribution-level and discovered losses -----------------------------------------------------


@dataclass(frozen=True)
class AotParams:
    beta: float = param(0.1, gt=0)
    label_smoothing: float = param(0.0, ge=0, le=0.5)
    logp_reduction: str = _RED


@_reg(
    "aot",
    "Melnyk+ 2024, arXiv:2406.05882",
    "−log σ(β(sort(log πθ_w − log πθ_l) − sort(log πref_w − log πref_l)))",
    AotParams,
    aliases=("aot_pair",),
)
def aot_loss(batch: PairedBatch, params: AotParams) -> LossOutput:
    """AOT (paired): 1-D optimal transport between the batch's policy and reference margins.

    Note: batch-coupled by construction (sorting over the batch); row b is the b-th quantile.
    """
    lw, ll = pair_logps(batch, params.logp_reduction)
    ref_w = seq_logps(
        require(batch.ref_chosen_logps, "ref_chosen_logps", "aot"),
        batch.chosen_mask,
        params.logp_reduction,
    )
    ref_l = seq_logps(
        require(batch.ref_rejected_logps, "ref_rejected_logps", "aot"),
        batch.rejected_mask,
        params.logp_reduction,
    )
    delta = torch.sort(lw - ll, dim=0).values - torch.sort(ref_w - ref_l, dim=0).values
    loss = sigmoid_pref_loss(params.beta * delta, params.label_smoothing)
    return _out(loss, params.beta, lw - ref_w, ll - ref_l)


@_reg(
    "aot_unpaired",
    "Melnyk+ 2024, arXiv:2406.05882",
    "−log σ(β(sort(h_w) − sort(h_l)))",
    AotParams,
)
def aot_unpaired_loss(batch: PairedBatch, params: AotParams) -> LossOutput:
    """AOT (unpaired): first-order stochastic dominance of chosen over rejected log-ratios."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "aot_unpaired")
    delta = torch.sort(h_w, dim=0).values - torch.sort(h_l, dim=0).values
    return _out(
        sigmoid_pref_loss(params.beta * delta, params.label_smoothing), params.beta, h_w, h_l
    )


@dataclass(frozen=True)
class DiscopopParams:
    beta: float = param(0.1, gt=0)
    tau: float = param(0.05, gt=0, lt=1, doc="modulation temperature (paper and TRL: 0.05)")
    logp_reduction: str = _RED


@_reg(
    "discopop",
    "Chan+ 2024, arXiv:2406.08414",
    "(1−σ(βΔ/τ))·(−log σ(βΔ)) + σ(βΔ/τ)·exp(−βΔ)",
    DiscopopParams,
)
def discopop_loss(batch: PairedBatch, params: DiscopopParams) -> LossOutput:
    """DiscoPOP / LRML (Eq. 5). Note: σ(z/τ)·e^{−z} is computed as exp(log σ(z/τ) − z), which
    equals TRL's product but stays finite for very negative z (TRL gives 0·inf = NaN there).
    """
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "discopop")
    z = params.beta * (h_w - h_l)
    modulation = torch.sigmoid(z / params.tau)
    loss = -F.logsigmoid(z) * (1 - modulation) + torch.exp(F.logsigmoid(z / params.tau) - z)
    return _out(loss, params.beta, h_w, h_l)


# --- f-divergence DPO ---------------------------------------------------------------------------


def _fdpo(batch: PairedBatch, beta: float, reduction: str, score, entry: str) -> LossOutput:  # type: ignore[no-untyped-def]
    h_w, h_l = pair_logratios(batch, reduction, entry)
    return _out(-F.logsigmoid(beta * (score(h_w) - score(h_l))), beta, h_w, h_l)


@dataclass(frozen=True)
class FdpoParams:
    beta: float = param(0.1, gt=0)
    logp_reduction: str = _RED


@dataclass(frozen=True)
class FdpoAlphaParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(
        0.5, gt=0, le=10, doc="α of the α-divergence (TRL default 0.5; α=1 is DPO)"
    )
    exp_clamp: float = param(80.0, gt=0, doc="clamp of (α−1)h before exp (TRL: 80 in fp32/bf16)")
    logp_reduction: str = _RED


@_reg(
    "fdpo_alpha",
    "Wang+ 2023, arXiv:2309.16240",
    "−log σ(β(f'(t_w) − f'(t_l))), f'(t) = (t^(α−1) − 1)/(α−1), t = πθ/πref",
    FdpoAlphaParams,
)
def fdpo_alpha_loss(batch: PairedBatch, params: FdpoAlphaParams) -> LossOutput:
    """f-DPO with the α-divergence; α→1 recovers reverse-KL DPO."""
    a = params.alpha
    if abs(a - 1.0) < 1e-6:
        return _fdpo(batch, params.beta, params.logp_reduction, lambda h: h, "fdpo_alpha")

    def score(h: Tensor) -> Tensor:
        return torch.expm1(torch.clamp((a - 1) * h, max=params.exp_clamp)) / (a - 1)

    return _fdpo(batch, params.beta, params.logp_reduction, score, "fdpo_alpha")


@_reg(
    "fdpo_js",
    "Wang+ 2023, arXiv:2309.16240",
    "−log σ(β(f'(t_w) − f'(t_l))), f'(t) = log(2t/(1+t))",
    FdpoParams,
)
def fdpo_js_loss(batch: PairedBatch, params: FdpoParams) -> LossOutput:
    """f-DPO with the Jensen–Shannon divergence: f'(t) = log 2 + log σ(h)."""
    return _fdpo(
        batch,
        params.beta,
        params.logp_reduction,
        lambda h: math.log(2) + F.logsigmoid(h),
        "fdpo_js",
    )


@dataclass(frozen=True)
class FdpoFklParams:
    beta: float = param(0.1, gt=0)
    exp_clamp: float = param(80.0, gt=0, doc="clamp of −h before exp; only active for h < −80")
    logp_reduction: str = _RED


@_reg(
    "fdpo_fkl",
    "Wang+ 2023, arXiv:2309.16240",
    "−log σ(β(f'(t_w) − f'(t_l))), f'(t) = 1 − 1/t",
    FdpoFklParams,
)
def fdpo_fkl_loss(batch: PairedBatch, params: FdpoFklParams) -> LossOutput:
    """f-DPO with the forward KL. Note: e^{−h} is clamped (TRL is not) so extreme h stay finite."""
    return _fdpo(
        batch,
        params.beta,
        params.logp_reduction,
        lambda h: -torch.expm1(torch.clamp(-h, max=params.exp_clamp)),
        "fdpo_fkl",
    )


# --- weighting and length control -----------------------------------------------------------------


@dataclass(frozen=True)
class WpoParams:
    beta: float = param(0.1, gt=0)
    weights: str = param(
        "aligned",
        choices=("aligned", "plain"),
        doc="aligned (paper Eq. 2, TRL): logp − log Σ_v p_v²; plain: mean logp",
    )
    logp_reduction: str = _RED


@_reg(
    "wpo",
    "Zhou+ 2024, arXiv:2406.11827",
    "w_w·w_l·(−log σ(βΔ)), w = exp(mean_t(log p_t − log Σ_v p_v²)) (no grad)",
    WpoParams,
    trainer={"log_sum_sq": "per-token log Σ_v πθ(v|·)² (detached) → chosen/rejected_log_sum_sq"},
)
def wpo_loss(batch: PairedBatch, params: WpoParams) -> LossOutput:
    """Weighted PO: DPO re-weighted by how on-policy each pair is (weights carry no gradient)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "wpo")
    weights = []
    for logps, mask, lss, field in (
        (
            batch.policy_chosen_logps,
            batch.chosen_mask,
            batch.chosen_log_sum_sq,
            "chosen_log_sum_sq",
        ),
        (
            batch.policy_rejected_logps,
            batch.rejected_mask,
            batch.rejected_log_sum_sq,
            "rejected_log_sum_sq",
        ),
    ):
        aligned = logps - require(lss, field, "wpo") if params.weights == "aligned" else logps
        # Clamp: for valid inputs mean(log p − log Σp²) ≤ log V ≪ 80; only inconsistent inputs reach it.
        weights.append(torch.exp(torch.clamp(seq_logps(aligned.detach(), mask, "mean"), max=80.0)))
    loss = -F.logsigmoid(params.beta * (h_w - h_l)) * weights[0] * weights[1]
    out = _out(loss, params.beta, h_w, h_l)
    out.metrics["wpo/weight"] = (weights[0] * weights[1]).detach()
    return out


def _ld_logps(logps: Tensor, mask: Tensor, shared: Tensor, alpha: float) -> Tensor:
    pos = mask.cumsum(-1)
    shared_part = masked_sum(logps, mask * (pos <= shared[:, None]).to(mask.dtype))
    tail_part = masked_sum(logps, mask * (pos > shared[:, None]).to(mask.dtype))
    return shared_part + alpha * tail_part


@dataclass(frozen=True)
class LdDpoParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(
        0.5, ge=0, le=1, doc="weight of tokens beyond the shorter response (1 = DPO)"
    )


@_reg(
    "ld_dpo",
    "Liu+ 2024, arXiv:2409.06411",
    "DPO on log π = Σ_{t≤min(|y_w|,|y_l|)} log p_t + α·Σ_{t>min} log p_t",
    LdDpoParams,
)
def ld_dpo_loss(batch: PairedBatch, params: LdDpoParams) -> LossOutput:
    """LD-DPO: the excess tokens of the longer response count with weight α (policy and reference)."""
    ref_w = require(batch.ref_chosen_logps, "ref_chosen_logps", "ld_dpo")
    ref_l = require(batch.ref_rejected_logps, "ref_rejected_logps", "ld_dpo")
    shared = torch.minimum(batch.chosen_mask.sum(-1), batch.rejected_mask.sum(-1))
    seq_logps(batch.policy_chosen_logps, batch.chosen_mask, name="chosen_mask")  # empty-row check
    seq_logps(batch.policy_rejected_logps, batch.rejected_mask, name="rejected_mask")
    h_w = _ld_logps(batch.policy_chosen_logps - ref_w, batch.chosen_mask, shared, params.alpha)
    h_l = _ld_logps(batch.policy_rejected_logps - ref_l, batch.rejected_mask, shared, params.alpha)
    return _out(-F.logsigmoid(params.beta * (h_w - h_l)), params.beta, h_w, h_l)


@dataclass(frozen=True)
class RDpoParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(0.01, ge=0, doc="length penalty per token of |y_w| − |y_l|")
    logp_reduction: str = _RED


@_reg(
    "r_dpo",
    "Park+ 2024, arXiv:2403.19159",
    "−log σ(βΔ − α(|y_w| − |y_l|))",
    RDpoParams,
)
def r_dpo_loss(batch: PairedBatch, params: RDpoParams) -> LossOutput:
    """Length-regularised DPO: a margin proportional to the length difference (Eq. 9)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "r_dpo")
    length_gap = batch.chosen_mask.sum(-1) - batch.rejected_mask.sum(-1)
    loss = -F.logsigmoid(params.beta * (h_w - h_l) - params.alpha * length_gap.to(h_w.dtype))
    return _out(loss, params.beta, h_w, h_l)


# --- margins from external signals ----------------------------------------------------------------


@dataclass(frozen=True)
class OdpoParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(1.0, ge=0, doc="offset scale α")
    offset_transform: str = param(
        "identity",
        choices=("identity", "log"),
        doc="f in Δ_r = α·f(margin); identity default since verifier rewards are 0/1 (log(1) = 0)",
    )
    logp_reduction: str = _RED


@_reg("odpo", "Amini+ 2024, arXiv:2402.10571", "−log σ(βΔ − α·f(r_w − r_l))", OdpoParams)
def odpo_loss(batch: PairedBatch, params: OdpoParams) -> LossOutput:
    """ODPO: the chosen must beat the rejected by an offset growing with the reward gap (``margins``)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "odpo")
    margin = require(batch.margins, "margins", "odpo")
    if params.offset_transform == "log":
        if bool((margin <= 0).any()):
            raise ValueError("odpo: offset_transform='log' needs margins > 0 (use 'identity')")
        margin = torch.log(margin)
    loss = -F.logsigmoid(params.beta * (h_w - h_l) - params.alpha * margin)
    return _out(loss, params.beta, h_w, h_l)


@dataclass(frozen=True)
class DpopParams:
    beta: float = param(0.1, gt=0)
    lambda_: float = param(50.0, ge=0, doc="penalty weight λ (paper: 50)")
    logp_reduction: str = _RED


@_reg(
    "dpop",
    "Pal+ 2024, arXiv:2402.13228",
    "−log σ(β(Δ − λ·max(0, log πref(y_w) − log πθ(y_w))))",
    DpopParams,
    aliases=("dpo_positive",),
)
def dpop_loss(batch: PairedBatch, params: DpopParams) -> LossOutput:
    """DPO-Positive (Eq. 3): penalise the chosen likelihood falling below the reference's."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "dpop")
    penalty = torch.relu(-h_w)
    loss = -F.logsigmoid(params.beta * (h_w - h_l - params.lambda_ * penalty))
    return _out(loss, params.beta, h_w, h_l)


@dataclass(frozen=True)
class RpoParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(1.0, ge=0, doc="NLL weight α (paper: 1)")
    nll_reduction: str = param(
        "token_mean", choices=("token_mean", "seq_mean"), doc="TRL: token_mean"
    )
    logp_reduction: str = _RED


@_reg("rpo", "Pang+ 2024, arXiv:2404.19733", "−log σ(βΔ) + α·NLL(y_w)", RpoParams)
def rpo_loss(batch: PairedBatch, params: RpoParams) -> LossOutput:
    """Iterative-RPO objective: DPO plus the chosen NLL (TRL ``loss_type=['sigmoid','sft']``)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "rpo")
    nll = nll_rows(batch.policy_chosen_logps, batch.chosen_mask, params.nll_reduction)
    out = _out(-F.logsigmoid(params.beta * (h_w - h_l)) + params.alpha * nll, params.beta, h_w, h_l)
    out.metrics["nll"] = nll.detach()
    return out


@dataclass(frozen=True)
class RewardAwarePoParams:
    beta: float = param(0.1, gt=0)
    eta: float = param(1.0, gt=0, doc="scale η of the explicit reward gap")
    distance: str = param("squared", choices=("squared", "bwd_kl", "fwd_kl"))
    logp_reduction: str = _RED


def _bernoulli_kl(p_logit: Tensor, q_logit: Tensor) -> Tensor:
    """KL(Bern(σ(p)) ‖ Bern(σ(q)))."""
    return torch.sigmoid(p_logit) * (F.logsigmoid(p_logit) - F.logsigmoid(q_logit)) + torch.sigmoid(
        -p_logit
    ) * (F.logsigmoid(-p_logit) - F.logsigmoid(-q_logit))


@_reg(
    "reward_aware_po",
    "Sun+ 2025 (NVIDIA), arXiv:2502.00203",
    "D(βΔ ‖ η(r_w − r_l)), D ∈ {½(·−·)², Bernoulli KL bwd/fwd}",
    RewardAwarePoParams,
)
def reward_aware_po_loss(batch: PairedBatch, params: RewardAwarePoParams) -> LossOutput:
    """RPO: match the implicit reward gap to the given reward gap under a chosen distance."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "reward_aware_po")
    implicit = params.beta * (h_w - h_l)
    rw = require(batch.chosen_rewards, "chosen_rewards", "reward_aware_po")
    rl = require(batch.rejected_rewards, "rejected_rewards", "reward_aware_po")
    explicit = params.eta * (rw - rl)
    if params.distance == "squared":
        loss = 0.5 * (implicit - explicit) ** 2
    elif params.distance == "bwd_kl":
        loss = _bernoulli_kl(implicit, explicit)
    else:
        loss = _bernoulli_kl(explicit, implicit)
    return _out(loss, params.beta, h_w, h_l)


@dataclass(frozen=True)
class CalDpoParams:
    beta: float = param(0.1, gt=0, doc="calibration targets are ±1/(2β)")
    logp_reduction: str = _RED


@_reg(
    "cal_dpo",
    "Xiao+ 2024, arXiv:2412.14516",
    "−log σ(h_w − h_l) + (h_w − 1/(2β))² + (h_l + 1/(2β))²",
    CalDpoParams,
)
def cal_dpo_loss(batch: PairedBatch, params: CalDpoParams) -> LossOutput:
    """Cal-DPO: the contrastive term plus a calibration of each implicit reward to ±1/(2β)."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "cal_dpo")
    half = 0.5 / params.beta
    loss = -F.logsigmoid(h_w - h_l) + (h_w - half) ** 2 + (h_l + half) ** 2
    return _out(loss, params.beta, h_w, h_l)


@dataclass(frozen=True)
class BetaDpoParams:
    beta: float = param(0.1, gt=0, doc="base β0")
    alpha: float = param(0.5, ge=0, doc="sensitivity of β to the margin gap")
    m0: float = param(0.0, doc="reference margin M0 when the trainer gives no running_margin")
    min_beta: float = param(1e-3, gt=0)
    logp_reduction: str = _RED


@_reg(
    "beta_dpo",
    "Wu+ 2024, arXiv:2407.08639",
    "−log σ(β_b Δ), β_b = β0·(1 + α(mean_i β0Δ_i − M0))",
    BetaDpoParams,
    trainer={"running_stat": "mean implicit-reward margin → batch.running_margin"},
)
def beta_dpo_loss(batch: PairedBatch, params: BetaDpoParams) -> LossOutput:
    """β-DPO batch-level β (Eq. 7). Note: the paper's β-guided data filtering is not applied here."""
    h_w, h_l = pair_logratios(batch, params.logp_reduction, "beta_dpo")
    margins = (params.beta * (h_w - h_l)).detach()
    m0 = batch.running_margin if batch.running_margin is not None else params.m0
    beta_b = torch.clamp(
        params.beta * (1 + params.alpha * (margins.mean() - m0)), min=params.min_beta
    )
    out = _out(-F.logsigmoid(beta_b * (h_w - h_l)), params.beta, h_w, h_l)
    out.metrics["beta"] = beta_b.detach()
    return out


@dataclass(frozen=True)
class AlphaDpoParams:
    beta: float = param(2.5, gt=0)
    gamma: float = param(1.0, ge=0, doc="absolute target margin γ (SimPO-style)")
    alpha: float = param(
        0.1, ge=0, doc="weight of the adaptive, batch-standardised reference margin"
    )
    eps: float = param(1e-6, gt=0)


@_reg(
    "alpha_dpo",
    "Wu+ 2025, arXiv:2410.10148",
    "−log σ(β(Δ̄π − sg(α·z(Δ̄h))) − γ), Δ̄ = length-normalised, z = batch standardisation",
    AlphaDpoParams,
)
def alpha_dpo_loss(batch: PairedBatch, params: AlphaDpoParams) -> LossOutput:
    """AlphaDPO: SimPO margin plus an instance-adaptive margin from the reference log-ratio gap.

    Note: our reading of the paper's Eq. 8; the adaptive margin is standardised over the batch
    (zero for a batch of one) and carries no gradient.
    """
    lw, ll = pair_logps(batch, "mean")
    h_w, h_l = pair_logratios(batch, "mean", "alpha_dpo")
    gap = (h_w - h_l).detach()
    z = (gap - gap.mean()) / (gap.std(unbiased=False) + params.eps) if gap.numel() > 1 else gap * 0
    loss = -F.logsigmoid(params.beta * (lw - ll - params.alpha * z) - params.gamma)
    return _out(loss, params.beta, lw, ll)


@dataclass(frozen=True)
class TdpoParams:
    beta: float = param(0.1, gt=0)
    alpha: float = param(0.5, ge=0, doc="weight of the sequential-KL term")
    variant: int = param(2, choices=(1, 2), doc="TDPO2 stops the gradient of the chosen KL")


@_reg(
    "tdpo",
    "Zeng+ 2024, arXiv:2404.11999",
    "−log σ(βΔ − α·β(KL_seq(y_l) − sg?(KL_seq(y_w))))",
    TdpoParams,
    trainer={"token_kl": "per-token KL(πref‖πθ) over the vocabulary → chosen/rejected_token_kl"},
)
def tdpo_loss(batch: PairedBatch, params: TdpoParams) -> LossOutput:
    """Token-level DPO (Eq. 20/24). Needs per-token KL(πref‖πθ) from the trainer (with grad)."""
    h_w, h_l = pair_logratios(batch, "sum", "tdpo")
    kl_w = masked_sum(require(batch.chosen_token_kl, "chosen_token_kl", "tdpo"), batch.chosen_mask)
    kl_l = masked_sum(
        require(batch.rejected_token_kl, "rejected_token_kl", "tdpo"), batch.rejected_mask
    )
    if params.variant == 2:
        kl_w = kl_w.detach()
    delta = params.beta * (kl_l - kl_w)
    out = _out(
        -F.logsigmoid(params.beta * (h_w - h_l) - params.alpha * delta), params.beta, h_w, h_l
    )
    out.metrics["kl/chosen"], out.metrics["kl/rejected"] = kl_w.detach(), kl_l.detach()
    return out


# --- DPO with a moving reference (the trainer updates πref; the loss is DPO's) ---------------------


@dataclass(frozen=True)
class TrDpoParams:
    beta: float = param(0.1, gt=0)
    update: str = param("soft", choices=("soft", "hard"))
    tau: float = param(0.6, ge=0, le=1, doc="soft: πref ← τ·πθ + (1−τ)·πref (TRL mixup α 0.6)")
    sync_steps: int = param(512, ge=1, doc="steps between reference updates (TRL default 512)")
    logp_reduction: str = _RED


@_reg(
    "tr_dpo",
    "Gorbatovski+ 2024, arXiv:2404.09656",
    "DPO with πref ← τπθ + (1−τ)πref (soft) or πθ (hard) every k steps",
    TrDpoParams,
    trainer={"reference_update": "trust-region"},
)
def tr_dpo_loss(batch: PairedBatch, params: TrDpoParams) -> LossOutput:
    """TR-DPO: the DPO loss; the reference update (soft/hard, every k) is done by the trainer."""
    return dpo_loss(batch, DpoParams(params.beta, params.logp_reduction))  # type: ignore[arg-type]


@dataclass(frozen=True)
class BemaParams:
    beta: float = param(0.1, gt=0)
    update_freq: int = param(400, ge=1, doc="steps between BEMA reference updates (TRL default)")
    ema_power: float = param(0.5, ge=0, le=1)
    bias_power: float = param(0.2, ge=0, le=1)
    logp_reduction: str = _RED


@_reg(
    "bema",
    "BEMA reference (as in TRL's BEMACallback), arXiv:2508.00180",
    "DPO with πref = bias-corrected EMA of πθ (updated every k steps)",
    BemaParams,
    trainer={"reference_update": "bema"},
)
def bema_loss(batch: PairedBatch, params: BemaParams) -> LossOutput:
    """DPO against a BEMA reference (TRL's BEMA callback); the trainer maintains the reference."""
    return dpo_loss(batch, DpoParams(params.beta, params.logp_reduction))  # type: ignore[arg-type]


@dataclass(frozen=True)
class MpoParams:
    beta: float = param(0.1, gt=0)
    preference_weight: float = param(0.8, ge=0)
    quality_weight: float = param(0.2, ge=0)
    generation_weight: float = param(1.0, ge=0)
    nll_reduction: str = param("token_mean", choices=("token_mean", "seq_mean"))


@_reg(
    "mpo",
    "Wang+ 2024, arXiv:2411.10442",
    "w_p·DPO + w_q·BCO-pair + w_g·NLL(y_w)",
    MpoParams,
)
def mpo_loss(batch: PairedBatch, params: MpoParams) -> LossOutput:
    """Mixed PO (TRL ``loss_type=['sigmoid','bco_pair','sft']``, weights 0.8/0.2/1.0)."""
    h_w, h_l = pair_logratios(batch, "sum", "mpo")
    rw, rl = params.beta * h_w, params.beta * h_l
    nll = nll_rows(batch.policy_chosen_logps, batch.chosen_mask, params.nll_reduction)
    loss = (
        params.preference_weight * -F.logsigmoid(rw - rl)
        + params.quality_weight * bco_terms(rw, rl, 0.0)
        + params.generation_weight * nll
    )
    return _out(loss, params.beta, h_w, h_l)
