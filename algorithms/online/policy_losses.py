"""Online RL policy losses (family ``online-rl``, role ``policy_loss``).

Design (one contract for every entry): ``fn(batch: RolloutBatch, params) -> LossOutput`` with a
**per-token** loss of shape (B, T) and ``token_level=True``. Sequence-level objectives (GSPO,
GMPO, RLOO's sequence ratio, VESPO weights) broadcast their per-sequence value over the tokens of
that sequence. The trainer then adds the KL / entropy / value terms and reduces with an
aggregation mode (:mod:`ptlab.algorithms.online.aggregation`) — all of it in one place,
:func:`ptlab.algorithms.online.recipes.policy_objective`. Each entry's paper-default aggregation
and advantage estimator are in its ``trainer`` metadata (``aggregation``, ``advantage``).

``batch.old_logps`` None means on-policy (πold = sg(πθ)), as in TRL when ``num_iterations == 1``.
Metrics are detached masked means: ``clip_frac_low/high``, ``clip_fraction``, ``approx_kl``
(k3 of πold‖πθ), ``ratio_mean``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.online.aggregation import masked_mean
from ptlab.algorithms.registry import NoParams, param, register
from ptlab.algorithms.types import LossOutput, RolloutBatch

RATIO_LEVELS = ("token", "sequence", "sequence_sum")


def _old(batch: RolloutBatch) -> Tensor:
    return batch.logps.detach() if batch.old_logps is None else batch.old_logps


def _seq(x: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence masked mean as a (B, 1) column."""
    return masked_mean(x, mask, dim=-1).unsqueeze(-1)


def log_ratio(batch: RolloutBatch, level: str) -> Tensor:
    """log r: token (B, T); ``sequence`` = mean token log-ratio (GSPO, (B, 1));
    ``sequence_sum`` = summed log-ratio (TRL RLOOTrainer, (B, 1))."""
    d = batch.logps - _old(batch)
    if level == "token":
        return d
    if level == "sequence":
        return _seq(d, batch.mask)
    if level == "sequence_sum":
        return (d * batch.mask.to(d.dtype)).sum(-1, keepdim=True)
    raise ValueError(f"ratio_level={level!r} is not one of {list(RATIO_LEVELS)}")


def _base_metrics(batch: RolloutBatch) -> dict[str, Tensor]:
    d = (batch.logps - _old(batch)).detach()
    return {
        "approx_kl": masked_mean(torch.exp(-d) + d - 1.0, batch.mask),
        **(
            {"entropy": masked_mean(batch.entropy.detach(), batch.mask)}
            if batch.entropy is not None
            else {}
        ),
    }


def _clip_metrics(
    ratio: Tensor, adv: Tensor, mask: Tensor, low: float, high: float
) -> dict[str, Tensor]:
    ratio, adv = ratio.detach().expand_as(mask), adv.detach()
    is_low = ((ratio < low) & (adv < 0)).to(adv.dtype)
    is_high = ((ratio > high) & (adv > 0)).to(adv.dtype)
    return {
        "clip_frac_low": masked_mean(is_low, mask),
        "clip_frac_high": masked_mean(is_high, mask),
        "clip_fraction": masked_mean(torch.maximum(is_low, is_high), mask),
        "ratio_mean": masked_mean(ratio, mask),
    }


# --------------------------------------------------------------------------- clipped surrogate


@dataclass(frozen=True)
class ClipParams:
    """PPO-style clipped surrogate (PPO / GRPO conventions; TRL names in brackets)."""

    clip_low: float = param(0.2, ge=0, lt=1, doc="ε_low: ratio floor 1−ε_low [epsilon]")
    clip_high: float = param(0.2, ge=0, doc="ε_high: ratio ceiling 1+ε_high [epsilon_high]")
    dual_clip_c: float = param(
        0.0, ge=0, doc="dual-clip bound c>1 for A<0 (Ye+ 1912.09729); 0 = off"
    )
    delta: float = param(
        0.0, ge=0, doc="two-sided clip: cap r at δ (INTELLECT-2 2505.07291) [delta]; 0 = off"
    )
    ratio_level: str = param(
        "token", choices=RATIO_LEVELS, doc="token, GSPO sequence, or summed sequence ratio"
    )


def clipped_surrogate_loss(batch: RolloutBatch, params: ClipParams) -> LossOutput:
    """PPO clipped surrogate (Schulman+ 1707.06347 eq. 7), shared by every clip-family entry.

    l_t = −min(r·A, clip(r, 1−ε_low, 1+ε_high)·A), with r per token or per sequence; dual clip
    (A<0): l_t = min(l_t, −c·A); two-sided clip: r → min(r, δ) in the unclipped branch.

    Args: batch.logps/old_logps/advantages/mask (B, T).
    Note: gradients vanish exactly where the clip is active (A>0, r>1+ε_high; A<0, r<1−ε_low;
    dual clip A<0, r>c), as in TRL and verl.
    """
    c = params.dual_clip_c
    if 0 < c <= 1:
        raise ValueError(f"dual_clip_c={c} must be > 1 (or 0 to disable)")
    ratio = torch.exp(log_ratio(batch, params.ratio_level))
    adv = batch.advantages
    clipped = torch.clamp(ratio, 1 - params.clip_low, 1 + params.clip_high)
    unclipped = torch.clamp(ratio, max=params.delta) if params.delta > 0 else ratio
    loss = -torch.min(unclipped * adv, clipped * adv)
    metrics = _base_metrics(batch)
    if c > 0:
        loss = torch.where(adv < 0, torch.min(loss, -c * adv), loss)
        metrics["dual_clip_frac"] = masked_mean(
            ((ratio.detach() > c) & (adv < 0)).to(adv.dtype), batch.mask
        )
    metrics |= _clip_metrics(ratio, adv, batch.mask, 1 - params.clip_low, 1 + params.clip_high)
    return LossOutput(loss=loss.expand_as(batch.mask), metrics=metrics, token_level=True)


@dataclass(frozen=True)
class DualClipParams(ClipParams):
    """Dual-clip PPO: c = 3 (Ye+ 1912.09729 §4.1; verl clip_ratio_c default)."""

    dual_clip_c: float = param(3.0, gt=1, doc="dual-clip bound c for A<0")


@dataclass(frozen=True)
class DapoParams(ClipParams):
    """DAPO clip-higher: ε_low 0.2, ε_high 0.28 (Yu+ 2503.14476 §3.1)."""

    clip_high: float = param(0.28, ge=0, doc="ε_high (clip-higher)")


@dataclass(frozen=True)
class GspoParams(ClipParams):
    """GSPO: sequence ratio (geometric mean), ε 3e-4 / 4e-4 (Zheng+ 2507.18071 §5.1)."""

    clip_low: float = param(3e-4, ge=0, lt=1, doc="ε_low on the sequence ratio")
    clip_high: float = param(4e-4, ge=0, doc="ε_high on the sequence ratio")
    ratio_level: str = param("sequence", choices=RATIO_LEVELS, doc="GSPO uses the sequence ratio")


@dataclass(frozen=True)
class VapoParams(DapoParams):
    """VAPO: clip-higher PPO + positive-example LM loss weight μ (Yue+ 2504.05118 §4.3, μ=0.1)."""

    nll_coef: float = param(0.1, ge=0, doc="μ: weight of the NLL on completions with reward > 0")


def vapo_loss(batch: RolloutBatch, params: VapoParams) -> LossOutput:
    """VAPO policy loss (Yue+ 2504.05118 eq. 8–9): clip-higher PPO + μ·NLL on positive samples.

    l_t = l_t^clip − μ·1[R>0]·log πθ(y_t). The value-pretraining and decoupled/length-adaptive GAE
    parts of VAPO live in the critic and the ``gae`` estimator (``lam_adaptive_alpha``).
    """
    if batch.rewards is None:
        raise ValueError(
            "vapo needs batch.rewards (B,) to select positive samples for its NLL term"
        )
    out = clipped_surrogate_loss(batch, params)
    positive = (batch.rewards > 0).to(batch.logps.dtype).unsqueeze(-1)
    return LossOutput(
        loss=out.loss - params.nll_coef * positive * batch.logps,
        metrics=out.metrics,
        token_level=True,
    )


# --------------------------------------------------------------------------- rollout correction


@dataclass(frozen=True)
class RolloutISParams(ClipParams):
    """Clipped surrogate × truncated (TIS) or masked (MIS) importance weight πold/πrollout."""

    is_level: str = param(
        "token", choices=("token", "sequence"), doc="weight per token or per sequence"
    )
    is_min: float = param(0.0, ge=0, doc="lower bound of the weight (MIS masks below)")
    is_max: float = param(
        2.0, gt=0, doc="upper bound C (TIS truncates, MIS masks above); Yao+ use 2"
    )


def rollout_is_weights(batch: RolloutBatch, mode: str, level: str, lo: float, hi: float) -> Tensor:
    """Importance weight w = πold/πrollout for rollout-engine/trainer mismatch (Yao+ 2025 blog, TRL).

    ``truncate`` (TIS): w = clamp(w, lo, hi); ``mask`` (MIS): w = 0 outside [lo, hi]. Token level
    (B, T) or sequence level (B, 1) with the summed log difference. Detached.
    """
    if batch.rollout_logps is None:
        raise ValueError(
            "rollout correction needs batch.rollout_logps (log-probs reported by the rollout engine)"
        )
    diff = ((_old(batch) - batch.rollout_logps) * batch.mask.to(batch.logps.dtype)).detach()
    if level == "sequence":
        diff = diff.sum(-1, keepdim=True)
    w = torch.exp(diff)
    if mode == "truncate":
        return torch.clamp(w, min=lo, max=hi)
    if mode == "mask":
        return w.masked_fill((w < lo) | (w > hi), 0.0)
    raise ValueError(f"rollout correction mode={mode!r} is not one of ['truncate', 'mask']")


_IS_CITE = (
    "Yao+ 2025 'Your efficient RL framework secretly brings you off-policy RL training'; verl"
)


def _rollout_corrected(mode: str) -> Callable[[RolloutBatch, RolloutISParams], LossOutput]:
    def loss_fn(batch: RolloutBatch, params: RolloutISParams) -> LossOutput:
        w = rollout_is_weights(batch, mode, params.is_level, params.is_min, params.is_max)
        out = clipped_surrogate_loss(batch, params)
        metrics = out.metrics | {"is_weight_mean": masked_mean(w.expand_as(batch.mask), batch.mask)}
        return LossOutput(loss=out.loss * w, metrics=metrics, token_level=True)

    loss_fn.__doc__ = (
        f"Clipped surrogate × {mode}d rollout importance weight (TIS/MIS, Yao+ 2025; TRL vLLM IS)."
    )
    return loss_fn


# --------------------------------------------------------------------------- REINFORCE / GPG


def reinforce_loss(batch: RolloutBatch, params: NoParams) -> LossOutput:
    """REINFORCE (Williams 1992): l_t = −A_t · log πθ(y_t). No ratio, no clip, no old policy."""
    return LossOutput(
        loss=-batch.advantages * batch.logps, metrics=_base_metrics(batch), token_level=True
    )


# --------------------------------------------------------------------------- CISPO


@dataclass(frozen=True)
class CispoParams:
    """CISPO weight cap: ``absolute`` w = min(r, cap) (TRL, ScaleRL ε_max=5) or ``relative``
    w = clip(r, 1−ε_low, 1+ε_high) (MiniMax-M1 eq. 4, verl)."""

    cap_mode: str = param(
        "absolute", choices=("absolute", "relative"), doc="how the IS weight is capped"
    )
    cap: float = param(5.0, gt=0, doc="absolute cap on r [TRL epsilon_high]")
    clip_low: float = param(
        1.0, ge=0, le=1, doc="relative mode: floor 1−ε_low (1.0 = no floor, as MiniMax)"
    )
    clip_high: float = param(4.0, ge=0, doc="relative mode: ceiling 1+ε_high")


def cispo_loss(batch: RolloutBatch, params: CispoParams) -> LossOutput:
    """CISPO (MiniMax-M1 2506.13585 eq. 4): l_t = −sg(ŵ_t)·A_t·log πθ(y_t), ŵ the capped ratio.

    Note: every token keeps a gradient (the weight is clipped, not the update), unlike PPO.
    """
    ratio = torch.exp(batch.logps - _old(batch))
    if params.cap_mode == "absolute":
        w, lo, hi = torch.clamp(ratio, max=params.cap), 0.0, params.cap
    else:
        lo, hi = 1 - params.clip_low, 1 + params.clip_high
        w = torch.clamp(ratio, lo, hi)
    loss = -w.detach() * batch.advantages * batch.logps
    return LossOutput(
        loss=loss,
        metrics=_base_metrics(batch) | _clip_metrics(ratio, batch.advantages, batch.mask, lo, hi),
        token_level=True,
    )


# --------------------------------------------------------------------------- SAPO


@dataclass(frozen=True)
class SapoParams:
    """SAPO gate temperatures τ_pos / τ_neg (Qwen 2511.20347; TRL defaults 1.0 / 1.05)."""

    tau_pos: float = param(1.0, gt=0, doc="temperature for A>0")
    tau_neg: float = param(1.05, gt=0, doc="temperature for A<=0")


def sapo_loss(batch: RolloutBatch, params: SapoParams) -> LossOutput:
    """SAPO (2511.20347 eq. 5): l_t = −(4/τ)·σ(τ(r_t − 1))·A_t, τ = τ_pos if A>0 else τ_neg.

    The sigmoid gate replaces the hard clip: its gradient 4σ(1−σ)·∇r equals ∇r at r=1 and decays
    smoothly off-policy.
    """
    ratio = torch.exp(batch.logps - _old(batch))
    tau = torch.where(batch.advantages > 0, params.tau_pos, params.tau_neg)
    loss = -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * batch.advantages
    return LossOutput(loss=loss, metrics=_base_metrics(batch), token_level=True)


# --------------------------------------------------------------------------- VESPO


@dataclass(frozen=True)
class VespoParams:
    """VESPO gamma weighting φ(w) = e^λ·w^k·e^{−λw} (TRL defaults)."""

    k_pos: float = param(2.0, ge=0, doc="power k for A>=0")
    lambda_pos: float = param(3.0, gt=0, doc="decay λ for A>=0")
    k_neg: float = param(3.0, ge=0, doc="power k for A<0")
    lambda_neg: float = param(2.0, gt=0, doc="decay λ for A<0")


def vespo_loss(batch: RolloutBatch, params: VespoParams) -> LossOutput:
    """VESPO (2602.10693): l_t = −sg(φ(w_i))·A_i·log πθ(y_t), w_i = Π_t r_t the sequence ratio.

    log w is clamped to [log 1e-8, 20]; with ``rollout_logps`` the ratio includes πold/πrollout.
    """
    mask = batch.mask.to(batch.logps.dtype)
    with torch.no_grad():
        log_w = ((batch.logps - _old(batch)).clamp(-20.0, 20.0) * mask).sum(-1, keepdim=True)
        if batch.rollout_logps is not None:
            log_is = ((_old(batch) - batch.rollout_logps) * mask).clamp(math.log(1e-8), 20.0)
            log_w = log_w + log_is.sum(-1, keepdim=True)
        log_w = log_w.clamp(math.log(1e-8), 20.0)
        nonneg = _seq(batch.advantages, batch.mask) >= 0
        k = torch.where(nonneg, params.k_pos, params.k_neg)
        lam = torch.where(nonneg, params.lambda_pos, params.lambda_neg)
        phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(
            nan=0.0, posinf=0.0, neginf=0.0
        )
    loss = -phi * batch.advantages * batch.logps
    return LossOutput(
        loss=loss, metrics=_base_metrics(batch) | {"phi_mean": phi.mean()}, token_level=True
    )


# --------------------------------------------------------------------------- GMPO


@dataclass(frozen=True)
class GmpoParams:
    """GMPO log-space clip range (−ε_low, ε_high); the paper recommends 0.4 (ratio e^±0.4)."""

    clip_low: float = param(0.4, ge=0, doc="ε_low in log space")
    clip_high: float = param(0.4, ge=0, doc="ε_high in log space")


def gmpo_loss(batch: RolloutBatch, params: GmpoParams) -> LossOutput:
    """GMPO (Zhao+ 2507.20673 eq. 7): per sequence −A_i·exp(mean_t clip±(log r_t)), broadcast to tokens.

    The sign-aware clip keeps min(log r, clamp) for A>0 and max for A<0 (PPO's min in log space);
    the geometric mean makes the objective robust to outlier token ratios. Aggregate with
    ``seq-mean-token-mean`` to obtain the paper's mean over sequences.
    """
    d = batch.logps - _old(batch)
    clamped = torch.clamp(d, -params.clip_low, params.clip_high)
    adv = _seq(batch.advantages, batch.mask)
    clipped = torch.where(adv > 0, torch.minimum(d, clamped), torch.maximum(d, clamped))
    coef = torch.exp(_seq(clipped, batch.mask))
    loss = (-coef * adv).expand_as(batch.mask)
    lo, hi = math.exp(-params.clip_low), math.exp(params.clip_high)
    return LossOutput(
        loss=loss,
        metrics=_base_metrics(batch)
        | _clip_metrics(torch.exp(d), adv.expand_as(d), batch.mask, lo, hi),
        token_level=True,
    )


# --------------------------------------------------------------------------- Clip-Cov / KL-Cov


def _token_cov(batch: RolloutBatch) -> Tensor:
    """Centered covariance term (A_t − Ā)(log π_t − mean log π) over valid tokens (Cui+ eq. 11)."""
    adv, logp = batch.advantages.detach(), batch.logps.detach()
    return (adv - masked_mean(adv, batch.mask)) * (logp - masked_mean(logp, batch.mask))


@dataclass(frozen=True)
class ClipCovParams(ClipParams):
    """Clip-Cov: detach a random fraction r of tokens whose covariance is in (lb, ub)."""

    cov_ratio: float = param(2e-4, gt=0, le=1, doc="fraction r of valid tokens to detach")
    cov_lb: float = param(1.0, doc="lower covariance bound ω_low")
    cov_ub: float = param(5.0, doc="upper covariance bound ω_high")
    seed: int = param(0, ge=0, doc="seed of the random token selection (deterministic per call)")


def clip_cov_loss(batch: RolloutBatch, params: ClipCovParams) -> LossOutput:
    """Clip-Cov (Cui+ 2505.22617 §5, verl): PPO surrogate whose gradient is removed on
    max(1, ⌊r·N⌋) random tokens with covariance in (ω_low, ω_high), curbing entropy collapse.

    Note: verl samples with the global RNG; we use a seeded generator so the loss is reproducible.
    """
    out = clipped_surrogate_loss(batch, params)
    cov = _token_cov(batch)
    clipped_already = (
        out.loss.detach() > -batch.advantages * torch.exp(batch.logps - _old(batch)).detach()
    )
    cand = (cov > params.cov_lb) & (cov < params.cov_ub) & (batch.mask > 0) & ~clipped_already
    idx = torch.nonzero(cand.flatten()).squeeze(-1)
    n = max(int(params.cov_ratio * batch.mask.sum().item()), 1)
    gen = torch.Generator(device="cpu").manual_seed(params.seed)
    chosen = idx[torch.randperm(idx.numel(), generator=gen)[:n].to(idx.device)]
    keep = torch.ones(batch.mask.numel(), dtype=out.loss.dtype, device=out.loss.device)
    keep[chosen] = 0.0
    keep = keep.view_as(batch.mask)
    metrics = out.metrics | {"cov_clip_frac": masked_mean(1.0 - keep, batch.mask)}
    return LossOutput(loss=out.loss * keep, metrics=metrics, token_level=True)


@dataclass(frozen=True)
class KlCovParams:
    """KL-Cov: |log r| penalty on the top-k fraction of tokens by covariance."""

    cov_ratio: float = param(2e-3, gt=0, le=1, doc="fraction k of valid tokens penalised")
    kl_coef: float = param(1.0, ge=0, doc="β of the |log r| penalty [ppo_kl_coef]")


def kl_cov_loss(batch: RolloutBatch, params: KlCovParams) -> LossOutput:
    """KL-Cov (Cui+ 2505.22617 eq. 13, verl): l_t = −r_t·A_t, plus β·|log r_t| on the
    max(1, ⌊k·N⌋) valid tokens with the largest covariance (no ratio clipping, as in verl)."""
    d = batch.logps - _old(batch)
    loss = -batch.advantages * torch.exp(d)
    cov = _token_cov(batch).masked_fill(batch.mask <= 0, -torch.inf).flatten()
    n = max(int(params.cov_ratio * batch.mask.sum().item()), 1)
    top = torch.zeros_like(cov).index_fill(0, torch.topk(cov, n).indices, 1.0).view_as(loss)
    loss = loss + top * params.kl_coef * d.abs()
    return LossOutput(
        loss=loss,
        metrics=_base_metrics(batch) | {"kl_cov_frac": masked_mean(top, batch.mask)},
        token_level=True,
    )


# --------------------------------------------------------------------------- PRIME implicit PRM


@dataclass(frozen=True)
class PrimeParams:
    """PRIME implicit process reward scale β (Cui+ 2502.01456 §3; paper β = 0.05)."""

    beta: float = param(0.05, gt=0, doc="implicit reward r_t = β·log(πφ/πref)")


def prime_loss(batch: RolloutBatch, params: PrimeParams) -> LossOutput:
    """PRIME implicit-PRM update (Cui+ 2502.01456 eq. 3): cross-entropy of the outcome label
    against σ(β·Σ_t log πφ/πref), per sequence, broadcast to tokens.

    Here ``logps`` are the PRM's (πφ) log-probs and ``rewards`` the binary outcome labels. The
    policy then uses the token rewards β·(log πφ − log πref) via the ``prime_adv`` estimator.
    """
    if batch.rewards is None or batch.ref_logps is None:
        raise ValueError("prime needs batch.rewards (outcome labels) and batch.ref_logps")
    token_r = params.beta * (batch.logps - batch.ref_logps) * batch.mask.to(batch.logps.dtype)
    seq = F.binary_cross_entropy_with_logits(
        token_r.sum(-1), batch.rewards.to(token_r.dtype), reduction="none"
    )
    return LossOutput(
        loss=seq.unsqueeze(-1).expand_as(batch.mask),
        metrics={"implicit_reward_mean": token_r.detach().sum(-1).mean()},
        token_level=True,
    )


# --------------------------------------------------------------------------- registration

_CLIP = "-min(r*A, clip(r, 1-eps_low, 1+eps_high)*A)"
_TOKEN, _SEQ, _SUM, _NORM = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
)
_GN = "grpo_group_norm"

# name, fn, Params, citation, formula, paper aggregation, default advantage, extra metadata
_POLICY_LOSSES: tuple[
    tuple[str, Callable[..., LossOutput], type, str, str, str, str, dict[str, object]], ...
] = (
    (
        "ppo_clip",
        clipped_surrogate_loss,
        ClipParams,
        "Schulman+ 1707.06347",
        _CLIP,
        _TOKEN,
        "gae",
        {},
    ),
    (
        "dual_clip_ppo",
        clipped_surrogate_loss,
        DualClipParams,
        "Ye+ 1912.09729",
        _CLIP + ", min(., -c*A) if A<0",
        _TOKEN,
        "gae",
        {},
    ),
    ("grpo", clipped_surrogate_loss, ClipParams, "Shao+ 2402.03300", _CLIP, _SEQ, _GN, {}),
    (
        "dr_grpo",
        clipped_surrogate_loss,
        ClipParams,
        "Liu+ 2503.20783",
        _CLIP,
        _NORM,
        "dr_grpo_adv",
        {},
    ),
    (
        "bnpo",
        clipped_surrogate_loss,
        ClipParams,
        "Xiao+ 2506.02864 (TRL loss_type='bnpo')",
        _CLIP,
        _TOKEN,
        _GN,
        {},
    ),
    ("dapo", clipped_surrogate_loss, DapoParams, "Yu+ 2503.14476", _CLIP, _TOKEN, _GN, {}),
    (
        "gspo",
        clipped_surrogate_loss,
        GspoParams,
        "Zheng+ 2507.18071",
        _CLIP + ", r = exp(mean_t log r_t)",
        _SEQ,
        _GN,
        {},
    ),
    (
        "luspo",
        clipped_surrogate_loss,
        GspoParams,
        "LUSPO 2602.05261 (TRL loss_type='luspo')",
        _CLIP + ", sequence r",
        _SUM,
        _GN,
        {},
    ),
    (
        "passk_training",
        clipped_surrogate_loss,
        ClipParams,
        "Chen+ 2508.10751",
        _CLIP + " with pass@k A",
        _TOKEN,
        "passk",
        {},
    ),
    (
        "vapo",
        vapo_loss,
        VapoParams,
        "Yue+ 2504.05118",
        "clip-higher PPO - mu*1[R>0]*log pi",
        _TOKEN,
        "gae",
        {"needs_critic": True},
    ),
    (
        "tis",
        _rollout_corrected("truncate"),
        RolloutISParams,
        _IS_CITE,
        _CLIP + " * clamp(pi_old/pi_rollout)",
        _TOKEN,
        _GN,
        {},
    ),
    (
        "mis",
        _rollout_corrected("mask"),
        RolloutISParams,
        _IS_CITE,
        _CLIP + " * mask(pi_old/pi_rollout)",
        _TOKEN,
        _GN,
        {},
    ),
    (
        "reinforce",
        reinforce_loss,
        NoParams,
        "Williams 1992",
        "-A * log pi",
        _SUM,
        "reinforce_pp",
        {"needs_old_logps": False},
    ),
    (
        "gpg",
        reinforce_loss,
        NoParams,
        "Chu+ 2504.02546",
        "-A_gpg * log pi (no clip, no KL)",
        _TOKEN,
        "gpg_adv",
        {"needs_old_logps": False},
    ),
    (
        "cispo",
        cispo_loss,
        CispoParams,
        "MiniMax-M1 2506.13585",
        "-sg(clip(r)) * A * log pi",
        _TOKEN,
        _GN,
        {},
    ),
    (
        "sapo",
        sapo_loss,
        SapoParams,
        "Gao+ (Qwen) 2511.20347",
        "-(4/tau) * sigmoid(tau*(r-1)) * A",
        _SEQ,
        _GN,
        {},
    ),
    (
        "vespo",
        vespo_loss,
        VespoParams,
        "VESPO 2602.10693 (TRL loss_type='vespo')",
        "-sg(phi(w_seq)) * A * log pi",
        _TOKEN,
        _GN,
        {},
    ),
    (
        "gmpo",
        gmpo_loss,
        GmpoParams,
        "Zhao+ 2507.20673",
        "-A * exp(mean_t clip(log r_t))",
        _SEQ,
        _GN,
        {},
    ),
    (
        "clip_cov",
        clip_cov_loss,
        ClipCovParams,
        "Cui+ 2505.22617",
        _CLIP + ", grad detached on high-cov tokens",
        _TOKEN,
        _GN,
        {},
    ),
    (
        "kl_cov",
        kl_cov_loss,
        KlCovParams,
        "Cui+ 2505.22617",
        "-r*A + beta*|log r| on top-k cov tokens",
        _TOKEN,
        _GN,
        {},
    ),
    (
        "prime",
        prime_loss,
        PrimeParams,
        "Cui+ 2502.01456",
        "BCE(sigmoid(beta * sum_t log(pi_phi/pi_ref)), outcome)",
        _SEQ,
        "prime_adv",
        {
            "role": "loss",
            "needs_reference": True,
            "needs_old_logps": False,
            "model": "implicit_prm",
        },
    ),
)

for _name, _fn, _params, _cite, _formula, _agg, _adv, _extra in _POLICY_LOSSES:
    _flags = {
        k: _extra[k] for k in ("needs_critic", "needs_reference", "needs_old_logps") if k in _extra
    }
    _meta = {k: v for k, v in _extra.items() if k not in (*_flags, "role")}
    register(
        _name,
        family="online-rl",
        role=_extra.get("role", "policy_loss"),
        input_kind="rollout",
        params=_params,
        citation=_cite,
        formula=_formula,
        needs_rollouts=True,
        needs_old_logps=bool(_flags.pop("needs_old_logps", True)),
        trainer={"aggregation": _agg, "advantage": _adv, **_meta},
        **_flags,
    )(_fn)
