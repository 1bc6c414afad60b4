"""Recipe resolution, catalog coverage, and the end-to-end objective composition."""

from __future__ import annotations

import pytest
import torch

from ptlab.algorithms import registry
from ptlab.algorithms.online import (
    compute_advantages,
    policy_objective,
    resolve_online_algorithm,
    rewards_for_advantage,
)
from ptlab.algorithms.registry import InvalidParamError, UnknownAlgorithmError
from ptlab.algorithms.types import RewardBatch, RolloutBatch

D = torch.float64

# ALGORITHMS.md sections "Online preference", "Online RL: policy losses", "Advantage estimators".
# Catalog "dr_grpo" (advantage) is registered as dr_grpo_adv (the name dr_grpo is the policy loss);
# "tis / mis masks" → tis, mis; "clip_cov / kl_cov" → both; "gdpo/grpo with multiple rewards" → gdpo.
CATALOG_ONLINE_PREF = ["online_dpo", "spin", "xpo", "nash_md", "sppo", "raft"]
CATALOG_POLICY = [
    "ppo_clip",
    "dual_clip_ppo",
    "reinforce",
    "grpo",
    "dr_grpo",
    "bnpo",
    "dapo",
    "gspo",
    "gmpo",
    "cispo",
    "sapo",
    "gpg",
    "clip_cov",
    "kl_cov",
    "vapo",
    "prime",
    "tis",
    "mis",
    "passk_training",
]
CATALOG_ADVANTAGE = [
    "gae",
    "grpo_group_norm",
    "dr_grpo_adv",
    "rloo",
    "remax",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "opo",
    "passk",
    "gdpo",
]


def test_every_catalog_name_is_registered_with_the_right_family() -> None:
    for name in CATALOG_ONLINE_PREF:
        assert registry.get(name).family == "online-pref", name
    for name in CATALOG_POLICY:
        assert registry.get(name).family == "online-rl", name
    for name in CATALOG_ADVANTAGE:
        spec = registry.get(name)
        assert (spec.family, spec.role, spec.input_kind) == ("advantage", "advantage", "rewards"), (
            name
        )
    online = [
        s for s in registry.entries() if s.family in ("online-pref", "online-rl", "advantage")
    ]
    assert len(online) >= 30


def test_every_entry_has_citation_formula_and_valid_defaults() -> None:
    for spec in registry.entries():
        if spec.family not in ("online-pref", "online-rl", "advantage"):
            continue
        assert spec.citation and spec.formula and spec.fn.__doc__, spec.name
        registry.resolve_params(spec.name)  # defaults satisfy their own ranges
        if spec.role == "policy_loss":
            assert spec.trainer["aggregation"] in (
                "token-mean",
                "seq-mean-token-sum",
                "seq-mean-token-mean",
                "seq-mean-token-sum-norm",
            )
            assert registry.get(spec.trainer["advantage"]).role == "advantage"


def _rollout(seed: int = 0) -> RolloutBatch:
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(4, 5, generator=g, dtype=D) - 0.1
    return RolloutBatch(
        logps=logps.requires_grad_(True),
        mask=torch.ones(4, 5, dtype=D),
        advantages=torch.randn(4, 1, generator=g, dtype=D).expand(4, 5),
        old_logps=logps.detach() + 0.01,
        ref_logps=logps.detach() - 0.2,
        entropy=torch.rand(4, 5, generator=g, dtype=D),
        rewards=torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=D),
    )


@pytest.mark.parametrize("name", resolve_online_algorithm.__globals__["online_algorithm_names"]())
def test_every_online_algorithm_resolves_and_gives_finite_loss(name: str) -> None:
    recipe = resolve_online_algorithm(name)
    batch = _rollout()
    if recipe.policy_loss in ("tis", "mis"):
        batch = RolloutBatch(**{**batch.__dict__, "rollout_logps": batch.old_logps - 0.01})
    out = policy_objective(batch, recipe)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(batch.logps.grad).all()


def test_paper_defaults() -> None:
    grpo = resolve_online_algorithm("grpo")
    assert (grpo.policy_loss, grpo.advantage, grpo.aggregation) == (
        "grpo",
        "grpo_group_norm",
        "seq-mean-token-mean",
    )
    assert (
        grpo.options.kl_coef == 0.04 and grpo.options.kl_estimator == "k3" and grpo.needs_reference
    )
    dapo = resolve_online_algorithm("dapo")
    assert (
        dapo.loss_params.clip_high == 0.28
        and dapo.aggregation == "token-mean"
        and not dapo.needs_reference
    )
    assert dapo.trainer["dynamic_sampling"]
    dr = resolve_online_algorithm("dr_grpo")
    assert dr.advantage == "dr_grpo_adv" and dr.aggregation == "seq-mean-token-sum-norm"
    gspo = resolve_online_algorithm("gspo")
    assert (
        gspo.loss_params.clip_low,
        gspo.loss_params.clip_high,
        gspo.loss_params.ratio_level,
    ) == (3e-4, 4e-4, "sequence")
    rloo = resolve_online_algorithm("rloo")
    assert rloo.loss_params.ratio_level == "sequence_sum" and rloo.options.kl_placement == "reward"
    assert (
        resolve_online_algorithm("ppo").needs_critic
        and resolve_online_algorithm("vapo").needs_critic
    )
    assert resolve_online_algorithm("vapo").advantage_params.lam_adaptive_alpha == 0.05


def test_overrides_route_to_loss_advantage_and_options() -> None:
    r = resolve_online_algorithm(
        "grpo",
        {
            "clip_high": 0.3,
            "std_eps": 1e-6,
            "aggregation": "token-mean",
            "kl_estimator": "low_var_kl",
        },
    )
    assert r.loss_params.clip_high == 0.3 and r.advantage_params.std_eps == 1e-6
    assert r.aggregation == "token-mean" and r.options.kl_estimator == "low_var_kl"
    swapped = resolve_online_algorithm(
        "grpo", {"advantage": "rloo", "policy_loss": "cispo", "advantage.normalize": True}
    )
    assert (
        swapped.policy_loss == "cispo"
        and swapped.advantage == "rloo"
        and swapped.advantage_params.normalize
    )
    assert swapped.aggregation == "token-mean"  # cispo's own default once the loss is swapped


def test_bad_overrides_give_one_line_errors() -> None:
    with pytest.raises(InvalidParamError, match="unknown parameter 'clip_hgh'"):
        resolve_online_algorithm("grpo", {"clip_hgh": 0.3})
    with pytest.raises(InvalidParamError, match="aggregation='sum'"):
        resolve_online_algorithm("grpo", {"aggregation": "sum"})
    with pytest.raises(InvalidParamError, match="clip_low"):
        resolve_online_algorithm("grpo", {"clip_low": 1.5})
    with pytest.raises(InvalidParamError, match="not a policy loss"):
        resolve_online_algorithm("grpo", {"policy_loss": "rloo"})
    with pytest.raises(UnknownAlgorithmError, match="did you mean"):
        resolve_online_algorithm("grpoo")
    with pytest.raises(InvalidParamError, match="kl_coef"):
        resolve_online_algorithm("grpo", {"kl_coef": -1})


def test_kl_placement_reward_vs_loss() -> None:
    mask = torch.ones(2, 3, dtype=D)
    old = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]], dtype=D)
    ref = old - 0.1  # k1 per token = 0.1 → Σ = 0.3
    batch = RewardBatch(
        rewards=torch.tensor([1.0, 0.0], dtype=D), mask=mask, group_ids=torch.tensor([0, 0])
    )
    rloo = resolve_online_algorithm("rloo", {"kl_coef": 1.0})
    penalised = rewards_for_advantage(rloo, batch, old, ref)
    torch.testing.assert_close(penalised.rewards, torch.tensor([0.7, -0.3], dtype=D))
    grpo = resolve_online_algorithm("grpo")
    assert rewards_for_advantage(grpo, batch, old, ref) is batch  # KL lives in the loss for GRPO
    adv = compute_advantages(rloo, penalised).advantages
    torch.testing.assert_close(adv, torch.tensor([[1.0] * 3, [-1.0] * 3], dtype=D))


def test_entropy_bonus_and_value_loss_enter_the_objective() -> None:
    batch = _rollout()
    base = policy_objective(batch, resolve_online_algorithm("dapo")).loss
    with_h = policy_objective(batch, resolve_online_algorithm("dapo", {"entropy_coef": 0.5})).loss
    assert (base - with_h).item() == pytest.approx(0.5 * batch.entropy.mean().item())
    values = torch.zeros(4, 5, dtype=D)
    critic_batch = RolloutBatch(
        **{**batch.__dict__, "values": values, "returns": torch.ones(4, 5, dtype=D)}
    )
    ppo = resolve_online_algorithm("ppo", {"vf_coef": 0.5, "kl_placement": "none"})
    diff = policy_objective(critic_batch, ppo).loss - policy_objective(batch, ppo).loss
    assert diff.item() == pytest.approx(0.5 * 0.5 * 1.0)  # c_V · ½·mean((V − R)²)


def test_kl_in_token_rewards_for_token_level_estimators() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0]], dtype=D)
    old = torch.full((1, 3), -1.0, dtype=D)
    batch = RewardBatch(rewards=torch.tensor([2.0], dtype=D), mask=mask)
    recipe = resolve_online_algorithm("reinforce_pp", {"kl_coef": 0.5})  # k1 in the reward
    shaped = rewards_for_advantage(recipe, batch, old, old - 0.2)
    # outcome on the last valid token, −β·0.1 on every valid token, nothing on padding
    torch.testing.assert_close(shaped.token_rewards, torch.tensor([[-0.1, 1.9, 0.0]], dtype=D))
