"""Advantage estimators: hand-computed values, GAE vs a plain loop, identities and invariances."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ptlab.algorithms import registry
from ptlab.algorithms.online import dynamic_sampling_keep, overlong_penalty
from ptlab.algorithms.types import RewardBatch

D = torch.float64


def _adv(name: str, batch: RewardBatch, **params: object) -> torch.Tensor:
    return registry.get(name).fn(batch, registry.resolve_params(name, params)).advantages


def _group(rewards: list[float], mask: torch.Tensor | None = None, **kw: object) -> RewardBatch:
    r = torch.tensor(rewards, dtype=D)
    m = torch.ones(len(rewards), 3, dtype=D) if mask is None else mask
    return RewardBatch(
        rewards=r, mask=m, group_ids=torch.zeros(len(rewards), dtype=torch.long), **kw
    )  # type: ignore[arg-type]


def test_grpo_hand_computed_group_of_four() -> None:
    # mean 0.5, unbiased std sqrt(1/3) = 0.5773502691896258; A = ±0.5 / (std + 1e-4)
    adv = _adv("grpo_group_norm", _group([1.0, 0.0, 0.0, 1.0]))[:, 0]
    torch.testing.assert_close(
        adv,
        torch.tensor([0.8658754, -0.8658754, -0.8658754, 0.8658754], dtype=D),
        atol=1e-7,
        rtol=0,
    )
    verl = _adv("grpo_group_norm", _group([1.0, 0.0, 0.0, 1.0]), std_eps=1e-6)[:, 0]
    torch.testing.assert_close(
        verl,
        torch.tensor([0.8660239, -0.8660239, -0.8660239, 0.8660239], dtype=D),
        atol=1e-7,
        rtol=0,
    )


def test_dr_grpo_and_rloo_hand_computed() -> None:
    batch = _group([1.0, 2.0, 3.0, 6.0])
    torch.testing.assert_close(
        _adv("dr_grpo_adv", batch)[:, 0], torch.tensor([-2.0, -1.0, 0.0, 3.0], dtype=D)
    )
    # leave-one-out means 11/3, 10/3, 3, 2
    torch.testing.assert_close(
        _adv("rloo", batch)[:, 0], torch.tensor([-8 / 3, -4 / 3, 0.0, 4.0], dtype=D)
    )


def test_rloo_leave_one_out_identity_random() -> None:
    g = torch.Generator().manual_seed(0)
    r = torch.randn(12, generator=g, dtype=D)
    ids = torch.arange(3).repeat_interleave(4)
    adv = _adv("rloo", RewardBatch(rewards=r, mask=torch.ones(12, 2, dtype=D), group_ids=ids))[:, 0]
    for i in range(12):
        others = [r[j] for j in range(12) if ids[j] == ids[i] and j != i]
        assert adv[i].item() == pytest.approx((r[i] - sum(others) / len(others)).item(), abs=1e-12)


@pytest.mark.parametrize(
    "name", ["grpo_group_norm", "dr_grpo_adv", "rloo", "opo", "reinforce_pp_baseline", "gpg_adv"]
)
def test_constant_shift_per_group_leaves_advantages_unchanged(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    r = torch.randn(8, generator=g, dtype=D)
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    mask = (torch.rand(8, 5, generator=g) > 0.3).to(D)
    mask[:, 0] = 1
    shift = torch.where(ids == 0, 3.0, -7.5).to(D)
    a = _adv(name, RewardBatch(rewards=r, mask=mask, group_ids=ids))
    b = _adv(name, RewardBatch(rewards=r + shift, mask=mask, group_ids=ids))
    torch.testing.assert_close(a, b)


OUTCOME = [
    "grpo_group_norm",
    "dr_grpo_adv",
    "rloo",
    "opo",
    "passk",
    "gpg_adv",
    "reinforce_pp_baseline",
    "remax",
    "reinforce_pp",
]


@pytest.mark.parametrize("name", OUTCOME)
def test_advantage_on_every_completion_token(name: str) -> None:
    """Regression guard: outcome advantages must reach every completion token, not only the last."""
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=D)
    batch = _group([1.0, 0.0, 0.0, 1.0], mask, baseline_rewards=torch.full((4,), 0.25, dtype=D))
    adv = _adv(name, batch, **({"k": 2} if name == "passk" else {}))
    assert torch.all(adv[mask == 0] == 0)
    first = adv[:, :1].expand_as(adv)
    torch.testing.assert_close(adv * mask, first * mask)  # same value on every valid token
    assert torch.all(adv[mask == 1] != 0)


def test_opo_length_weighted_baseline() -> None:
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=D)
    # b = (1·1 + 2·1 + 3·0 + 4·0) / 10 = 0.3
    adv = _adv("opo", _group([1.0, 1.0, 0.0, 0.0], mask))[:, 0]
    torch.testing.assert_close(adv, torch.tensor([0.7, 0.7, -0.3, -0.3], dtype=D))


def test_passk_closed_form_and_brute_force() -> None:
    # n=4, c=1, k=2: R̄ = 1 − C(3,2)/C(4,2) = 0.5, σ = 0.5 → A_pos = 1, A_neg = (0.5 − C(2,1)/C(3,1))/0.5 = −1/3
    adv = _adv("passk", _group([1.0, 0.0, 0.0, 0.0]), k=2, std_eps=0.0)[:, 0]
    torch.testing.assert_close(adv, torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3], dtype=D))
    # brute force over all k-subsets for n=5, c=2, k=3
    rewards = [1.0, 0.0, 1.0, 0.0, 0.0]
    subsets = list(itertools.combinations(range(5), 3))
    mean = sum(max(rewards[j] for j in s) for s in subsets) / len(subsets)
    std = math.sqrt(mean * (1 - mean))
    brute = [
        (
            sum(max(rewards[j] for j in s) for s in subsets if i in s)
            / sum(1 for s in subsets if i in s)
            - mean
        )
        / std
        for i in range(5)
    ]
    adv = _adv("passk", _group(rewards), k=3, std_eps=0.0)[:, 0]
    torch.testing.assert_close(adv, torch.tensor(brute, dtype=D))
    with pytest.raises(ValueError, match="smaller than k"):
        _adv("passk", _group([1.0, 0.0]), k=4)


def test_remax_subtracts_greedy_reward() -> None:
    batch = _group([1.0, 0.0], baseline_rewards=torch.tensor([0.25, 0.25], dtype=D))
    torch.testing.assert_close(
        _adv("remax", batch), torch.tensor([[0.75] * 3, [-0.25] * 3], dtype=D)
    )


def test_reinforce_pp_batch_whitening_hand_computed() -> None:
    # two sequences of 2 tokens, returns [1,1] and [0,0]: mean 0.5, unbiased var 1/3 → ±0.5·sqrt(3)
    mask = torch.tensor([[1, 1], [1, 1]], dtype=D)
    adv = _adv("reinforce_pp", RewardBatch(rewards=torch.tensor([1.0, 0.0], dtype=D), mask=mask))
    h = 0.5 / math.sqrt(1 / 3 + 1e-8)
    torch.testing.assert_close(adv, torch.tensor([[h, h], [-h, -h]], dtype=D))


def test_gdpo_per_reward_normalisation_hand_computed() -> None:
    r = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=D)
    batch = RewardBatch(rewards=r, mask=torch.ones(2, 2, dtype=D), group_ids=torch.tensor([0, 0]))
    # reward 1: mean .5, unbiased std √.5 → ±0.5/(√.5 + ε); reward 2 is constant → 0; sum = reward 1's
    adv = _adv("gdpo", batch, std_eps=1e-4, scale="none")[:, 0]
    s = 0.5 / (math.sqrt(0.5) + 1e-4)
    torch.testing.assert_close(adv, torch.tensor([s, -s], dtype=D))
    # then whitened over the batch: (±s − 0)/(std([s, −s]) + ε) with std = s·√2
    adv = _adv("gdpo", batch, std_eps=1e-4)[:, 0]
    w = s / (s * math.sqrt(2) + 1e-4)
    torch.testing.assert_close(adv, torch.tensor([w, -w], dtype=D))


def test_gpg_alpha_counts_informative_groups() -> None:
    batch = RewardBatch(
        rewards=torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=D),
        mask=torch.ones(4, 2, dtype=D),
        group_ids=torch.tensor([0, 0, 1, 1]),
    )
    torch.testing.assert_close(
        _adv("gpg_adv", batch)[:, 0], torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=D)
    )


def test_prime_adv_hand_computed() -> None:
    # two completions of one group, 2 tokens each; implicit rewards per token, outcome 1 / 0
    token = torch.tensor([[0.2, 0.4], [0.0, -0.2]], dtype=D)
    batch = RewardBatch(
        rewards=torch.tensor([1.0, 0.0], dtype=D),
        mask=torch.ones(2, 2, dtype=D),
        group_ids=torch.tensor([0, 0]),
        token_rewards=token,
    )
    # leave-one-out baseline per token: other's mean implicit reward: seq0 → −0.1, seq1 → 0.3
    # process returns: seq0 [0.3+0.5, 0.5] = [0.8, 0.5]; seq1 [−0.3−0.5, −0.5] = [−0.8, −0.5]; outcome RLOO ±1
    expected = torch.tensor([[1.8, 1.5], [-1.8, -1.5]], dtype=D)
    torch.testing.assert_close(_adv("prime_adv", batch), expected)


def _gae_loop(rewards: list[float], values: list[float], gamma: float, lam: float) -> list[float]:
    adv, last = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_v = values[t + 1] if t + 1 < len(rewards) else 0.0
        last = rewards[t] + gamma * next_v - values[t] + gamma * lam * last
        adv[t] = last
    return adv


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (0.99, 1.0)])
def test_gae_matches_straightforward_reverse_loop(gamma: float, lam: float) -> None:
    g = torch.Generator().manual_seed(2)
    token = torch.randn(3, 6, generator=g, dtype=D)
    values = torch.randn(3, 6, generator=g, dtype=D)
    lengths = [6, 4, 1]
    mask = torch.zeros(3, 6, dtype=D)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    out = registry.get("gae").fn(
        RewardBatch(
            rewards=torch.zeros(3, dtype=D), mask=mask, token_rewards=token * mask, values=values
        ),
        registry.resolve_params("gae", {"gamma": gamma, "lam": lam, "whiten": False}),
    )
    for i, n in enumerate(lengths):
        expected = _gae_loop(token[i, :n].tolist(), values[i, :n].tolist(), gamma, lam)
        torch.testing.assert_close(out.advantages[i, :n], torch.tensor(expected, dtype=D))
        torch.testing.assert_close(
            out.returns[i, :n], torch.tensor(expected, dtype=D) + values[i, :n]
        )
        assert torch.all(out.advantages[i, n:] == 0)


def test_gae_length_adaptive_lambda() -> None:
    values = torch.tensor([[0.5, 0.2, 0.1, 0.0]], dtype=D)
    batch = RewardBatch(
        rewards=torch.tensor([1.0], dtype=D), mask=torch.ones(1, 4, dtype=D), values=values
    )
    out = registry.get("gae").fn(
        batch, registry.resolve_params("gae", {"lam_adaptive_alpha": 0.5, "whiten": False})
    )
    lam = 1 - 1 / (0.5 * 4)  # VAPO: λ = 1 − 1/(α·l) = 0.5
    expected = _gae_loop([0.0, 0.0, 0.0, 1.0], values[0].tolist(), 1.0, lam)
    torch.testing.assert_close(out.advantages[0], torch.tensor(expected, dtype=D))


def test_dapo_helpers() -> None:
    keep = dynamic_sampling_keep(
        torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0]), torch.tensor([0, 0, 1, 1, 2, 2])
    )
    assert keep.tolist() == [False, False, True, True, False, False]
    # L_max 20, buffer 4: ≤16 → 0; 18 → (16−18)/4 = −0.5; 21 → −1
    pen = overlong_penalty(torch.tensor([10, 16, 18, 20, 21]), max_length=20, buffer=4)
    torch.testing.assert_close(pen, torch.tensor([0.0, 0.0, -0.5, -1.0, -1.0], dtype=D))


def test_missing_inputs_give_clear_errors() -> None:
    no_groups = RewardBatch(rewards=torch.ones(2, dtype=D), mask=torch.ones(2, 2, dtype=D))
    with pytest.raises(ValueError, match="group_ids"):
        _adv("grpo_group_norm", no_groups)
    with pytest.raises(ValueError, match="baseline_rewards"):
        _adv("remax", no_groups)
    with pytest.raises(ValueError, match="values"):
        _adv("gae", no_groups)
