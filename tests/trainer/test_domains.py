"""Domains: disjoint splits, determinism, exact verifiers, pairs and unpaired labels."""

from __future__ import annotations

import hashlib

import pytest

from ptlab.errors import UserError
from ptlab.trainer.domains import DOMAINS, Item, extract_answer, get_domain, split_of
from ptlab.trainer.domains.answers import answers_match, parse_letter, parse_number

NAMES = sorted(DOMAINS)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_disjoint_by_prompt_hash(name: str) -> None:
    dom = get_domain(name)
    hashes = {
        s: {_h(it.prompt) for it in dom.items(s, 300, seed=0) + dom.items(s, 100, seed=7)}
        for s in ("train", "validation", "eval")
    }
    assert not hashes["train"] & hashes["validation"]
    assert not hashes["train"] & hashes["eval"]
    assert not hashes["validation"] & hashes["eval"]
    assert all(split_of(it.prompt) == "eval" for it in dom.items("eval", 50))


@pytest.mark.parametrize("name", NAMES)
def test_items_are_deterministic_distinct_and_self_verifying(name: str) -> None:
    dom = get_domain(name)
    items = dom.items("train", 200, seed=3)
    assert items == get_domain(name).items("train", 200, seed=3)
    assert items[:50] == dom.items("train", 50, seed=3)
    assert items != dom.items("train", 200, seed=4)
    assert len({it.id for it in items}) == len({it.prompt for it in items}) == 200
    assert all(it.id == f"{name}-{_h(it.prompt)[:12]}" for it in items)
    for it in items:
        assert dom.verify(it, it.solution).reward == 1.0
        assert it.solution.endswith(f"Answer: {it.answer}")


@pytest.mark.parametrize("name", NAMES)
def test_given_pairs_chosen_correct_rejected_wrong_one_step(name: str) -> None:
    dom = get_domain(name)
    items = dom.items("train", 100)
    pairs = dom.given_pairs(items, seed=1)
    assert [p.item_id for p in pairs] == [it.id for it in items]
    for item, pair in zip(items, pairs, strict=True):
        assert pair.prompt == item.prompt and pair.chosen == item.solution
        assert (
            dom.verify(item, pair.chosen) == (1.0, False)
            or dom.verify(item, pair.chosen).reward == 1.0
        )
        verdict = dom.verify(item, pair.rejected)
        assert verdict.reward == 0.0 and not verdict.parse_failed
        # One corrupted step: the first differing line is a step, and the line count is equal.
        chosen, rejected = item.solution.splitlines(), pair.rejected.splitlines()
        assert len(chosen) == len(rejected)
        assert sum(a != b for a, b in zip(chosen[:-1], rejected[:-1], strict=True)) >= 1
    assert pairs == dom.given_pairs(items, seed=1)


def test_arith_corruption_carries_forward() -> None:
    item = Item(
        "x",
        "arith",
        "p",
        "28",
        "23 + 14 = 37\n37 - 9 = 28\nAnswer: 28",
        spec={"start": 23, "ops": [["add", 14], ["sub", 9]]},
    )
    from ptlab.trainer.domains.arith import solve

    assert solve(dict(item.spec), (0, 2)) == (["23 + 14 = 39", "39 - 9 = 30"], 30)


@pytest.mark.parametrize(
    ("gold", "completion", "reward", "parse_failed"),
    [
        ("1000", "so in total\nAnswer: 1,000", 1.0, False),
        ("1000", "Answer: $1,000.", 1.0, False),
        ("-3", "x = -3\nAnswer: -3", 1.0, False),
        ("-3", "Answer: 3", 0.0, False),
        ("3/4", "Answer: 0.75", 1.0, False),
        ("3/4", "Answer: 6/8", 1.0, False),
        ("3/4", "The answer is \\boxed{\\frac{3}{4}}", 1.0, False),
        ("3/4", "Answer: 0.7", 0.0, False),
        ("12", "#### 12", 1.0, False),
        ("12", "Answer: 11\nwait\nAnswer: 12", 1.0, False),
        ("12", "12", 0.0, True),
        ("12", "Answer: twelve", 0.0, False),
    ],
)
def test_numeric_verifier_exact(
    gold: str, completion: str, reward: float, parse_failed: bool
) -> None:
    dom = get_domain("algebra")
    item = Item("t", "algebra", "q", gold, f"Answer: {gold}")
    assert dom.verify(item, completion) == (reward, parse_failed) or (
        dom.verify(item, completion).reward == reward
        and dom.verify(item, completion).parse_failed == parse_failed
    )


@pytest.mark.parametrize(
    ("completion", "reward", "parse_failed"),
    [
        ("Answer: B", 1.0, False),
        ("Answer: (b)", 1.0, False),
        ("Answer: B) garden", 1.0, False),
        ("Answer: garden", 1.0, False),
        ("Answer: C", 0.0, False),
        ("Answer: attic", 0.0, False),
        ("the garden", 0.0, True),
        ("Answer: Z", 0.0, False),
    ],
)
def test_letter_verifier(completion: str, reward: float, parse_failed: bool) -> None:
    dom = get_domain("general")
    item = Item("t", "general", "q", "B", "Answer: B", ("kitchen", "garden", "attic", "shed"))
    verdict = dom.verify(item, completion)
    assert (verdict.reward, verdict.parse_failed) == (reward, parse_failed)


def test_answer_helpers() -> None:
    assert parse_number("1,000") == 1000 and parse_number("-0.5") == parse_number("-1/2")
    assert parse_number("abc") is None and parse_number("1/0") is None
    assert answers_match("\\frac{1}{2}", "0.5") and not answers_match("x+1", "x+2")
    assert answers_match("x + 1", "x+1")
    assert (
        parse_letter("(c)") == "C"
        and parse_letter("Dee", 4) is None
        and parse_letter("E", 4) is None
    )
    assert extract_answer("no final answer") is None
    assert extract_answer("The answer is 42.") == "42."


def test_self_sampled_pairs_and_unpaired_labels() -> None:
    dom = get_domain("arith")
    items = dom.items("train", 3)
    wrong = f"Answer: {int(items[0].answer) + 1}"
    samples = [
        [items[0].solution, wrong, "no answer", items[0].solution],  # duplicates removed
        [items[1].solution, items[1].solution],  # all correct: no pair
        [wrong, "garbage"],  # all wrong: no pair
    ]
    pairs = dom.self_sampled_pairs(items, samples, max_pairs_per_item=2)
    assert [(p.item_id, p.chosen, p.rejected) for p in pairs] == [
        (items[0].id, items[0].solution, wrong)
    ]
    labels = dom.unpaired(items, samples)
    assert [(lab.item_id, lab.completion, lab.desirable) for lab in labels] == [
        (items[0].id, items[0].solution, True),
        (items[0].id, wrong, False),
        (items[0].id, "no answer", False),
        (items[1].id, items[1].solution, True),
        (items[2].id, wrong, items[2].answer == wrong[len("Answer: ") :]),
        (items[2].id, "garbage", False),
    ]
    with pytest.raises(ValueError, match="3 items but 2"):
        dom.unpaired(items, samples[:2])


def test_difficulty_knobs_and_errors() -> None:
    one_step = get_domain("arith", max_steps=1).items("train", 50)
    assert max(len(it.solution.splitlines()) for it in one_step) <= 3  # box op = 2 lines
    assert max(len(it.solution.splitlines()) for it in get_domain("arith").items("train", 200)) > 3
    chains = get_domain("general", max_chain=2, distractors=0).items("train", 30)
    assert all(it.solution.splitlines()[0].count("->") <= 3 for it in chains)
    with pytest.raises(UserError, match="unknown domain 'chess'"):
        get_domain("chess")
    with pytest.raises(UserError, match="unknown difficulty knob"):
        get_domain("arith", depth=3)
    with pytest.raises(UserError, match="split 'test'"):
        get_domain("arith").items("test", 1)
    with pytest.raises(UserError, match="only"):
        get_domain("arith", max_steps=1, max_value=3).items("eval", 500)
