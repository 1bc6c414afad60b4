"""Named online algorithms → (policy loss, advantage estimator, options) with the paper's defaults.

A study's ``algorithm {name, params}`` for an online method resolves here. ``params`` is flat;
each key goes to the recipe options, the policy loss's Params, or the advantage's Params (prefix
``loss.`` / ``advantage.`` to disambiguate, e.g. ``advantage.std_eps``). ``policy_loss`` and
``advantage`` themselves can be overridden to compose any pair.

Trainer API (all pure):
- :func:`resolve_online_algorithm` → :class:`OnlineRecipe`
- :func:`rewards_for_advantage` (KL in the reward when ``kl_placement == "reward"``)
- :func:`compute_advantages` → per-token advantages (B, T)
- :func:`policy_objective` → scalar loss = aggregate(policy loss [× rollout IS] [+ β·KL]) − c_H·H [+ c_V·V]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ptlab.algorithms import registry
from ptlab.algorithms.online.advantages import outcome_token_rewards
from ptlab.algorithms.online.aggregation import AGGREGATIONS, aggregate, masked_mean
from ptlab.algorithms.online.critic import value_loss
from ptlab.algorithms.online.kl import (
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    kl_estimate,
    kl_penalized_rewards,
    kl_penalized_token_rewards,
)
from ptlab.algorithms.online.policy_losses import rollout_is_weights
from ptlab.algorithms.registry import InvalidParamError
from ptlab.algorithms.types import AdvantageOutput, LossOutput, RewardBatch, RolloutBatch

_TOKEN_REWARD_ADVANTAGES = ("gae", "reinforce_pp", "remax")


@dataclass(frozen=True)
class OnlineOptions:
    """Options shared by every online recipe; ``None`` = the policy loss's paper default."""

    aggregation: str | None = None
    """token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm."""
    norm_length: int | None = None
    """constant L of seq-mean-token-sum-norm (max completion length); None = padded width."""
    kl_coef: float = 0.0
    """β of the KL(πθ‖πref) term; 0 = no reference model needed."""
    kl_estimator: str = "k3"
    """k1 | k2 | k3 | low_var_kl | abs."""
    kl_placement: str = "loss"
    """loss (added per token before aggregation, GRPO) | reward (subtracted from rewards, PPO/RLOO) | none."""
    entropy_coef: float = 0.0
    """c_H: loss −= c_H · token-mean entropy (TRL convention)."""
    vf_coef: float = 0.1
    """c_V of the value loss when the recipe uses a critic (TRL PPO default 0.1)."""
    value_clip: float = 0.2
    """ε of the clipped value loss; 0 = unclipped."""
    rollout_is: str = "none"
    """none | tis (truncate) | mis (mask): rollout-engine mismatch correction applied to any loss."""
    rollout_is_level: str = "token"
    rollout_is_min: float = 0.0
    rollout_is_max: float = 2.0


_CHOICES: dict[str, tuple[Any, ...]] = {
    "aggregation": tuple(AGGREGATIONS),
    "kl_estimator": tuple(KL_ESTIMATORS),
    "kl_placement": KL_PLACEMENTS,
    "rollout_is": ("none", "tis", "mis"),
    "rollout_is_level": ("token", "sequence"),
}
_NON_NEGATIVE = (
    "kl_coef",
    "entropy_coef",
    "vf_coef",
    "value_clip",
    "rollout_is_min",
    "rollout_is_max",
)


@dataclass(frozen=True)
class OnlineRecipe:
    """A resolved online algorithm: what the trainer computes, with every choice explicit."""

    name: str
    policy_loss: str
    loss_params: Any
    advantage: str
    advantage_params: Any
    options: OnlineOptions
    trainer: Mapping[str, Any] = field(default_factory=dict)
    """Extra trainer behaviour (e.g. dynamic_sampling, overlong_buffer, greedy_baseline)."""

    @property
    def aggregation(self) -> str:
        """The effective aggregation mode (option or the loss's paper default)."""
        return self.options.aggregation or registry.get(self.policy_loss).trainer.get(
            "aggregation", "token-mean"
        )

    @property
    def needs_reference(self) -> bool:
        return (self.options.kl_coef > 0 and self.options.kl_placement != "none") or registry.get(
            self.policy_loss
        ).needs_reference

    @property
    def needs_critic(self) -> bool:
        return bool(
            registry.get(self.policy_loss).needs_critic or registry.get(self.advantage).needs_critic
        )

    @property
    def needs_old_logps(self) -> bool:
        return bool(registry.get(self.policy_loss).needs_old_logps)


@dataclass(frozen=True)
class _Defaults:
    policy_loss: str
    advantage: str | None = None
    loss: Mapping[str, Any] = field(default_factory=dict)
    advantage_params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    trainer: Mapping[str, Any] = field(default_factory=dict)


# Paper defaults. Names equal to a policy loss reuse it with its default advantage estimator.
RECIPES: dict[str, _Defaults] = {
    # Shao+ 2402.03300 §4.2: β = 0.04, k3 in the loss, ε = 0.2, std-normalised group advantages.
    "grpo": _Defaults(
        "grpo", options={"kl_coef": 0.04, "kl_estimator": "k3", "kl_placement": "loss"}
    ),
    # Liu+ 2503.20783: no KL, no std, constant length normaliser.
    "dr_grpo": _Defaults("dr_grpo"),
    # Yu+ 2503.14476: clip-higher, token-mean, no KL, dynamic sampling, overlong shaping (4096 of 20480).
    "dapo": _Defaults(
        "dapo", trainer={"dynamic_sampling": True, "overlong_buffer": 4096, "overlong_penalty": 1.0}
    ),
    # TRL RLOOTrainer: summed sequence ratio, PPO clip 0.2, β = 0.05 k1 KL in the reward.
    "rloo": _Defaults(
        "ppo_clip",
        "rloo",
        loss={"ratio_level": "sequence_sum"},
        options={
            "aggregation": "seq-mean-token-mean",
            "kl_coef": 0.05,
            "kl_estimator": "k1",
            "kl_placement": "reward",
        },
    ),
    # PPO with a critic and GAE; KL penalty in the reward (InstructGPT / TRL PPO).
    "ppo": _Defaults(
        "ppo_clip", "gae", options={"kl_coef": 0.05, "kl_estimator": "k1", "kl_placement": "reward"}
    ),
    # ReMax: REINFORCE with the greedy completion's reward as baseline.
    "remax": _Defaults("reinforce", "remax", trainer={"greedy_baseline": True}),
    # REINFORCE++: PPO-clip surrogate, token-level k1 KL in the reward, batch-whitened returns.
    "reinforce_pp": _Defaults(
        "ppo_clip",
        "reinforce_pp",
        options={"kl_coef": 0.01, "kl_estimator": "k1", "kl_placement": "reward"},
    ),
    "reinforce_pp_baseline": _Defaults(
        "ppo_clip",
        "reinforce_pp_baseline",
        options={"kl_coef": 0.01, "kl_estimator": "k3", "kl_placement": "loss"},
    ),
    "opo": _Defaults("reinforce", "opo", options={"aggregation": "seq-mean-token-sum"}),
    # VAPO: value-based, decoupled GAE (critic λ = 1), length-adaptive policy λ (α = 0.05).
    "vapo": _Defaults(
        "vapo",
        "gae",
        advantage_params={"lam_adaptive_alpha": 0.05},
        trainer={"critic_lam": 1.0, "value_pretrain": True},
    ),
}


def online_algorithm_names() -> list[str]:
    """Every name :func:`resolve_online_algorithm` accepts (recipes + every policy loss)."""
    losses = [s.name for s in registry.entries(family="online-rl") if s.role == "policy_loss"]
    return sorted(set(RECIPES) | set(losses))


def _defaults(name: str) -> _Defaults:
    if name in RECIPES:
        return RECIPES[name]
    spec = registry.REGISTRY.get(name)
    if spec is None or spec.role != "policy_loss":
        hint = registry.close_matches(name)
        valid = [n for n in hint if n in online_algorithm_names()]
        suffix = (
            f"did you mean {' or '.join(valid)}?"
            if valid
            else f"valid: {', '.join(online_algorithm_names())}"
        )
        raise registry.UnknownAlgorithmError(f"unknown online algorithm {name!r} ({suffix})")
    return _Defaults(name)


def _split(
    name: str, params: Mapping[str, Any], loss: str, adv: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Route flat overrides to (options, loss params, advantage params)."""
    opt_keys = {f.name for f in dataclasses.fields(OnlineOptions)}
    loss_keys = set(registry.get(loss).param_ranges())
    adv_keys = set(registry.get(adv).param_ranges())
    options: dict[str, Any] = {}
    loss_p: dict[str, Any] = {}
    adv_p: dict[str, Any] = {}
    for key, value in params.items():
        if key.startswith("loss."):
            loss_p[key[5:]] = value
        elif key.startswith("advantage."):
            adv_p[key[10:]] = value
        elif key in opt_keys:
            options[key] = value
        elif key in loss_keys and key in adv_keys:
            raise InvalidParamError(
                f"{name}: {key!r} is a parameter of both {loss} and {adv}; write loss.{key} or advantage.{key}"
            )
        elif key in loss_keys:
            loss_p[key] = value
        elif key in adv_keys:
            adv_p[key] = value
        else:
            valid = ", ".join(sorted(opt_keys | loss_keys | adv_keys))
            raise InvalidParamError(f"{name}: unknown parameter {key!r} (valid: {valid})")
    return options, loss_p, adv_p


def _check_options(name: str, options: Mapping[str, Any]) -> OnlineOptions:
    for key, value in options.items():
        if (
            key in _CHOICES
            and value not in _CHOICES[key]
            and not (key == "aggregation" and value is None)
        ):
            raise InvalidParamError(f"{name}: {key}={value!r} is not one of {list(_CHOICES[key])}")
        if key in _NON_NEGATIVE and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise InvalidParamError(f"{name}: {key}={value!r} must be a number >= 0")
        if key == "norm_length" and value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidParamError(
                f"{name}: norm_length={value!r} must be a positive integer (max completion length)"
            )
    return OnlineOptions(**options)


def resolve_online_algorithm(name: str, params: Mapping[str, Any] | None = None) -> OnlineRecipe:
    """Resolve a named online algorithm plus user overrides into an :class:`OnlineRecipe`.

    Raises ``UnknownAlgorithmError`` / ``InvalidParamError`` with a one-line message naming the key.
    """
    params = dict(params or {})
    base = _defaults(name)
    loss = params.pop("policy_loss", base.policy_loss)
    loss_spec = registry.get(loss)
    if loss_spec.role != "policy_loss":
        raise InvalidParamError(
            f"{name}: policy_loss={loss!r} is not a policy loss (role {loss_spec.role})"
        )
    adv = params.pop(
        "advantage", base.advantage or loss_spec.trainer.get("advantage", "grpo_group_norm")
    )
    if registry.get(adv).role != "advantage":
        raise InvalidParamError(f"{name}: advantage={adv!r} is not an advantage estimator")
    options, loss_p, adv_p = _split(name, params, loss, adv)
    same_loss = loss == base.policy_loss
    return OnlineRecipe(
        name=name,
        policy_loss=loss,
        loss_params=registry.resolve_params(loss, {**(base.loss if same_loss else {}), **loss_p}),
        advantage=adv,
        advantage_params=registry.resolve_params(
            adv, {**(base.advantage_params if adv == base.advantage else {}), **adv_p}
        ),
        options=_check_options(name, {**base.options, **options}),
        trainer=dict(base.trainer),
    )


def rewards_for_advantage(
    recipe: OnlineRecipe, batch: RewardBatch, old_logps: Any = None, ref_logps: Any = None
) -> RewardBatch:
    """Apply the KL penalty to the rewards when ``kl_placement == "reward"`` (else unchanged).

    Token-reward estimators (gae, reinforce_pp, remax) get a per-token penalty on ``token_rewards``
    (outcome reward placed on the last token); the others a summed penalty on the outcome reward.
    """
    opts = recipe.options
    if opts.kl_placement != "reward" or opts.kl_coef == 0:
        return batch
    if old_logps is None or ref_logps is None:
        raise ValueError(f"{recipe.name}: KL in the reward needs old_logps and ref_logps")
    if recipe.advantage in _TOKEN_REWARD_ADVANTAGES:
        token = kl_penalized_token_rewards(
            outcome_token_rewards(batch),
            old_logps,
            ref_logps,
            batch.mask,
            opts.kl_coef,
            opts.kl_estimator,
        )
        return dataclasses.replace(batch, token_rewards=token)
    rewards = kl_penalized_rewards(
        batch.rewards, old_logps, ref_logps, batch.mask, opts.kl_coef, opts.kl_estimator
    )
    return dataclasses.replace(batch, rewards=rewards)


def compute_advantages(recipe: OnlineRecipe, batch: RewardBatch) -> AdvantageOutput:
    """Run the recipe's advantage estimator: per-token advantages (B, T) for every completion token."""
    return registry.get(recipe.advantage).fn(batch, recipe.advantage_params)


def policy_objective(batch: RolloutBatch, recipe: OnlineRecipe) -> LossOutput:
    """The scalar training loss of one micro-batch and its metrics.

    loss = agg_mode( l_t · w_t^IS + β·KL_t ) − c_H·mean_t H_t + c_V·L_V, where l_t is the policy
    loss entry's per-token loss, KL_t only when ``kl_placement == "loss"``, L_V only with a critic.
    """
    opts = recipe.options
    out = registry.get(recipe.policy_loss).fn(batch, recipe.loss_params)
    per_token = out.loss
    metrics = dict(out.metrics)
    if opts.rollout_is != "none":
        mode = "truncate" if opts.rollout_is == "tis" else "mask"
        per_token = per_token * rollout_is_weights(
            batch, mode, opts.rollout_is_level, opts.rollout_is_min, opts.rollout_is_max
        )
    if opts.kl_placement == "loss" and opts.kl_coef > 0:
        if batch.ref_logps is None:
            raise ValueError(
                f"{recipe.name}: kl_coef > 0 with kl_placement='loss' needs batch.ref_logps"
            )
        kl = kl_estimate(batch.logps, batch.ref_logps, opts.kl_estimator)
        per_token = per_token + opts.kl_coef * kl
        metrics["kl"] = masked_mean(kl.detach(), batch.mask)
    loss = aggregate(per_token, batch.mask, recipe.aggregation, opts.norm_length)
    metrics["policy_loss"] = loss.detach()
    if opts.entropy_coef > 0:
        if batch.entropy is None:
            raise ValueError(f"{recipe.name}: entropy_coef > 0 needs batch.entropy (B, T)")
        loss = loss - opts.entropy_coef * masked_mean(batch.entropy, batch.mask)
    if (
        recipe.needs_critic
        and batch.values is not None
        and batch.returns is not None
        and opts.vf_coef > 0
    ):
        vloss, vmetrics = value_loss(
            batch.values, batch.returns, batch.mask, batch.old_values, opts.value_clip
        )
        loss = loss + opts.vf_coef * vloss
        metrics |= vmetrics | {"value_loss": vloss.detach()}
    return LossOutput(loss=loss, metrics=metrics)
