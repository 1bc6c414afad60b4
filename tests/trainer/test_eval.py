"""Evaluation: the pass@k estimator, batched generation and per-item scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ptlab.errors import UserError
from ptlab.trainer.chat import encode_prompt_completion
from ptlab.trainer.domains import get_domain
from ptlab.trainer.evaluation import choice_logliks, evaluate, generate, pass_at_k
from ptlab.trainer.zoo import load_pretrained


def test_pass_at_k_matches_closed_form() -> None:
    # Chen et al. 2021 eq. 1: pass@k = E[1 - C(n-c, k) / C(n, k)].
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(200, 0, 100) == 0.0 and pass_at_k(200, 150, 100) == 1.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)


@pytest.fixture(scope="module")
def model_tok(tiny_model: str) -> tuple[object, object]:
    return load_pretrained(tiny_model)


@pytest.mark.slow
def test_greedy_batched_equals_one_by_one_and_is_repeatable(
    model_tok: tuple[object, object],
) -> None:
    model, tok = model_tok
    prompts = [it.prompt for it in get_domain("arith").items("eval", 5)] + ["Hi"]
    batched = generate(model, tok, prompts, max_new_tokens=12, batch_size=6)
    single = [generate(model, tok, [p], max_new_tokens=12)[0] for p in prompts]
    assert batched == single  # left padding does not change greedy outputs
    assert batched == generate(model, tok, prompts, max_new_tokens=12, batch_size=4)
    assert all(len(c) == 1 and c[0] for c in batched)


@pytest.mark.slow
def test_sampling_is_seeded(model_tok: tuple[object, object]) -> None:
    model, tok = model_tok
    prompts = [it.prompt for it in get_domain("algebra").items("eval", 3)]
    a = generate(model, tok, prompts, max_new_tokens=10, num_samples=4, temperature=1.0, seed=5)
    assert [len(s) for s in a] == [4, 4, 4]
    assert a == generate(
        model, tok, prompts, max_new_tokens=10, num_samples=4, temperature=1.0, seed=5
    )
    assert a != generate(
        model, tok, prompts, max_new_tokens=10, num_samples=4, temperature=1.0, seed=6
    )


def test_choice_loglik_equals_difference_of_sequence_logprobs(
    model_tok: tuple[object, object],
) -> None:
    model, tok = model_tok
    item = get_domain("general").items("eval", 1)[0]

    def seq_logp(ids: list[int]) -> float:
        t = torch.tensor([ids])
        with torch.no_grad():
            return -float(model(input_ids=t, labels=t).loss) * (len(ids) - 1)

    scores = choice_logliks(model, tok, item)
    for choice, score in zip(item.choices, scores, strict=True):
        enc = encode_prompt_completion(tok, item.prompt, choice, 256, add_eos=False)
        expected = seq_logp(enc.input_ids) - seq_logp(enc.input_ids[: enc.prompt_len])
        assert score == pytest.approx(expected, abs=1e-3)


@pytest.mark.slow
def test_evaluate_writes_consistent_deterministic_items(
    model_tok: tuple[object, object], tmp_path: Path
) -> None:
    model, tok = model_tok
    dom = get_domain("arith")
    items = dom.items("eval", 6)
    kwargs = {
        "max_new_tokens": 8,
        "pass_k": (1, 2, 4),
        "n_samples": 4,
        "temperature": 1.0,
        "seed": 1,
    }
    metrics = evaluate(model, tok, dom, items, out_dir=tmp_path / "a", **kwargs)
    rows = [json.loads(line) for line in (tmp_path / "a" / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [it.id for it in items]
    for item, row in zip(items, rows, strict=True):
        verdict = dom.verify(item, row["completion"])
        assert (row["reward"], row["parse_failed"]) == (verdict.reward, verdict.parse_failed)
        for k in (1, 2, 4):
            assert row[f"pass@{k}"] == pass_at_k(4, row["n_correct"], k)
    assert metrics["accuracy"] == sum(r["reward"] for r in rows) / 6
    assert metrics["pass@4"] == sum(r["pass@4"] for r in rows) / 6
    assert metrics["n_items"] == 6.0
    evaluate(model, tok, dom, items, out_dir=tmp_path / "b", **kwargs)
    assert (tmp_path / "a" / "items.jsonl").read_bytes() == (
        tmp_path / "b" / "items.jsonl"
    ).read_bytes()
    # A second domain adds its rows; re-evaluating a domain replaces only its rows.
    general = get_domain("general")
    evaluate(
        model, tok, general, general.items("eval", 3), max_new_tokens=8, out_dir=tmp_path / "a"
    )
    evaluate(
        model, tok, "general", general.items("eval", 2), max_new_tokens=8, out_dir=tmp_path / "a"
    )
    domains = [
        json.loads(x)["domain"] for x in (tmp_path / "a" / "items.jsonl").read_text().splitlines()
    ]
    assert domains == ["arith"] * 6 + ["general"] * 2
    with pytest.raises(UserError, match="pass_k"):
        evaluate(model, tok, dom, items, pass_k=(8,), n_samples=4)


@pytest.mark.slow
def test_pretrained_zoo_model_has_real_skill(zoo_s1: str, tmp_path: Path) -> None:
    """The smallest zoo model follows the chat format and solves some eval items."""
    model, tok = load_pretrained(zoo_s1)
    dom = get_domain("arith")
    metrics = evaluate(model, tok, dom, dom.items("eval", 64), max_new_tokens=96, out_dir=tmp_path)
    assert metrics["parse_failure_rate"] < 0.2
    assert 0.0 < metrics["accuracy"] < 0.8
