"""Online policy losses vs TRL 1.16's own loss code (GRPOTrainer, RLOOTrainer, GMPOTrainer).

We build the trainers with ``object.__new__`` and set only the attributes their ``_compute_loss``
reads; the per-token log-probs are injected through ``_get_per_token_logps_and_entropies``. Both
sides get identical float64 inputs; loss and gradient w.r.t. the log-probs must agree to 1e-6.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from accelerate import Accelerator
from trl.experimental.gmpo.gmpo_trainer import GMPOTrainer
from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.rloo_trainer import RLOOTrainer

from ptlab.algorithms.online import policy_objective, resolve_online_algorithm
from ptlab.algorithms.online.policy_losses import rollout_is_weights
from ptlab.algorithms.types import RolloutBatch

B, T = 6, 7
TOL = 1e-6


@pytest.fixture(scope="module")
def accelerator() -> Accelerator:
    return Accelerator(cpu=True)


def _inputs(seed: int, spread: float = 0.3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2 - 0.05
    mask = torch.ones(B, T, dtype=torch.float64)
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    mask[torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)] = 0.0
    return {
        "logps": logps,
        "old": logps + spread * torch.randn(B, T, generator=g, dtype=torch.float64),
        "ref": logps + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64),
        "rollout": logps + 0.2 * torch.randn(B, T, generator=g, dtype=torch.float64),
        "adv": torch.randn(B, generator=g, dtype=torch.float64),
        "mask": mask,
        "entropy": torch.rand(B, T, generator=g, dtype=torch.float64) * 3,
    }


def _prepare(
    trainer: Any, x: dict[str, torch.Tensor], leaf: torch.Tensor, accelerator: Accelerator
) -> None:
    trainer.model = torch.nn.Linear(1, 1)  # only .training is read
    trainer.accelerator = accelerator
    trainer.current_gradient_accumulation_steps = 1
    trainer.aux_loss_enabled = False
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (leaf, x["entropy"], None)


def _trl_inputs(x: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": x["mask"],
        "advantages": x["adv"],
        "old_per_token_logps": x["old"],
        "ref_per_token_logps": x["ref"],
        "num_items_in_batch": x["mask"].sum(),
    }


def trl_grpo(
    loss_type: str, x: dict[str, torch.Tensor], accelerator: Accelerator, **cfg: Any
) -> tuple[float, torch.Tensor]:
    """Loss and d loss / d logps from TRL's GRPOTrainer._compute_loss."""
    leaf = x["logps"].clone().requires_grad_(True)
    t = object.__new__(GRPOTrainer)
    _prepare(t, x, leaf, accelerator)
    t.loss_type = loss_type
    t.top_entropy_quantile = 1.0
    t.off_policy_mask_threshold = None
    t.importance_sampling_level = cfg.get("level", "token")
    t.beta = cfg.get("beta", 0.0)
    t.epsilon_low, t.epsilon_high = cfg.get("eps_low", 0.2), cfg.get("eps_high", 0.2)
    t.max_completion_length = T
    is_ratio = cfg.get("is_ratio")
    t.use_vllm = t.vllm_importance_sampling_correction = is_ratio is not None
    t.entropy_coef = cfg.get("entropy_coef", 0.0)
    t._entropy_bonus_enabled = t.entropy_coef > 0
    t.use_adaptive_entropy = False
    t.args = SimpleNamespace(
        use_bias_correction_kl=False,
        delta=cfg.get("delta"),
        sapo_temperature_pos=1.0,
        sapo_temperature_neg=1.05,
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
        steps_per_generation=1,
    )
    inputs = _trl_inputs(x)
    if is_ratio is not None:
        inputs["importance_sampling_ratio"] = is_ratio
    loss = t._compute_loss(None, inputs)
    loss.backward()
    return loss.item(), leaf.grad


def ours(
    name: str, x: dict[str, torch.Tensor], params: dict[str, Any], rollout: bool = False
) -> tuple[float, torch.Tensor]:
    leaf = x["logps"].clone().requires_grad_(True)
    batch = RolloutBatch(
        logps=leaf,
        mask=x["mask"],
        advantages=x["adv"].unsqueeze(-1) * x["mask"],
        old_logps=x["old"],
        ref_logps=x["ref"],
        rollout_logps=x["rollout"] if rollout else None,
        entropy=x["entropy"],
    )
    out = policy_objective(batch, resolve_online_algorithm(name, params))
    out.loss.backward()
    return out.loss.item(), leaf.grad


# (TRL loss_type, TRL config, our algorithm, our overrides)
GRPO_CASES = [
    ("grpo", {"beta": 0.04}, "grpo", {}),
    (
        "grpo",
        {"eps_high": 0.28, "beta": 0.1, "entropy_coef": 0.01},
        "grpo",
        {"clip_high": 0.28, "kl_coef": 0.1, "entropy_coef": 0.01},
    ),
    ("grpo", {"delta": 1.2}, "grpo", {"delta": 1.2, "kl_coef": 0.0}),
    ("bnpo", {}, "bnpo", {}),
    ("dr_grpo", {"beta": 0.02}, "dr_grpo", {"kl_coef": 0.02, "norm_length": T}),
    ("dapo", {"eps_high": 0.28}, "dapo", {}),
    ("dapo", {"eps_high": 0.28, "beta": 0.05}, "dapo", {"kl_coef": 0.05, "kl_estimator": "k3"}),
    ("cispo", {"eps_high": 1.1}, "cispo", {"cap": 1.1}),
    ("sapo", {}, "sapo", {}),
    ("sapo", {"beta": 0.04}, "sapo", {"kl_coef": 0.04}),
    ("luspo", {"level": "sequence"}, "luspo", {"clip_low": 0.2, "clip_high": 0.2}),
    ("vespo", {}, "vespo", {}),
    ("grpo", {"level": "sequence", "eps_low": 3e-4, "eps_high": 4e-4}, "gspo", {}),
    (
        "grpo",
        {"level": "sequence", "eps_low": 0.05, "eps_high": 0.08, "beta": 0.03},
        "gspo",
        {"clip_low": 0.05, "clip_high": 0.08, "kl_coef": 0.03},
    ),
]


@pytest.mark.parametrize(("trl_type", "cfg", "name", "params"), GRPO_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_trl_grpo_trainer(
    trl_type: str, cfg: dict, name: str, params: dict, seed: int, accelerator: Accelerator
) -> None:
    spread = 0.002 if name == "gspo" and "clip_low" not in params else 0.3
    x = _inputs(seed, spread)
    ref_loss, ref_grad = trl_grpo(trl_type, x, accelerator, **cfg)
    loss, grad = ours(name, x, params)
    assert loss == pytest.approx(ref_loss, abs=TOL, rel=TOL)
    torch.testing.assert_close(grad, ref_grad, atol=TOL, rtol=TOL)
    assert grad.abs().sum() > 0  # the comparison is not between two zero gradients


@pytest.mark.parametrize(("mode", "is_name"), [("truncate", "tis"), ("mask", "mis")])
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_rollout_correction_matches_trl(
    mode: str, is_name: str, level: str, accelerator: Accelerator
) -> None:
    """TRL multiplies the per-token loss by the vLLM importance ratio; ours by the same weights."""
    x = _inputs(3)
    rb = RolloutBatch(
        logps=x["logps"],
        mask=x["mask"],
        advantages=x["adv"].unsqueeze(-1),
        old_logps=x["old"],
        rollout_logps=x["rollout"],
    )
    w = rollout_is_weights(rb, mode, level, 0.5, 1.5)
    ref_loss, ref_grad = trl_grpo("dapo", x, accelerator, eps_high=0.28, is_ratio=w)
    loss, grad = ours(
        is_name,
        x,
        {"clip_high": 0.28, "is_level": level, "is_min": 0.5, "is_max": 1.5},
        rollout=True,
    )
    assert loss == pytest.approx(ref_loss, abs=TOL)
    torch.testing.assert_close(grad, ref_grad, atol=TOL, rtol=TOL)
    # the same correction as a recipe option on any loss
    opt = {
        "rollout_is": "tis" if mode == "truncate" else "mis",
        "rollout_is_level": level,
        "rollout_is_min": 0.5,
        "rollout_is_max": 1.5,
    }
    loss2, grad2 = ours("dapo", x, opt, rollout=True)
    assert loss2 == pytest.approx(ref_loss, abs=TOL)
    torch.testing.assert_close(grad2, ref_grad, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rloo_matches_trl_rloo_trainer(seed: int, accelerator: Accelerator) -> None:
    """TRL RLOOTrainer: PPO clip on the summed sequence ratio, mean over sequences."""
    x = _inputs(seed, spread=0.05)
    leaf = x["logps"].clone().requires_grad_(True)
    t = object.__new__(RLOOTrainer)
    _prepare(t, x, leaf, accelerator)
    t.epsilon_low, t.epsilon_high = 0.2, 0.2
    inputs = _trl_inputs(x) | {"old_logps": (x["old"] * x["mask"]).sum(1)}
    ref = t._compute_loss(None, inputs)
    ref.backward()
    loss, grad = ours("rloo", x, {})
    assert loss == pytest.approx(ref.item(), abs=TOL)
    torch.testing.assert_close(grad, leaf.grad, atol=TOL, rtol=TOL)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize(("beta", "eps"), [(0.0, 0.4), (0.05, 0.1)])
def test_gmpo_matches_trl_experimental_gmpo(
    beta: float, eps: float, accelerator: Accelerator
) -> None:
    x = _inputs(4, spread=0.2)
    leaf = x["logps"].clone().requires_grad_(True)
    t = object.__new__(GMPOTrainer)
    _prepare(t, x, leaf, accelerator)
    t.top_entropy_quantile = 1.0
    t.epsilon_low, t.epsilon_high, t.beta = eps, eps, beta
    ref = t._compute_loss(None, _trl_inputs(x))
    ref.backward()
    loss, grad = ours(
        "gmpo", x, {"clip_low": eps, "clip_high": eps, "kl_coef": beta, "kl_estimator": "k3"}
    )
    assert loss == pytest.approx(ref.item(), abs=TOL)
    torch.testing.assert_close(grad, leaf.grad, atol=TOL, rtol=TOL)
