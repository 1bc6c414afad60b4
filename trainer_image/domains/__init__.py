"""Generated, verifiable domains: ``arith`` (grade-school word problems), ``algebra`` (linear
equations, fractions, modular arithmetic) and ``general`` (4-option multiple-choice reasoning).

Public API (stable; the trainer and the study code use only this)::

    dom = get_domain("arith", max_steps=3)          # difficulty knobs are keyword arguments
    items = dom.items("train", n=512, seed=0)       # list[Item]: id, prompt, answer, solution
    dom.verify(item, completion) -> Verdict(reward in [0, 1], parse_failed)
    dom.given_pairs(items, seed=0) -> list[Pair]    # chosen = solution, rejected = 1 step wrong
    dom.self_sampled_pairs(items, samples_per_item, max_pairs_per_item=1) -> list[Pair]
    dom.unpaired(items, samples_per_item) -> list[Labeled]   # KTO/BCO desirable labels

Splits 'train' / 'validation' / 'eval' are disjoint by construction (a prompt's split is a
function of its hash). ``item.solution`` is the SFT target; completions end in
``Answer: <answer>`` (``\\boxed{}`` and ``#### N`` are also read by the verifier).
"""

from __future__ import annotations

from ptlab.errors import UserError
from ptlab.trainer.domains.algebra import Algebra
from ptlab.trainer.domains.arith import Arith
from ptlab.trainer.domains.base import (
    SPLITS,
    Domain,
    Item,
    Labeled,
    Pair,
    Verdict,
    extract_answer,
    split_of,
)
from ptlab.trainer.domains.general import General

DOMAINS: dict[str, type[Domain]] = {"arith": Arith, "algebra": Algebra, "general": General}

__all__ = [
    "DOMAINS",
    "SPLITS",
    "Domain",
    "Item",
    "Labeled",
    "Pair",
    "Verdict",
    "extract_answer",
    "get_domain",
    "split_of",
]


def get_domain(name: str, **difficulty: int) -> Domain:
    """The domain called ``name`` with optional difficulty knobs (UserError if unknown)."""
    if name not in DOMAINS:
        raise UserError(f"unknown domain {name!r}", f"choose one of {sorted(DOMAINS)}")
    return DOMAINS[name](**difficulty)
