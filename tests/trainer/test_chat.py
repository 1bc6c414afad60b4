"""The one chat-template function used by training and evaluation."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from ptlab.trainer.chat import encode_prompt_completion, format_prompt
from ptlab.trainer.domains import get_domain
from ptlab.trainer.zoo.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    items = get_domain("arith").items("train", 200) + get_domain("general").items("train", 200)
    return train_tokenizer([t for it in items for t in (it.prompt, it.solution)], 400)


def test_format_prompt_is_chatml_with_generation_prompt(tok: PreTrainedTokenizerFast) -> None:
    assert format_prompt(tok, "What is 2 + 3?") == (
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_format_prompt_without_template_is_raw_text(tok: PreTrainedTokenizerFast) -> None:
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="<|im_end|>")
    assert format_prompt(bare, "Hi") == "Hi\n"


def test_tokenizer_splits_digits(tok: PreTrainedTokenizerFast) -> None:
    pieces = tok.convert_ids_to_tokens(
        tok("Mia has 1234 apples", add_special_tokens=False)["input_ids"]
    )
    assert [p for p in pieces if p.isdigit()] == ["1", "2", "3", "4"]
    assert tok.decode(tok("Mia has 1234 apples.")["input_ids"]) == "Mia has 1234 apples."


def test_encode_prompt_completion_layout_and_mask(tok: PreTrainedTokenizerFast) -> None:
    enc = encode_prompt_completion(tok, "What is 2 + 3?", "2 + 3 = 5\nAnswer: 5", max_len=128)
    prompt_ids = tok(format_prompt(tok, "What is 2 + 3?"), add_special_tokens=False)["input_ids"]
    completion_ids = tok("2 + 3 = 5\nAnswer: 5", add_special_tokens=False)["input_ids"]
    assert enc.input_ids == [*prompt_ids, *completion_ids, tok.eos_token_id]
    assert enc.prompt_len == len(prompt_ids)
    assert enc.completion_mask == [0] * len(prompt_ids) + [1] * (len(completion_ids) + 1)
    no_eos = encode_prompt_completion(tok, "What is 2 + 3?", "5", 128, add_eos=False)
    assert no_eos.input_ids[-1] != tok.eos_token_id


def test_truncation_cuts_completion_then_prompt_start(tok: PreTrainedTokenizerFast) -> None:
    prompt, completion = "Mia has 5 apples. " * 20, "1 + 1 = 2\n" * 20
    full = encode_prompt_completion(tok, prompt, completion, max_len=4096)
    cut = encode_prompt_completion(tok, prompt, completion, max_len=64)
    assert len(cut.input_ids) == 64 and cut.prompt_len == 64 - 16
    # The prompt's end (the generation prompt) is kept; the completion starts where it did.
    assert (
        cut.input_ids[: cut.prompt_len]
        == full.input_ids[full.prompt_len - cut.prompt_len : full.prompt_len]
    )
    assert cut.input_ids[cut.prompt_len :] == full.input_ids[full.prompt_len : full.prompt_len + 16]
