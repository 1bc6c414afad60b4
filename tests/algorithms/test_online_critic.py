"""Value head on a real (tiny, randomly initialised) HF causal LM: shared and separate backbones."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from ptlab.algorithms.online import CriticModel, value_loss, values_from_hidden

D = torch.float64


@pytest.fixture(scope="module")
def tiny_lm() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    return Qwen2ForCausalLM(cfg)


def test_value_loss_closed_form_and_clipping() -> None:
    values = torch.tensor([[1.0, 0.0]], dtype=D)
    returns = torch.tensor([[0.0, 0.0]], dtype=D)
    mask = torch.ones(1, 2, dtype=D)
    loss, _ = value_loss(values, returns, mask, clip=0.0)
    assert loss.item() == pytest.approx(0.5 * 0.5)  # ½·mean((1, 0)²)
    # old value 0.5, clip 0.2: clipped prediction 0.7 → (0.7)² < 1² so the max keeps the unclipped error
    old = torch.tensor([[0.5, 0.0]], dtype=D)
    loss_c, m = value_loss(values, returns, mask, old, clip=0.2)
    assert loss_c.item() == pytest.approx(0.25) and m["vf_clip_frac"].item() == 0.0
    # the other side: value moved toward the return beyond the clip → the clipped (larger) error counts
    loss_c2, m2 = value_loss(
        torch.tensor([[0.0, 0.0]], dtype=D),
        returns,
        mask,
        torch.tensor([[1.0, 0.0]], dtype=D),
        clip=0.2,
    )
    assert loss_c2.item() == pytest.approx(0.5 * 0.8**2 / 2) and m2["vf_clip_frac"].item() == 0.5


@pytest.mark.slow
def test_critic_on_separate_backbone_fits_returns(tiny_lm: Qwen2ForCausalLM) -> None:
    critic = CriticModel(tiny_lm)
    ids = torch.randint(0, 32, (4, 8), generator=torch.Generator().manual_seed(1))
    attn = torch.ones_like(ids)
    values = critic(ids, attn, prompt_length=3)
    assert values.shape == (4, 5)
    assert torch.all(values == 0)  # zero-initialised head
    returns = torch.linspace(-1, 1, 20).view(4, 5)
    mask = torch.ones(4, 5)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-2)
    first = None
    for _ in range(25):
        loss, _ = value_loss(critic(ids, attn, 3), returns, mask)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_shared_backbone_reads_same_positions_as_logps(tiny_lm: Qwen2ForCausalLM) -> None:
    critic = CriticModel(tiny_lm)
    torch.nn.init.normal_(critic.head.proj.weight, generator=torch.Generator().manual_seed(2))
    ids = torch.randint(0, 32, (2, 6), generator=torch.Generator().manual_seed(3))
    out = tiny_lm(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    # one policy forward gives both the completion logits (positions P−1 … L−2) and the values
    shared = values_from_hidden(critic.head, out.hidden_states[-1], prompt_length=2)
    torch.testing.assert_close(shared, critic(ids, torch.ones_like(ids), 2))
    assert shared.shape == out.logits[:, 1:-1].shape[:2]
