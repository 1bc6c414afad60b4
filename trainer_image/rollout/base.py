"""The rollout-engine interface shared by the HF ``generate`` and vLLM engines.

An engine turns tokenised prompts into sampled completions together with the log-probability
the engine assigned to every sampled token (used for TIS/MIS importance-ratio correction when
the engine's numerics differ from the trainer's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ptlab.trainer.batching import Padded, pad, scatter_completion
from ptlab.trainer.chat import Encoded


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling parameters of one ``generate`` call.

    temperature 0 means greedy decoding. Engines report log-probs of the temperature-scaled
    distribution ``log_softmax(logits / temperature)`` (raw logits when greedy), the same
    distribution the trainer scores; top-p truncation is not reflected (as in TRL and verl).
    """

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    """One sampled completion of one prompt.

    group: index of its prompt in the ``generate`` call (completions of a prompt share it).
    token_ids: generated tokens, including the EOS token when ``finished``.
    logprobs: the engine's log-prob of each token in ``token_ids`` (same length).
    finished: True if generation stopped on EOS, False if cut at ``max_new_tokens``.
    """

    group: int
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finished: bool


class RolloutEngine(Protocol):
    """What the online recipe needs from an engine."""

    copies_weights: bool
    """``sync_weights`` reads every weight (vLLM), rather than keeping a handle on the model (HF)."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        num_generations: int,
        settings: SamplingSettings,
    ) -> list[Completion]:
        """``num_generations`` completions per prompt, ordered prompt-major."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the engine sample from ``model``'s current weights."""
        ...

    def close(self) -> None:
        """Release the engine's resources (processes, caches)."""
        ...


def truncate_at_eos(token_ids: Sequence[int], eos_ids: frozenset[int]) -> tuple[int, bool]:
    """Length up to and including the first EOS token, and whether one was found."""
    for i, tok in enumerate(token_ids):
        if tok in eos_ids:
            return i + 1, True
    return len(token_ids), False


@dataclass(frozen=True)
class PaddedRollout:
    """Completions packed for one forward pass, right-padded, in the trainer's (N, L) layout
    (see :mod:`ptlab.trainer.modeling`: position t scores token t).

    batch: ids / attn / mask (N, L), ``mask`` = 1 on completion tokens;
    rollout_logps: (N, L) the engine's log-probs on completion positions, 0 elsewhere.
    """

    batch: Padded
    rollout_logps: Tensor


def pad_completions(completions: Sequence[Completion], pad_id: int) -> PaddedRollout:
    """Concatenate prompt and completion of each row and right-pad to a common length."""
    seqs = [Encoded(list(c.prompt_ids + c.token_ids), len(c.prompt_ids)) for c in completions]
    batch = pad(seqs, pad_id)
    logps = [torch.tensor(c.logprobs, dtype=torch.float32) for c in completions]
    return PaddedRollout(batch, scatter_completion(logps, batch.mask))
