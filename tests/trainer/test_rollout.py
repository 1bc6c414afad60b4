"""The HF rollout engine: EOS stopping, seeded determinism, log-probs equal to a forward pass."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from ptlab.errors import UserError
from ptlab.trainer import modeling
from ptlab.trainer.rollout import HFEngine, SamplingSettings, build_engine, pad_completions

EOS = 1
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12], [13]]


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        eos_token_id=EOS, pad_token_id=0, attn_implementation="eager",
    )
    return Qwen2ForCausalLM(config).eval()


def test_completions_stop_at_the_first_eos(model) -> None:
    eos = set(range(1, 20))  # many stop tokens: most samples stop early
    engine = HFEngine(model, pad_id=0, eos_ids=eos)
    out = engine.generate(PROMPTS, 4, SamplingSettings(max_new_tokens=12, seed=3))
    assert [c.group for c in out] == [0] * 4 + [1] * 4 + [2] * 4
    assert any(c.finished for c in out) and any(len(c.token_ids) > 1 for c in out)
    for c in out:
        assert c.prompt_ids == tuple(PROMPTS[c.group])
        assert len(c.logprobs) == len(c.token_ids)
        assert not any(t in eos for t in c.token_ids[:-1])  # nothing after the first stop token
        assert c.finished == (c.token_ids[-1] in eos)
        if not c.finished:
            assert len(c.token_ids) == 12


def test_same_seed_same_samples_and_global_rng_untouched(model) -> None:
    engine = HFEngine(model, pad_id=0)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = engine.generate(PROMPTS, 3, SamplingSettings(max_new_tokens=10, seed=7))
    assert torch.equal(torch.get_rng_state(), state)
    b = engine.generate(PROMPTS, 3, SamplingSettings(max_new_tokens=10, seed=7))
    c = engine.generate(PROMPTS, 3, SamplingSettings(max_new_tokens=10, seed=8))
    assert a == b
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_equal_a_forward_pass(model, temperature: float) -> None:
    engine = HFEngine(model, pad_id=0)
    out = engine.generate(PROMPTS, 4, SamplingSettings(max_new_tokens=10, temperature=temperature, seed=1))
    packed = pad_completions(out, pad_id=0)
    b = packed.batch
    with torch.no_grad():
        logits = modeling.shifted_logits(model, b.ids, b.attn) / temperature
    expected = modeling.gather_logps(logits, b.ids) * b.mask
    assert int(b.mask.sum()) == sum(len(c.token_ids) for c in out)
    assert torch.allclose(packed.rollout_logps, expected, atol=2e-5)


def test_greedy_is_the_argmax_of_a_forward_pass(model) -> None:
    engine = HFEngine(model, pad_id=0)
    (c,) = engine.generate([PROMPTS[1]], 1, SamplingSettings(max_new_tokens=6, temperature=0.0))
    ids = torch.tensor([list(c.prompt_ids + c.token_ids)])
    with torch.no_grad():
        logits = model(ids).logits[0]
    start = len(c.prompt_ids)
    argmax = logits[start - 1 : start - 1 + len(c.token_ids)].argmax(-1).tolist()
    assert list(c.token_ids) == argmax


def test_left_padding_does_not_change_samples(model) -> None:
    """A prompt batched with longer ones gives the same greedy completion as alone."""
    engine = HFEngine(model, pad_id=0)
    settings = SamplingSettings(max_new_tokens=8, temperature=0.0)
    alone = engine.generate([PROMPTS[2]], 1, settings)[0]
    batched = engine.generate(PROMPTS, 1, settings)[2]
    assert alone.token_ids == batched.token_ids


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_engine_without_vllm_is_a_one_line_user_error(model, tmp_path) -> None:
    with pytest.raises(UserError, match=r"rollout.engine=vllm .*setup_vllm_venv.sh.*rollout.engine: hf") as err:
        build_engine("vllm", model, pad_id=0, eos_ids=[EOS], model_dir=str(tmp_path))
    assert "\n" not in str(err.value)
