"""Typed inputs and outputs shared by every registry entry.

Shapes: B = batch (sequences or pairs), T = tokens, V = vocabulary. Per-token log-probs are the
log-probabilities of the *target* tokens (already gathered), zero-padded where ``mask`` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class LossOutput:
    """Per-example (unaggregated unless the entry says otherwise) loss and named statistics.

    ``loss`` has shape (B,) for sequence-level entries or (B, T) for token-level entries
    (``token_level=True``); the trainer aggregates with an aggregation mode.
    ``metrics`` are detached scalars or (B,) tensors, e.g. ``rewards/chosen``.
    """

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    token_level: bool = False


@dataclass(frozen=True)
class SingleBatch:
    """Supervised / distillation input: one completion per row.

    logps: (B, T) log πθ of target tokens; mask: (B, T) 1 on completion tokens.
    logits: (B, T, V) student logits (needed by distillation entries and DFT).
    teacher_logits: (B, T, V) or None. labels: (B, T) target ids or None.
    """

    logps: Tensor
    mask: Tensor
    logits: Tensor | None = None
    teacher_logits: Tensor | None = None
    labels: Tensor | None = None
    ref_logps: Tensor | None = None
    rewards: Tensor | None = None


@dataclass(frozen=True)
class PairedBatch:
    """Paired preference input (chosen yw vs rejected yl), per-token log-probs.

    policy_*_logps / ref_*_logps: (B, T); *_mask: (B, T). ref_* are None for reference-free
    entries. ``chosen_logits``/``rejected_logits`` (B, T, V) only when an entry needs them.
    ``margins`` (B,) optional external reward differences (e.g. ODPO offsets, reward-aware PO).
    """

    policy_chosen_logps: Tensor
    policy_rejected_logps: Tensor
    chosen_mask: Tensor
    rejected_mask: Tensor
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    margins: Tensor | None = None
    chosen_rewards: Tensor | None = None
    rejected_rewards: Tensor | None = None
    explore_logps: Tensor | None = None
    """(B, T) log πθ of a sample drawn from πref (XPO's exploration bonus), or None."""
    explore_mask: Tensor | None = None
    chosen_log_sum_sq: Tensor | None = None
    """(B, T) log Σ_v πθ(v|·)² per chosen token (WPO's aligned weights); None = plain weights."""
    rejected_log_sum_sq: Tensor | None = None
    chosen_token_kl: Tensor | None = None
    """(B, T) per-token KL(πref‖πθ) over the vocabulary on chosen tokens, with grad (TDPO)."""
    rejected_token_kl: Tensor | None = None
    running_margin: Tensor | None = None
    """Scalar running statistic kept by the trainer (β-DPO's M0, BCO's reward shift δ)."""


@dataclass(frozen=True)
class UnpairedBatch:
    """Unpaired binary-feedback input (KTO/BCO style).

    policy_logps / ref_logps / mask: (B, T); labels: (B,) bool, True = desirable.
    kl_policy_logps / kl_ref_logps / kl_mask: (B, T) of mismatched (prompt, completion)
    pairs used for KTO's reference point z0 (None when not used).
    """

    policy_logps: Tensor
    mask: Tensor
    labels: Tensor
    ref_logps: Tensor | None = None
    kl_policy_logps: Tensor | None = None
    kl_ref_logps: Tensor | None = None
    kl_mask: Tensor | None = None
    reward_shift: Tensor | None = None
    """Scalar running mean of implicit rewards kept by the trainer (BCO's δ); None = batch mean."""


@dataclass(frozen=True)
class ScoreBatch:
    """Reward-model input: scalar scores. chosen/rejected: (B,); for regression ``scores`` and
    ``targets`` (B,); for process reward models ``step_logits``/``step_labels``/``step_mask`` (B, S).
    """

    chosen: Tensor | None = None
    rejected: Tensor | None = None
    margins: Tensor | None = None
    scores: Tensor | None = None
    targets: Tensor | None = None
    step_logits: Tensor | None = None
    step_labels: Tensor | None = None
    step_mask: Tensor | None = None


@dataclass(frozen=True)
class RolloutBatch:
    """Online RL input for policy losses, all (B, T) over completion tokens.

    logps: log πθ (with grad); old_logps: log πold (behaviour policy in the trainer);
    ref_logps: log πref; rollout_logps: log-probs reported by the rollout engine (for TIS/MIS);
    advantages: per-token advantages (every completion token, never only the last);
    values/returns: critic outputs and targets (PPO/VAPO); entropy: per-token entropy.
    """

    logps: Tensor
    mask: Tensor
    advantages: Tensor
    old_logps: Tensor | None = None
    ref_logps: Tensor | None = None
    rollout_logps: Tensor | None = None
    values: Tensor | None = None
    old_values: Tensor | None = None
    returns: Tensor | None = None
    entropy: Tensor | None = None
    rewards: Tensor | None = None
    group_ids: Tensor | None = None


@dataclass(frozen=True)
class RewardBatch:
    """Advantage-estimator input.

    rewards: (B,) outcome rewards (or (B, K) for multi-reward); mask: (B, T) completion tokens;
    group_ids: (B,) int prompt group of each completion; token_rewards / values: (B, T) for GAE;
    baseline_rewards: (B,) e.g. ReMax greedy rewards.
    """

    rewards: Tensor
    mask: Tensor
    group_ids: Tensor | None = None
    token_rewards: Tensor | None = None
    values: Tensor | None = None
    baseline_rewards: Tensor | None = None


@dataclass(frozen=True)
class AdvantageOutput:
    """Per-token advantages (B, T) (zero where mask is 0), optional returns (B, T)."""

    advantages: Tensor
    returns: Tensor | None = None
    metrics: dict[str, Tensor] = field(default_factory=dict)
