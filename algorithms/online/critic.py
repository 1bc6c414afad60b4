"""Value head for PPO / VAPO: a critic on the policy backbone (shared) or on a separate model.

``ValueHead`` maps hidden states (B, L, H) to values (B, L). ``CriticModel`` wraps any HF causal
LM (``output_hidden_states=True``) with a value head; pass the policy model itself for a shared
backbone (the trainer then reuses the same forward pass via :func:`values_from_hidden`), or a
separate ``AutoModelForCausalLM`` for an independent critic (VAPO initialises it from a reward
model and pretrains it, Yue+ 2504.05118 §4.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ptlab.algorithms.online.aggregation import masked_mean


class ValueHead(nn.Module):
    """Linear hidden → scalar value, zero-initialised so the initial critic predicts 0."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        """hidden (B, L, H) → values (B, L) in the head's dtype."""
        return self.proj(hidden.to(self.proj.weight.dtype)).squeeze(-1)


def values_from_hidden(head: ValueHead, hidden: Tensor, prompt_length: int) -> Tensor:
    """Values of completion positions from a causal LM's last hidden states.

    The value of completion token t is read at the position that *predicts* it (index
    prompt_length − 1 + t), matching the log-prob alignment of causal LMs.
    """
    return head(hidden[:, prompt_length - 1 : -1])


class CriticModel(nn.Module):
    """Critic = causal-LM backbone + ``ValueHead``; ``backbone`` may be the policy (shared) or a copy."""

    def __init__(self, backbone: nn.Module, hidden_size: int | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        size = hidden_size if hidden_size is not None else getattr(backbone, "config").hidden_size  # noqa: B009
        self.head = ValueHead(int(size))

    def forward(self, input_ids: Tensor, attention_mask: Tensor, prompt_length: int) -> Tensor:
        """Completion-token values (B, L − prompt_length)."""
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        return values_from_hidden(self.head, out.hidden_states[-1], prompt_length)


def value_loss(
    values: Tensor,
    returns: Tensor,
    mask: Tensor,
    old_values: Tensor | None = None,
    clip: float = 0.2,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss (PPO2 / TRL PPO): ½·max((V − R)², (clip(V, V_old ± ε) − R)²), token-mean.

    Args: values/returns/mask/old_values (B, T); ``clip`` ≤ 0 or no ``old_values`` = unclipped.
    Returns the scalar loss and metrics (``vf_clip_frac``, ``value_mse``).
    """
    err = (values - returns) ** 2
    if old_values is None or clip <= 0:
        per_token, clip_frac = err, torch.zeros((), dtype=values.dtype)
    else:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        err_clipped = (clipped - returns) ** 2
        per_token = torch.max(err, err_clipped)
        clip_frac = masked_mean((err_clipped > err).to(values.dtype), mask)
    loss = 0.5 * masked_mean(per_token, mask)
    return loss, {"vf_clip_frac": clip_frac, "value_mse": masked_mean(err.detach(), mask)}
