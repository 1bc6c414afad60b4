"""Online policy losses: clipping behaviour, closed-form values, gradcheck (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from ptlab.algorithms import registry
from ptlab.algorithms.online import aggregate, kl_estimate
from ptlab.algorithms.online.policy_losses import log_ratio
from ptlab.algorithms.types import RolloutBatch

D = torch.float64


def _batch(
    logps: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, **kw: torch.Tensor
) -> RolloutBatch:
    return RolloutBatch(
        logps=logps, mask=torch.ones_like(logps), advantages=adv, old_logps=old, **kw
    )


def _loss(name: str, batch: RolloutBatch, **params: object) -> torch.Tensor:
    spec = registry.get(name)
    return spec.fn(batch, registry.resolve_params(name, params)).loss


def test_ppo_gradient_zero_exactly_where_clip_active() -> None:
    # ratios e^{log r}: 1.5 (A>0, clipped high), 0.5 (A<0, clipped low), 1.1 / 0.9 inside, 1.5 with A<0 (not clipped)
    r = torch.tensor([[1.5, 0.5, 1.1, 0.9, 1.5, 0.5]], dtype=D)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, -1.0, 1.0]], dtype=D)
    logps = torch.log(r).clone().requires_grad_(True)
    loss = _loss("ppo_clip", _batch(logps, torch.zeros_like(r), adv))
    loss.sum().backward()
    active = torch.tensor([[True, True, False, False, False, False]])
    assert torch.all(logps.grad[active] == 0)
    # unclipped tokens: d(−rA)/d log r = −rA exactly
    torch.testing.assert_close(logps.grad[~active], (-r * adv)[~active])
    # closed form: −min(rA, clip(r)A)
    expected = torch.tensor([[-1.2, 0.8, -1.1, 0.9, 1.5, -0.5]], dtype=D)
    torch.testing.assert_close(loss.detach(), expected)


def test_dual_clip_bounds_negative_advantage_loss() -> None:
    r = torch.tensor([[4.0, 2.0, 4.0]], dtype=D)
    adv = torch.tensor([[-1.0, -1.0, 1.0]], dtype=D)
    logps = torch.log(r).clone().requires_grad_(True)
    loss = _loss("dual_clip_ppo", _batch(logps, torch.zeros_like(r), adv))  # c = 3
    torch.testing.assert_close(loss.detach(), torch.tensor([[3.0, 2.0, -1.2]], dtype=D))
    loss.sum().backward()
    # r=4 > c with A<0: loss = −cA is constant → zero gradient; r=2 < c: gradient −rA = 2
    torch.testing.assert_close(logps.grad, torch.tensor([[0.0, 2.0, 0.0]], dtype=D))
    with pytest.raises(ValueError, match="dual_clip_c"):
        _loss("ppo_clip", _batch(logps.detach(), torch.zeros_like(r), adv), dual_clip_c=0.5)


def test_gspo_sequence_ratio_is_exp_mean_token_log_ratio() -> None:
    g = torch.Generator().manual_seed(0)
    logps, old = -torch.rand(3, 5, generator=g, dtype=D), -torch.rand(3, 5, generator=g, dtype=D)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=D)
    batch = RolloutBatch(
        logps=logps, mask=mask, advantages=torch.ones(3, 5, dtype=D), old_logps=old
    )
    seq = torch.exp(log_ratio(batch, "sequence")).squeeze(-1)
    expected = torch.tensor(
        [math.exp(((logps[i] - old[i]) * mask[i]).sum() / mask[i].sum()) for i in range(3)], dtype=D
    )
    torch.testing.assert_close(seq, expected)
    summed = torch.exp(log_ratio(batch, "sequence_sum")).squeeze(-1)
    torch.testing.assert_close(summed, torch.exp(((logps - old) * mask).sum(-1)))


def test_cispo_keeps_gradient_on_capped_tokens() -> None:
    r = torch.tensor([[3.0, 0.5]], dtype=D)
    logps = torch.log(r).clone().requires_grad_(True)
    adv = torch.tensor([[1.0, -2.0]], dtype=D)
    loss = _loss("cispo", _batch(logps, torch.zeros_like(r), adv), cap=2.0)
    torch.testing.assert_close(
        loss.detach(), -torch.tensor([[2.0, 0.5]], dtype=D) * adv * torch.log(r)
    )
    loss.sum().backward()
    torch.testing.assert_close(
        logps.grad, torch.tensor([[-2.0, 1.0]], dtype=D)
    )  # −sg(w)·A, never zero
    rel = _loss(
        "cispo",
        _batch(torch.log(r), torch.zeros_like(r), adv),
        cap_mode="relative",
        clip_low=0.2,
        clip_high=0.28,
    )
    torch.testing.assert_close(rel, -torch.tensor([[1.28, 0.8]], dtype=D) * adv * torch.log(r))


def test_sapo_gate_closed_form_and_unit_slope_on_policy() -> None:
    logps = torch.zeros(1, 2, dtype=D, requires_grad=True)  # r = 1
    adv = torch.tensor([[1.0, -1.0]], dtype=D)
    loss = _loss("sapo", _batch(logps, torch.zeros(1, 2, dtype=D), adv))
    torch.testing.assert_close(
        loss.detach(), torch.tensor([[-2.0, 2.0 / 1.05]], dtype=D)
    )  # −(4/τ)σ(0)A
    loss.sum().backward()
    torch.testing.assert_close(
        logps.grad, -adv
    )  # 4σ(0)(1−σ(0)) = 1: same slope as the unclipped surrogate


def test_reinforce_and_gpg_closed_form() -> None:
    logps = torch.tensor([[-1.0, -2.0]], dtype=D)
    adv = torch.tensor([[0.5, 0.5]], dtype=D)
    for name in ("reinforce", "gpg"):
        torch.testing.assert_close(
            _loss(name, _batch(logps, logps, adv)), torch.tensor([[0.5, 1.0]], dtype=D)
        )


def test_vapo_adds_nll_on_positive_samples_only() -> None:
    logps = torch.full((2, 2), -1.0, dtype=D)
    adv = torch.zeros(2, 2, dtype=D)
    batch = _batch(logps, logps, adv, rewards=torch.tensor([1.0, 0.0], dtype=D))
    torch.testing.assert_close(
        _loss("vapo", batch), torch.tensor([[0.1, 0.1], [0.0, 0.0]], dtype=D)
    )


def test_kl_cov_penalises_top_covariance_tokens() -> None:
    logps = torch.tensor([[-0.1, -3.0, -1.0, -2.0]], dtype=D)
    old = logps - 0.1
    adv = torch.tensor([[2.0, -2.0, 0.0, 0.0]], dtype=D)
    loss = _loss("kl_cov", _batch(logps, old, adv), cov_ratio=0.25, kl_coef=1.0)
    # cov = (A − Ā)(logp − mean logp): token 0 is (2)(1.425) and token 1 is (−2)(−1.475) → token 1 largest
    base = -adv * math.exp(0.1)
    torch.testing.assert_close(loss, base + torch.tensor([[0.0, 0.1, 0.0, 0.0]], dtype=D))


def test_clip_cov_detaches_selected_tokens_reproducibly() -> None:
    logps = torch.tensor([[-0.1, -3.0, -1.0, -2.0]], dtype=D, requires_grad=True)
    adv = torch.tensor([[2.0, -2.0, 0.0, 0.0]], dtype=D)
    batch = _batch(logps, logps.detach(), adv)
    loss = _loss("clip_cov", batch, cov_ratio=0.25, cov_lb=1.0, cov_ub=5.0)
    loss.sum().backward()
    # both tokens 0 and 1 have covariance in (1, 5); exactly one (seeded choice) loses its gradient
    zero = logps.grad[0, :2] == 0
    assert zero.sum() == 1
    again = _loss(
        "clip_cov", _batch(logps.detach().requires_grad_(True), logps.detach(), adv), cov_ratio=0.25
    )
    torch.testing.assert_close(again.detach(), loss.detach())


def test_prime_implicit_prm_cross_entropy() -> None:
    logps = torch.tensor([[-1.0, -1.0]], dtype=D)
    ref = torch.tensor([[-2.0, -3.0]], dtype=D)
    batch = RolloutBatch(
        logps=logps,
        mask=torch.ones(1, 2, dtype=D),
        advantages=torch.zeros(1, 2, dtype=D),
        ref_logps=ref,
        rewards=torch.tensor([1.0], dtype=D),
    )
    loss = _loss("prime", batch, beta=0.5)  # implicit reward 0.5·(1 + 2) = 1.5 → −log σ(1.5)
    torch.testing.assert_close(loss, torch.full((1, 2), math.log1p(math.exp(-1.5)), dtype=D))


def test_kl_estimators_closed_form() -> None:
    d = torch.tensor([0.5, -0.5], dtype=D)
    zero = torch.zeros(2, dtype=D)
    torch.testing.assert_close(kl_estimate(d, zero, "k1"), d)
    torch.testing.assert_close(kl_estimate(d, zero, "k2"), d**2 / 2)
    torch.testing.assert_close(kl_estimate(d, zero, "k3"), torch.exp(-d) + d - 1)
    torch.testing.assert_close(
        kl_estimate(torch.tensor([-20.0], dtype=D), torch.zeros(1, dtype=D), "low_var_kl"),
        torch.tensor([10.0], dtype=D),
    )
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_estimate(d, zero, "k4")


def test_aggregation_modes_closed_form() -> None:
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=D)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=D)
    assert aggregate(loss, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(loss, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregate(loss, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / (2 * 3))
    assert aggregate(loss, mask, "seq-mean-token-sum-norm", norm_length=5).item() == pytest.approx(
        10 / (2 * 5)
    )
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(loss, mask, "token-sum")


def _random_rollout(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(3, 4, generator=g, dtype=D) - 0.1
    return {
        "logps": logps,
        "old": logps + 0.05 * torch.randn(3, 4, generator=g, dtype=D),
        "ref": logps + 0.3 * torch.randn(3, 4, generator=g, dtype=D),
        "rollout": logps + 0.03 * torch.randn(3, 4, generator=g, dtype=D),
        "adv": torch.randn(3, 1, generator=g, dtype=D).expand(3, 4).clone(),
        "mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=D),
    }


# entries without a TRL counterpart (checked above in closed form) — gradcheck on smooth regions
GRADCHECK = [
    "ppo_clip",
    "dual_clip_ppo",
    "reinforce",
    "gpg",
    "vapo",
    "tis",
    "mis",
    "passk_training",
    "kl_cov",
    "clip_cov",
    "prime",
]


@pytest.mark.parametrize("name", GRADCHECK)
def test_gradcheck(name: str) -> None:
    x = _random_rollout(7)
    spec = registry.get(name)
    params = registry.resolve_params(name, {"is_max": 5.0} if name in ("tis", "mis") else {})

    def f(logps: torch.Tensor) -> torch.Tensor:
        batch = RolloutBatch(
            logps=logps,
            mask=x["mask"],
            advantages=x["adv"],
            old_logps=x["old"],
            ref_logps=x["ref"],
            rollout_logps=x["rollout"],
            rewards=torch.tensor([1.0, 0.0, 1.0], dtype=D),
        )
        return spec.fn(batch, params).loss * x["mask"]

    assert torch.autograd.gradcheck(f, (x["logps"].clone().requires_grad_(True),))
