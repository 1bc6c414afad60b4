"""Per-token KL estimators between the policy and the reference (Schulman, "Approximating KL
Divergence", 2020; verl ``kl_penalty`` names). With log-ratio d = log πθ − log πref on samples
from πθ:

k1 = d (unbiased, high variance, can be negative) · k2 = d²/2 · k3 = exp(−d) + d − 1 (unbiased,
non-negative; GRPO's estimator, Shao+ 2402.03300 eq. 4) · low_var_kl = k3 clamped to [−10, 10]
(verl) · abs = |d|.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

KL_ESTIMATORS: dict[str, Callable[[Tensor], Tensor]] = {
    "k1": lambda d: d,
    "abs": lambda d: d.abs(),
    "k2": lambda d: 0.5 * d.square(),
    "k3": lambda d: torch.exp(-d) + d - 1.0,
    "low_var_kl": lambda d: (torch.exp(-d) + d - 1.0).clamp(min=-10.0, max=10.0),
}
KL_PLACEMENTS: tuple[str, ...] = ("loss", "reward", "none")


def kl_estimate(logps: Tensor, ref_logps: Tensor, estimator: str) -> Tensor:
    """Per-token KL estimate (B, T) of KL(πθ‖πref) with ``estimator`` (k1, k2, k3, low_var_kl, abs)."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator={estimator!r} is not one of {sorted(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[estimator](logps - ref_logps)


def _masked_kl(logps: Tensor, ref_logps: Tensor, mask: Tensor, estimator: str) -> Tensor:
    """Per-token KL of the behaviour policy (no grad), zero on padding."""
    return kl_estimate(logps.detach(), ref_logps, estimator) * mask.to(logps.dtype)


def kl_penalized_rewards(
    rewards: Tensor,
    logps: Tensor,
    ref_logps: Tensor,
    mask: Tensor,
    coef: float,
    estimator: str = "k1",
) -> Tensor:
    """Outcome rewards (B,) minus β·Σ_t KL_t (KL in the reward, as TRL's RLOO and InstructGPT).

    Args: logps/ref_logps/mask (B, T), logps from the behaviour policy.
    """
    return rewards - coef * _masked_kl(logps, ref_logps, mask, estimator).sum(-1)


def kl_penalized_token_rewards(
    token_rewards: Tensor,
    logps: Tensor,
    ref_logps: Tensor,
    mask: Tensor,
    coef: float,
    estimator: str = "k1",
) -> Tensor:
    """Per-token rewards (B, T) minus β·KL_t (GAE / REINFORCE++ with a token-level penalty, verl)."""
    return token_rewards - coef * _masked_kl(logps, ref_logps, mask, estimator)
