"""Online families: RL policy losses, advantage estimators, online preference, recipes.

Importing this package registers every online entry. Trainer entry points:
:func:`resolve_online_algorithm`, :func:`rewards_for_advantage`, :func:`compute_advantages`,
:func:`policy_objective`, :func:`aggregate`, :func:`kl_estimate`, :class:`CriticModel`.
"""

from ptlab.algorithms.online import advantages, online_pref, policy_losses  # noqa: F401  (registration)
from ptlab.algorithms.online.advantages import dynamic_sampling_keep, overlong_penalty
from ptlab.algorithms.online.aggregation import AGGREGATIONS, aggregate, masked_mean
from ptlab.algorithms.online.critic import CriticModel, ValueHead, value_loss, values_from_hidden
from ptlab.algorithms.online.kl import KL_ESTIMATORS, kl_estimate, kl_penalized_rewards
from ptlab.algorithms.online.recipes import (
    RECIPES,
    OnlineOptions,
    OnlineRecipe,
    compute_advantages,
    online_algorithm_names,
    policy_objective,
    resolve_online_algorithm,
    rewards_for_advantage,
)

__all__ = [
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "RECIPES",
    "CriticModel",
    "OnlineOptions",
    "OnlineRecipe",
    "ValueHead",
    "aggregate",
    "compute_advantages",
    "dynamic_sampling_keep",
    "kl_estimate",
    "kl_penalized_rewards",
    "masked_mean",
    "online_algorithm_names",
    "overlong_penalty",
    "policy_objective",
    "resolve_online_algorithm",
    "rewards_for_advantage",
    "value_loss",
    "values_from_hidden",
]
