"""The online recipe: every online registry entry trains, budget accounting counts generated
tokens, gradient accumulation does not change the loss, GRPO learns on the smallest zoo model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import ptlab.algorithms as algorithms
from ptlab.algorithms.online.recipes import RECIPES
from ptlab.api.models import PostTrainingRunSpec
from ptlab.errors import UserError
from ptlab.trainer import distributed
from ptlab.trainer.observability import Reporter, read_jsonl
from ptlab.trainer.recipes import online
from ptlab.trainer.recipes.common import RunContext
from tests.trainer.conftest import make_spec

ONLINE_ENTRIES = sorted(
    {s.name for s in algorithms.entries(family="online-rl") if s.role == "policy_loss"}
    | {s.name for s in algorithms.entries(family="online-pref")}
    | {name for name in RECIPES if name in algorithms.REGISTRY}
)


def online_spec(model: str, algorithm: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "data": {"domain": "arith", "train_size": 16},
        "training": {"budget": {"steps": 2}, "batch_size": 2, "lr": 1e-3, "max_len": 96,
                     "checkpoint_every": 2, "schedule": "constant"},
        "rollout": {"num_generations": 4, "max_new_tokens": 8},  # passk_training needs k=4
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value}
    return make_spec(model, algorithm, **base)


def run_recipe(spec_dict: dict[str, Any], out: Path) -> tuple[Any, list[dict[str, Any]]]:
    """Train through the online recipe only (no evaluation): the outcome and metrics.jsonl."""
    spec = PostTrainingRunSpec.model_validate(spec_dict)
    algo = algorithms.get(spec.algorithm.name)
    params = algorithms.resolve_params(algo.name, {})
    out.mkdir(parents=True, exist_ok=True)
    reporter = Reporter(out, is_main=True, labels={"run": "test", "algorithm": algo.name})
    ctx = RunContext(spec, algo, params, out, distributed.DistInfo(), reporter)
    try:
        outcome = online.train(ctx)
    finally:
        reporter.close()
    return outcome, read_jsonl(out / "metrics.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize("name", ONLINE_ENTRIES)
def test_every_online_entry_trains_two_steps(name: str, tiny_model: str, tmp_path: Path) -> None:
    outcome, rows = run_recipe(online_spec(tiny_model, name), tmp_path)
    b = outcome.budget
    assert [r["step"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    # every rollout is counted: 2 steps x 2 prompts x (≤ 4 samples + opponent/greedy) x 1..8 tokens
    assert 2 * 2 <= b.generated_tokens <= 2 * 2 * 5 * 8
    assert b.flops == 6 * b.n_params * b.train_tokens + 2 * b.n_params * b.generated_tokens
    assert rows[-1]["generated_tokens"] == b.generated_tokens


def test_prime_is_refused_with_a_clear_message(tiny_model: str, tmp_path: Path) -> None:
    """PRIME's entry is the implicit-PRM loss, not a policy loss: the recipe says so in one line."""
    with pytest.raises(UserError, match=r"prime .*role 'loss'"):
        run_recipe(online_spec(tiny_model, "prime"), tmp_path)


@pytest.mark.slow
def test_generated_tokens_count_toward_a_tokens_budget(tiny_model: str, tmp_path: Path) -> None:
    """A tokens budget of exactly one step's train + generated tokens allows that step; a budget
    of its train tokens alone allows none (generated tokens are charged)."""
    one, _ = run_recipe(online_spec(tiny_model, "grpo", training={"budget": {"steps": 1}}), tmp_path / "a")
    used = one.budget.train_tokens + one.budget.generated_tokens
    assert one.budget.generated_tokens > 0
    exact, _ = run_recipe(online_spec(tiny_model, "grpo", training={"budget": {"tokens": used}}), tmp_path / "b")
    assert (exact.budget.steps, exact.budget.train_tokens, exact.budget.generated_tokens) == (
        1, one.budget.train_tokens, one.budget.generated_tokens)
    short = online_spec(tiny_model, "grpo", training={"budget": {"tokens": one.budget.train_tokens}})
    none, _ = run_recipe(short, tmp_path / "c")
    assert none.budget.steps == 0 and none.budget.generated_tokens == 0


@pytest.mark.slow
def test_gradient_accumulation_gives_the_same_loss(tiny_model: str, tmp_path: Path) -> None:
    """Micro-batches are shares of the global-batch loss: K=1 and K=2 agree on every step."""
    one = online_spec(tiny_model, "dapo", training={"batch_size": 4, "grad_accum": 1})
    two = online_spec(tiny_model, "dapo", training={"batch_size": 4, "grad_accum": 2})
    _, a = run_recipe(one, tmp_path / "a")
    _, b = run_recipe(two, tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-6)
        assert x["reward_mean"] == y["reward_mean"]


def test_win_rates_count_ties_as_half() -> None:
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.5])
    groups = torch.tensor([0, 0, 0, 1, 1])
    # group 0: y0 beats y1, ties y2 → (1 + ½)/2; y1 loses both → 0; y2 like y0. group 1: ties → ½.
    assert online.win_rates(rewards, groups).tolist() == [0.75, 0.0, 0.75, 0.5, 0.5]


def test_overlong_buffer_longer_than_the_completion_limit_is_scaled() -> None:
    from ptlab.trainer.rollout import Completion

    comps = [Completion(0, (1,), (2,) * n, (0.0,) * n, n < 10) for n in (4, 8, 9, 10)]
    shaped = online.overlong_shaping(torch.zeros(4), comps, 10, {"overlong_buffer": 4096})
    # buffer = 20% of 10 = 2 tokens: lengths ≤ 8 unpunished, 9 → −0.5, 10 → −1.0 (eq. 13)
    assert shaped.tolist() == [0.0, 0.0, -0.5, -1.0]


def greedy_accuracy(model: Any, tokenizer: Any, n: int = 96) -> float:
    """Held-out greedy accuracy on ``n`` eval-split ``general`` items (s1 is below chance there:
    0.17; on arith its greedy accuracy is ~0, so GRPO would see no reward)."""
    from ptlab.trainer.domains import get_domain
    from ptlab.trainer.rollout import HFEngine, SamplingSettings

    domain = get_domain("general")
    items = domain.items("eval", n, seed=0)
    prompts = [online.prompt_ids(tokenizer, it, 200) for it in items]
    engine = HFEngine(model, tokenizer.pad_token_id, [tokenizer.eos_token_id])
    comps = engine.generate(prompts, 1, SamplingSettings(max_new_tokens=32, temperature=0.0))
    return float(online.score(domain, tokenizer, items, comps).mean())


@pytest.mark.slow
def test_grpo_raises_held_out_accuracy_on_the_smallest_zoo_model(zoo_s1: str, tmp_path: Path) -> None:
    from ptlab.trainer import modeling

    tokenizer = modeling.load_tokenizer(zoo_s1)
    torch.manual_seed(0)
    before = greedy_accuracy(modeling.load_model(zoo_s1), tokenizer)
    spec = online_spec(
        zoo_s1, "grpo",
        data={"domain": "general", "train_size": 256},
        training={"budget": {"steps": 12}, "batch_size": 8, "lr": 2e-3, "max_len": 256, "seed": 0},
        rollout={"num_generations": 8, "max_new_tokens": 32},
    )
    outcome, rows = run_recipe(spec, tmp_path)
    after = greedy_accuracy(outcome.model.eval(), tokenizer)
    assert rows[-1]["step"] == 12
    assert after > before + 0.05, (before, after)
