"""Advantage estimators (family/role ``advantage``, input ``RewardBatch``).

Every estimator returns advantages for EVERY completion token, shape (B, T), zero only where
``mask`` is 0. (The GRPO paper's reference framework broadcast outcome advantages to the last
token only; a test guards against repeating that.) Outcome rewards are (B,); ``group_ids`` (B,)
say which completions share a prompt. Singleton groups get a zero group-relative advantage (TRL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ptlab.algorithms.online.aggregation import masked_whiten
from ptlab.algorithms.registry import NoParams, param, register
from ptlab.algorithms.types import AdvantageOutput, RewardBatch


def _broadcast(per_seq: Tensor, mask: Tensor) -> AdvantageOutput:
    adv = per_seq.unsqueeze(-1) * mask.to(per_seq.dtype)
    return AdvantageOutput(
        advantages=adv, returns=adv, metrics={"advantage_abs_mean": per_seq.abs().mean()}
    )


def _group_index(batch: RewardBatch, name: str) -> tuple[Tensor, Tensor]:
    """(inverse index (B,), group sizes (G,)) of ``batch.group_ids``."""
    if batch.group_ids is None:
        raise ValueError(f"{name} needs group_ids (B,): the prompt group of each completion")
    _, inv, counts = torch.unique(batch.group_ids, return_inverse=True, return_counts=True)
    return inv, counts


def group_mean(x: Tensor, inv: Tensor, counts: Tensor) -> Tensor:
    """Mean of x over each element's group, gathered back to (B, ...)."""
    sums = torch.zeros((counts.numel(), *x.shape[1:]), dtype=x.dtype, device=x.device).index_add_(
        0, inv, x
    )
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (sums / counts.to(x.dtype).view(shape))[inv]


def group_std(x: Tensor, inv: Tensor, counts: Tensor, unbiased: bool = True) -> Tensor:
    """Std of x over each element's group (Bessel-corrected when ``unbiased``, as torch/TRL/verl)."""
    var_sum = group_mean((x - group_mean(x, inv, counts)) ** 2, inv, counts)
    n = counts.to(x.dtype)[inv].view((-1,) + (1,) * (x.dim() - 1))
    corr = n / (n - 1).clamp(min=1.0) if unbiased else torch.ones_like(n)
    return (var_sum * corr).sqrt()


def _outcome(batch: RewardBatch, name: str) -> Tensor:
    if batch.rewards.dim() != 1:
        raise ValueError(f"{name} needs rewards of shape (B,), got {tuple(batch.rewards.shape)}")
    return batch.rewards


def outcome_token_rewards(batch: RewardBatch) -> Tensor:
    """Per-token rewards; an outcome reward is placed on the last completion token."""
    if batch.token_rewards is not None:
        return batch.token_rewards
    mask = batch.mask.to(batch.rewards.dtype)
    last = mask.cumsum(-1).argmax(-1)
    return torch.zeros_like(mask).scatter(-1, last.unsqueeze(-1), batch.rewards.unsqueeze(-1))


def discounted_returns(token_rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_t = Σ_{s≥t} γ^{s−t} r_s over masked tokens (reward-to-go), (B, T)."""
    out = torch.zeros_like(token_rewards)
    running = torch.zeros_like(token_rewards[:, 0])
    for t in reversed(range(token_rewards.shape[-1])):
        running = (token_rewards[:, t] + gamma * running) * mask[:, t]
        out[:, t] = running
    return out


# --------------------------------------------------------------------------- group-relative


@dataclass(frozen=True)
class GroupNormParams:
    """GRPO normalisation: ε 1e-4 in TRL, 1e-6 in verl; ``scale`` as TRL's ``scale_rewards``."""

    std_eps: float = param(1e-4, ge=0, doc="ε in (r − mean)/(std + ε): TRL 1e-4, verl 1e-6")
    scale: str = param(
        "group", choices=("group", "batch", "none"), doc="std over the group, batch, or none"
    )
    unbiased_std: bool = param(True, doc="Bessel-corrected std (torch/TRL/verl default)")


def grpo_group_norm_advantage(batch: RewardBatch, params: GroupNormParams) -> AdvantageOutput:
    """GRPO outcome advantage (Shao+ 2402.03300 §4.1.2): A_i = (r_i − mean_g r)/(std_g r + ε)."""
    r = _outcome(batch, "grpo_group_norm")
    inv, counts = _group_index(batch, "grpo_group_norm")
    centered = r - group_mean(r, inv, counts)
    if params.scale == "group":
        centered = centered / (group_std(r, inv, counts, params.unbiased_std) + params.std_eps)
    elif params.scale == "batch":
        centered = centered / (r.std(unbiased=params.unbiased_std) + params.std_eps)
    return _broadcast(centered, batch.mask)


def dr_grpo_advantage(batch: RewardBatch, params: NoParams) -> AdvantageOutput:
    """Dr. GRPO (Liu+ 2503.20783 eq. 3): A_i = r_i − mean_g r (no std division)."""
    r = _outcome(batch, "dr_grpo_adv")
    inv, counts = _group_index(batch, "dr_grpo_adv")
    return _broadcast(r - group_mean(r, inv, counts), batch.mask)


@dataclass(frozen=True)
class RlooParams:
    """RLOO options (TRL ``normalize_advantages`` False by default)."""

    normalize: bool = param(
        False, doc="then whiten advantages over the batch (TRL normalize_advantages)"
    )
    std_eps: float = param(1e-4, ge=0, doc="ε of the optional batch whitening")


def rloo_advantage(batch: RewardBatch, params: RlooParams) -> AdvantageOutput:
    """RLOO (Ahmadian+ 2402.14740 eq. 4): A_i = r_i − (1/(n−1)) Σ_{j≠i} r_j = n/(n−1)·(r_i − mean_g)."""
    r = _outcome(batch, "rloo")
    inv, counts = _group_index(batch, "rloo")
    n = counts.to(r.dtype)[inv]
    adv = (r - group_mean(r, inv, counts)) * n / (n - 1).clamp(min=1.0)
    if params.normalize:
        adv = (adv - adv.mean()) / (adv.std() + params.std_eps)
    return _broadcast(adv, batch.mask)


def opo_advantage(batch: RewardBatch, params: NoParams) -> AdvantageOutput:
    """OPO (Hao+ 2505.23585 eq. 6): A_i = r_i − b_g, b_g = Σ_j |y_j| r_j / Σ_j |y_j| (length-weighted)."""
    r = _outcome(batch, "opo")
    inv, counts = _group_index(batch, "opo")
    length = batch.mask.to(r.dtype).sum(-1)
    baseline = group_mean(length * r, inv, counts) / group_mean(length, inv, counts).clamp(
        min=1e-12
    )
    return _broadcast(r - baseline, batch.mask)


@dataclass(frozen=True)
class GpgParams:
    """GPG scaling: α = B / (#samples in groups with non-constant reward), divided by F_norm."""

    f_norm: float = param(1.0, gt=0, doc="F_norm divisor (1 = no normalisation, the paper default)")


def gpg_advantage(batch: RewardBatch, params: GpgParams) -> AdvantageOutput:
    """GPG (Chu+ 2504.02546 eq. 8): A_i = α·(r_i − mean_g r)/F_norm, α = B/M with M the number of
    completions whose group has a non-zero reward spread (the others carry no gradient).

    Note: verl counts non-zero rewards for M; we count valid (non-degenerate) groups as the paper.
    """
    r = _outcome(batch, "gpg_adv")
    inv, counts = _group_index(batch, "gpg_adv")
    valid = group_std(r, inv, counts) > 0
    alpha = r.numel() / valid.sum().clamp(min=1)
    return _broadcast(alpha * (r - group_mean(r, inv, counts)) / params.f_norm, batch.mask)


# --------------------------------------------------------------------------- pass@k


@dataclass(frozen=True)
class PasskParams:
    """Pass@k training (Chen+ 2508.10751): k and the reward threshold for 'correct'."""

    k: int = param(4, ge=1, doc="k of pass@k; groups need n ≥ k")
    threshold: float = param(0.5, doc="a completion is correct when reward > threshold")
    std_eps: float = param(1e-6, ge=0, doc="ε added to the group-reward std")


def passk_advantage(batch: RewardBatch, params: PasskParams) -> AdvantageOutput:
    """Analytic pass@k advantage (Chen+ 2508.10751 eqs. 14–16), n samples with c correct:

    R̄ = 1 − C(n−c, k)/C(n, k); σ = √(R̄(1−R̄)); A_pos = (1 − R̄)/σ;
    A_neg = (1 − R̄ − C(n−c−1, k−1)/C(n−1, k−1))/σ.
    """
    r = _outcome(batch, "passk")
    inv, counts = _group_index(batch, "passk")
    correct = (r > params.threshold).to(r.dtype)
    n_correct = group_mean(correct, inv, counts) * counts.to(r.dtype)[inv]
    out = torch.zeros_like(r)
    for i in range(r.numel()):
        n, c, k = int(counts[inv[i]]), round(float(n_correct[i])), params.k
        if n < k:
            raise ValueError(
                f"passk: group of {n} completions is smaller than k={k}; lower k or sample more"
            )
        mean = 1 - math.comb(n - c, k) / math.comb(n, k)
        std = math.sqrt(mean * (1 - mean)) + params.std_eps
        if correct[i] > 0:
            out[i] = (1 - mean) / std
        else:
            out[i] = (1 - mean - math.comb(n - c - 1, k - 1) / math.comb(n - 1, k - 1)) / std
    return _broadcast(out, batch.mask)


# --------------------------------------------------------------------------- multi-reward


def gdpo_advantage(batch: RewardBatch, params: GroupNormParams) -> AdvantageOutput:
    """Multi-reward GRPO (GDPO; TRL ``normalize_then_sum``): normalise each reward k within its group,
    sum over k, then normalise the sum over the batch.

    rewards: (B, K). A_i = (s_i − mean s)/(std s + ε), s_i = Σ_k (r_ik − mean_g r_k)/(std_g r_k + ε).
    """
    r = batch.rewards if batch.rewards.dim() == 2 else batch.rewards.unsqueeze(-1)
    inv, counts = _group_index(batch, "gdpo")
    per_k = (r - group_mean(r, inv, counts)) / (
        group_std(r, inv, counts, params.unbiased_std) + params.std_eps
    )
    s = per_k.sum(-1)
    if params.scale != "none":
        # A batch of one has no spread: its std is 0 (not NaN from Bessel's correction).
        unbiased = params.unbiased_std and s.numel() > 1
        s = (s - s.mean()) / (s.std(unbiased=unbiased) + params.std_eps)
    return _broadcast(s, batch.mask)


# --------------------------------------------------------------------------- baselines, returns


def remax_advantage(batch: RewardBatch, params: NoParams) -> AdvantageOutput:
    """ReMax (Li+ 2310.10505 Alg. 1): A_t = G_t − r(greedy), the greedy completion's reward as baseline."""
    if batch.baseline_rewards is None:
        raise ValueError(
            "remax needs baseline_rewards (B,): the reward of the greedy completion per prompt"
        )
    mask = batch.mask.to(batch.rewards.dtype)
    returns = discounted_returns(outcome_token_rewards(batch), mask, 1.0)
    return AdvantageOutput(
        advantages=returns - batch.baseline_rewards.unsqueeze(-1) * mask, returns=returns
    )


@dataclass(frozen=True)
class ReinforcePPParams:
    """REINFORCE++ discount γ (Hu+ 2501.03262; 1.0 for outcome rewards)."""

    gamma: float = param(1.0, ge=0, le=1, doc="discount of token rewards")


def reinforce_pp_advantage(batch: RewardBatch, params: ReinforcePPParams) -> AdvantageOutput:
    """REINFORCE++ (Hu+ 2501.03262 §3): reward-to-go G_t (token KL penalty already in the token rewards),
    whitened over all valid tokens of the batch (global normalisation, no critic)."""
    mask = batch.mask.to(batch.rewards.dtype)
    returns = discounted_returns(outcome_token_rewards(batch), mask, params.gamma)
    return AdvantageOutput(advantages=masked_whiten(returns, mask) * mask, returns=returns)


def reinforce_pp_baseline_advantage(batch: RewardBatch, params: NoParams) -> AdvantageOutput:
    """REINFORCE++-baseline (Hu+ 2501.03262 v3, verl): subtract the group mean reward, then whiten
    over all valid tokens of the batch."""
    r = _outcome(batch, "reinforce_pp_baseline")
    inv, counts = _group_index(batch, "reinforce_pp_baseline")
    mask = batch.mask.to(r.dtype)
    tokens = (r - group_mean(r, inv, counts)).unsqueeze(-1) * mask
    adv = masked_whiten(tokens, mask) * mask
    return AdvantageOutput(advantages=adv, returns=adv)


@dataclass(frozen=True)
class GaeParams:
    """GAE (Schulman+ 1506.02438): γ, λ, optional VAPO length-adaptive λ and whitening."""

    gamma: float = param(1.0, ge=0, le=1, doc="discount γ (1.0 for LLM outcome rewards)")
    lam: float = param(0.95, ge=0, le=1, doc="λ of the policy advantages")
    lam_adaptive_alpha: float = param(
        0.0, ge=0, doc="VAPO: λ_i = 1 − 1/(α·|y_i|) when > 0 (paper α=0.05)"
    )
    whiten: bool = param(True, doc="whiten advantages over valid tokens (verl, TRL PPO)")


def gae_advantage(batch: RewardBatch, params: GaeParams) -> AdvantageOutput:
    """GAE: δ_t = r_t + γV_{t+1} − V_t; A_t = δ_t + γλA_{t+1}; returns = A + V (before whitening).

    Vectorised over the batch with one reverse scan; V after the last valid token is 0. With
    ``lam_adaptive_alpha`` > 0, λ is per sequence (VAPO 2504.05118 eq. 7).
    """
    if batch.values is None:
        raise ValueError("gae needs values (B, T) from the critic")
    mask = batch.mask.to(batch.values.dtype)
    values = batch.values
    rewards = outcome_token_rewards(batch).to(values.dtype)
    lam = torch.full_like(values[:, 0], params.lam)
    if params.lam_adaptive_alpha > 0:
        lam = 1 - 1 / (params.lam_adaptive_alpha * mask.sum(-1)).clamp(min=1.0)
    adv = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[-1])):
        delta = rewards[:, t] + params.gamma * next_value - values[:, t]
        step = delta + params.gamma * lam * last
        m = mask[:, t]
        last = step * m + (1 - m) * last
        next_value = values[:, t] * m + (1 - m) * next_value
        adv[:, t] = last
    adv = adv * mask
    returns = (adv + values) * mask
    if params.whiten:
        adv = masked_whiten(adv, mask) * mask
    return AdvantageOutput(advantages=adv, returns=returns)


@dataclass(frozen=True)
class PrimeAdvParams:
    """PRIME advantage: discount γ of the implicit process rewards (paper γ = 1)."""

    gamma: float = param(1.0, ge=0, le=1, doc="discount of the implicit process rewards")


def prime_advantage(batch: RewardBatch, params: PrimeAdvParams) -> AdvantageOutput:
    """PRIME (Cui+ 2502.01456 eq. 5): RLOO on implicit process rewards plus RLOO on outcomes.

    A_t^i = Σ_{s≥t} γ^{s−t}[r_φ(y_s^i) − (1/(K−1))Σ_{j≠i} r_φ(y^j)/|y^j|] + r_o^i − (1/(K−1))Σ_{j≠i} r_o^j,
    with token_rewards = r_φ (B, T) and rewards = outcome r_o (B,).
    """
    if batch.token_rewards is None:
        raise ValueError("prime_adv needs token_rewards (B, T): implicit rewards β·log(πφ/πref)")
    r_o = _outcome(batch, "prime_adv")
    inv, counts = _group_index(batch, "prime_adv")
    mask = batch.mask.to(r_o.dtype)
    n = counts.to(r_o.dtype)[inv]
    per_token_avg = (batch.token_rewards * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    loo = (group_mean(per_token_avg, inv, counts) * n - per_token_avg) / (n - 1).clamp(min=1.0)
    process = discounted_returns(
        (batch.token_rewards - loo.unsqueeze(-1)) * mask, mask, params.gamma
    )
    outcome = (r_o - group_mean(r_o, inv, counts)) * n / (n - 1).clamp(min=1.0)
    adv = (process + outcome.unsqueeze(-1)) * mask
    return AdvantageOutput(advantages=adv, returns=adv)


_ADVANTAGES: tuple[tuple[str, object, type, str, str], ...] = (
    (
        "gae",
        gae_advantage,
        GaeParams,
        "Schulman+ 1506.02438",
        "A_t = sum_l (gamma*lam)^l delta_{t+l}",
    ),
    (
        "grpo_group_norm",
        grpo_group_norm_advantage,
        GroupNormParams,
        "Shao+ 2402.03300",
        "(r - mean_g)/(std_g + eps)",
    ),
    ("dr_grpo_adv", dr_grpo_advantage, NoParams, "Liu+ 2503.20783", "r - mean_g"),
    ("rloo", rloo_advantage, RlooParams, "Ahmadian+ 2402.14740", "r_i - mean_{j!=i} r_j"),
    ("remax", remax_advantage, NoParams, "Li+ 2310.10505", "G_t - r(greedy)"),
    (
        "reinforce_pp",
        reinforce_pp_advantage,
        ReinforcePPParams,
        "Hu+ 2501.03262",
        "whiten_batch(G_t)",
    ),
    (
        "reinforce_pp_baseline",
        reinforce_pp_baseline_advantage,
        NoParams,
        "Hu+ 2501.03262",
        "whiten_batch(r - mean_g)",
    ),
    ("opo", opo_advantage, NoParams, "Hao+ 2505.23585", "r - sum(l*r)/sum(l) per group"),
    ("passk", passk_advantage, PasskParams, "Chen+ 2508.10751", "analytic pass@k group advantage"),
    (
        "gdpo",
        gdpo_advantage,
        GroupNormParams,
        "TRL multi_objective_aggregation='normalize_then_sum'",
        "whiten_batch(sum_k norm_g(r_k))",
    ),
    ("gpg_adv", gpg_advantage, GpgParams, "Chu+ 2504.02546", "alpha*(r - mean_g)/F_norm"),
    (
        "prime_adv",
        prime_advantage,
        PrimeAdvParams,
        "Cui+ 2502.01456",
        "RLOO(implicit process rewards) + RLOO(outcome)",
    ),
)

for _name, _fn, _params, _cite, _formula in _ADVANTAGES:
    register(
        _name,
        family="advantage",
        role="advantage",
        input_kind="rewards",
        params=_params,
        citation=_cite,
        formula=_formula,
        needs_critic=_name == "gae",
        trainer={
            "needs": {
                "gae": "values",
                "remax": "baseline_rewards",
                "prime_adv": "token_rewards",
            }.get(_name, "rewards")
        },
    )(_fn)


# --------------------------------------------------------------------------- DAPO data helpers


def dynamic_sampling_keep(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """DAPO dynamic sampling (Yu+ 2503.14476 eq. 11): bool (B,) keeping groups whose rewards are
    not all equal (all-correct / all-wrong groups give zero group-relative advantage)."""
    _, inv, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    return group_std(rewards.to(torch.float64), inv, counts) > 0


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int, penalty: float = 1.0) -> Tensor:
    """DAPO soft overlong punishment (Yu+ 2503.14476 eq. 13), added to the reward:
    0 if |y| ≤ L_max − L_cache; penalty·((L_max − L_cache) − |y|)/L_cache inside the buffer; −penalty beyond L_max."""
    if not 0 < buffer <= max_length:
        raise ValueError(f"overlong buffer={buffer} must be in (0, max_length={max_length}]")
    start = max_length - buffer
    inside = (start - lengths.to(torch.float64)) / buffer * penalty
    out = torch.where(lengths <= start, torch.zeros_like(inside), inside)
    return torch.where(lengths > max_length, torch.full_like(inside, -penalty), out)
