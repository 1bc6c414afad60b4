"""Rollouts with HF ``generate``: batched, KV cache, left padding, stop on EOS.

The engine samples from the live trainer model, so it is always on-policy and
``sync_weights`` has nothing to copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from ptlab.trainer.rollout.base import Completion, SamplingSettings, truncate_at_eos


def eos_token_ids(model: torch.nn.Module, extra: Iterable[int] = ()) -> frozenset[int]:
    """EOS ids from the model's generation config (an int or a list) plus ``extra``."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if config is not None else None
    if eos is None:
        eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    return frozenset([*ids, *extra])


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (N, max prompt length), padded on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = 1
    return ids, mask


class HFEngine:
    """Rollout engine over ``model.generate`` of the (unwrapped) trainer model.

    Args:
        model: the policy (a ``PreTrainedModel`` or a peft model around one).
        pad_id: token used for left padding (the tokenizer's pad, else its EOS).
        eos_ids: tokens that end a completion; default: the model's generation config.
        max_batch: most sequences per ``generate`` call (memory bound); 0 = all at once.
        synced: every rank calls ``generate`` together on a model sharded across them (ZeRO-3):
            ranks that finish early keep running forward passes until all are done.
    """

    copies_weights = False

    def __init__(
        self,
        model: torch.nn.Module,
        pad_id: int,
        eos_ids: Iterable[int] | None = None,
        max_batch: int = 0,
        synced: bool = False,
    ) -> None:
        self.model = model
        self.pad_id = pad_id
        self.eos_ids = frozenset(eos_ids) if eos_ids is not None else eos_token_ids(model)
        if not self.eos_ids:
            raise ValueError("the model has no eos_token_id; pass eos_ids to the rollout engine")
        self.max_batch = max_batch
        self.synced = synced

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Use ``model`` from now on (the HF engine samples from the live weights)."""
        self.model = model

    def close(self) -> None:
        """Nothing to release."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        num_generations: int,
        settings: SamplingSettings,
    ) -> list[Completion]:
        """``num_generations`` completions per prompt, prompt-major, with sampled-token log-probs.

        Sampling uses a private RNG seeded with ``settings.seed`` (the caller's global RNG state
        is left untouched), so the same seed gives the same completions.
        """
        rows = [(g, list(p)) for g, p in enumerate(prompts) for _ in range(num_generations)]
        step = self.max_batch or len(rows)
        out: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                for start in range(0, len(rows), step):
                    out.extend(self._generate_chunk(rows[start : start + step], settings))
        finally:
            self.model.train(was_training)
        return out

    @torch.no_grad()
    def _generate_chunk(
        self, rows: list[tuple[int, list[int]]], settings: SamplingSettings
    ) -> list[Completion]:
        ids, mask = left_pad([p for _, p in rows], self.pad_id)
        device = next(self.model.parameters()).device
        greedy = settings.temperature == 0
        # top_k=0 turns off the top-50 default of HF generation configs: plain nucleus sampling.
        sampling = (
            {}
            if greedy
            else {"temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}
        )
        gen = self.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=not greedy,
            **sampling,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            use_cache=True,
            return_dict_in_generate=True,
            output_logits=True,
            synced_gpus=self.synced,
        )
        new_tokens = gen.sequences[:, ids.shape[1] :].cpu()
        # raw logits of every step -> log-probs of the distribution that was sampled from.
        logits = torch.stack(gen.logits, dim=1).float().cpu()
        if not greedy:
            logits = logits / settings.temperature
        token_logps = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1))
        out = []
        for i, (group, prompt) in enumerate(rows):
            toks = new_tokens[i].tolist()
            n, finished = truncate_at_eos(toks, self.eos_ids)
            out.append(
                Completion(
                    group=group,
                    prompt_ids=tuple(prompt),
                    token_ids=tuple(toks[:n]),
                    logprobs=tuple(token_logps[i, :n, 0].tolist()),
                    finished=finished,
                )
            )
        return out
