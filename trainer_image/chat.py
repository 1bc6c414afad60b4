"""THE one place a prompt becomes model text. Training (SFT targets, preference pairs, rollouts)
and evaluation both call these functions, so the model is always scored on the format it was
trained on.

    format_prompt(tokenizer, prompt) -> str           # chat template + generation prompt
    encode_prompt_completion(tokenizer, prompt, completion, max_len) -> Encoded
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    """Token ids of prompt + completion (+ EOS); ``prompt_len`` ids belong to the prompt, so the
    completion mask is ``[0] * prompt_len + [1] * (len(input_ids) - prompt_len)``."""

    input_ids: list[int]
    prompt_len: int

    @property
    def completion_mask(self) -> list[int]:
        """1 on completion tokens (the ones a loss is taken over), 0 on the prompt."""
        return [0] * self.prompt_len + [1] * (len(self.input_ids) - self.prompt_len)


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """The text a model sees before its completion: the tokenizer's chat template applied to one
    user message with the assistant generation prompt; the raw prompt plus a newline when the
    tokenizer has no chat template (base models without one)."""
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        )
    return prompt + "\n"


def encode_prompt_completion(
    tokenizer: Any, prompt: str, completion: str, max_len: int, add_eos: bool = True
) -> Encoded:
    """Tokenise ``format_prompt(prompt)`` and ``completion`` (+ EOS) separately and join them.

    Truncation to ``max_len``: the completion is cut first; if the prompt alone leaves fewer
    than ``max_len // 4`` tokens, its *start* is dropped (the question's end stays).
    """
    prompt_ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
    keep_prompt = min(len(prompt_ids), max_len - min(len(completion_ids), max_len // 4))
    prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
    ids = (prompt_ids + completion_ids)[:max_len]
    return Encoded(ids, len(prompt_ids))
