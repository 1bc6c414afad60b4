"""Online preference entries: closed-form values, gradcheck, trainer metadata."""

from __future__ import annotations

import math

import pytest
import torch

from ptlab.algorithms import registry
from ptlab.algorithms.types import PairedBatch, SingleBatch

D = torch.float64


def _paired(**kw: torch.Tensor) -> PairedBatch:
    # chosen: policy −1,−1 vs ref −1.5,−1.5 → h_w = 1; rejected: policy −2 vs ref −1.5 → h_l = −0.5 (1 token)
    return PairedBatch(
        policy_chosen_logps=torch.tensor([[-1.0, -1.0]], dtype=D),
        policy_rejected_logps=torch.tensor([[-2.0, 0.0]], dtype=D),
        chosen_mask=torch.tensor([[1.0, 1.0]], dtype=D),
        rejected_mask=torch.tensor([[1.0, 0.0]], dtype=D),
        ref_chosen_logps=torch.tensor([[-1.5, -1.5]], dtype=D),
        ref_rejected_logps=torch.tensor([[-1.5, 0.0]], dtype=D),
        **kw,
    )


def _run(name: str, batch: object, **params: object) -> torch.Tensor:
    return registry.get(name).fn(batch, registry.resolve_params(name, params)).loss


def test_online_dpo_sigmoid_and_ipo() -> None:
    # Δ = 1 − (−0.5) = 1.5
    assert _run("online_dpo", _paired(), beta=0.1).item() == pytest.approx(
        math.log1p(math.exp(-0.15))
    )
    assert _run("online_dpo", _paired(), beta=0.5, loss_type="ipo").item() == pytest.approx(
        (1.5 - 1.0) ** 2
    )


def test_spin_logistic_and_hinge() -> None:
    assert _run("spin", _paired(), beta=0.5).item() == pytest.approx(math.log1p(math.exp(-0.75)))
    assert _run("spin", _paired(), beta=0.5, loss_type="hinge").item() == pytest.approx(0.25)


def test_xpo_adds_exploration_bonus() -> None:
    batch = _paired(
        explore_logps=torch.tensor([[-3.0, -4.0]], dtype=D),
        explore_mask=torch.tensor([[1.0, 1.0]], dtype=D),
    )
    expected = math.log1p(math.exp(-0.15)) + 0.01 * (-7.0)
    assert _run("xpo", batch, beta=0.1, alpha=0.01).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="explore_logps"):
        _run("xpo", _paired())


def _single(rewards: list[float]) -> SingleBatch:
    return SingleBatch(
        logps=torch.tensor([[-1.0, -2.0]], dtype=D, requires_grad=True),
        mask=torch.tensor([[1.0, 1.0]], dtype=D),
        ref_logps=torch.tensor([[-1.5, -1.5]], dtype=D),
        rewards=torch.tensor(rewards, dtype=D),
    )


def test_nash_md_value_and_reinforce_gradient() -> None:
    batch = _single([0.8])
    loss = _run("nash_md", batch, beta=0.1)
    # log πθ(y) = −3, per-token log-ratio (0.5, −0.5): KL term Σ sg(d)·logp = 0.5·(−1) + (−0.5)(−2) = 0.5
    assert loss.item() == pytest.approx(0.1 * 0.5 - (0.8 - 0.5) * (-3.0))
    loss.sum().backward()
    # d/dlogp_t = β·sg(d_t) − (P − ½)
    torch.testing.assert_close(batch.logps.grad, torch.tensor([[0.05 - 0.3, -0.05 - 0.3]], dtype=D))


def test_sppo_squared_win_rate_target() -> None:
    # h = Σ(logp − ref) = 0; target η(P − ½) = 2·0.25
    assert _run("sppo", _single([0.75]), eta=2.0).item() == pytest.approx(0.25)


def test_raft_token_nll() -> None:
    out = registry.get("raft").fn(_single([1.0]), registry.resolve_params("raft"))
    assert out.token_level
    torch.testing.assert_close(out.loss.detach(), torch.tensor([[1.0, 2.0]], dtype=D))


@pytest.mark.parametrize("name", ["online_dpo", "spin", "xpo"])
def test_gradcheck_paired(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    base = _paired(
        explore_logps=-torch.rand(2, 3, generator=g, dtype=D),
        explore_mask=torch.ones(2, 3, dtype=D),
    )
    params = registry.resolve_params(name, {"alpha": 0.1} if name == "xpo" else {})

    def f(chosen: torch.Tensor, rejected: torch.Tensor, explore: torch.Tensor) -> torch.Tensor:
        b = PairedBatch(
            chosen,
            rejected,
            torch.ones(2, 3, dtype=D),
            torch.ones(2, 3, dtype=D),
            -torch.ones(2, 3, dtype=D),
            -torch.ones(2, 3, dtype=D),
            explore_logps=explore,
            explore_mask=base.explore_mask,
        )
        return registry.get(name).fn(b, params).loss

    args = tuple(-torch.rand(2, 3, generator=g, dtype=D).requires_grad_(True) for _ in range(3))
    assert torch.autograd.gradcheck(f, args)


# nash_md is a REINFORCE surrogate with a stop-gradient (its gradient is checked in closed form above)
@pytest.mark.parametrize("name", ["sppo", "raft"])
def test_gradcheck_single(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    ref = -torch.rand(2, 3, generator=g, dtype=D)
    rewards = torch.rand(2, generator=g, dtype=D)
    params = registry.resolve_params(name, {"eta": 2.0} if name == "sppo" else {})

    def f(logps: torch.Tensor) -> torch.Tensor:
        return (
            registry.get(name)
            .fn(
                SingleBatch(
                    logps=logps, mask=torch.ones(2, 3, dtype=D), ref_logps=ref, rewards=rewards
                ),
                params,
            )
            .loss
        )

    assert torch.autograd.gradcheck(
        f, (-torch.rand(2, 3, generator=g, dtype=D).requires_grad_(True),)
    )


def test_trainer_metadata_says_what_to_do() -> None:
    meta = {s.name: s.trainer for s in registry.entries(family="online-pref")}
    assert meta["online_dpo"]["sample"] == "pair" and meta["online_dpo"]["judge"] == "verifier"
    assert meta["spin"]["iterate_reference"] and meta["sppo"]["iterate_reference"]
    assert meta["nash_md"]["sample"] == "policy_vs_mixture"
    assert meta["xpo"]["sample"] == "policy_vs_reference"
    assert meta["raft"]["select"] == "best_of_n"
    assert not registry.get("raft").needs_reference and registry.get("online_dpo").needs_reference
