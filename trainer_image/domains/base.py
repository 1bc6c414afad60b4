"""Shared machinery of the generated domains: items, verdicts, splits and preference data.

A domain subclasses :class:`Domain` and implements three things: ``_sample(rng)`` (one problem
with its worked solution), ``_corrupt(item, rng)`` (the same solution with one step made
wrong) and ``_score(item, completion)`` (exact verification). Everything else — disjoint
splits, pair construction, unpaired labels — is defined here once.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ptlab.errors import UserError

SPLITS = ("train", "validation", "eval")
# Split of a prompt = hash(prompt) mod 100 in these buckets: a prompt can never be in two splits,
# whatever the seed or the number of items asked for.
_SPLIT_BUCKETS = {"train": range(0, 80), "validation": range(80, 90), "eval": range(90, 100)}
_ANSWER_RE = re.compile(r"answer\s*(?:is|:)\s*(.+)", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_HASHES_RE = re.compile(r"####\s*(.+)")


@dataclass(frozen=True)
class Item:
    """One problem. ``id`` is stable (domain + hash of the prompt); ``solution`` is the worked
    solution ending in ``Answer: <answer>`` (the SFT target); ``choices`` only for multiple
    choice; ``spec`` holds the generator's parameters (used to corrupt a step)."""

    id: str
    domain: str
    prompt: str
    answer: str
    solution: str
    choices: tuple[str, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Verdict:
    """Verifier output: ``reward`` in [0, 1]; ``parse_failed`` when no answer could be read."""

    reward: float
    parse_failed: bool


@dataclass(frozen=True)
class Pair:
    """A preference pair for one prompt: ``chosen`` is preferred over ``rejected``."""

    item_id: str
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class Labeled:
    """An unpaired completion with a binary label (KTO/BCO): ``desirable`` = verified correct."""

    item_id: str
    prompt: str
    completion: str
    desirable: bool
    reward: float


def prompt_hash(prompt: str) -> str:
    """Hex sha256 of a prompt (the basis of item ids and of split assignment)."""
    return hashlib.sha256(prompt.encode()).hexdigest()


def split_of(prompt: str) -> str:
    """The split a prompt belongs to (deterministic, by hash)."""
    bucket = int(prompt_hash(prompt)[:8], 16) % 100
    return next(name for name, rng in _SPLIT_BUCKETS.items() if bucket in rng)


def extract_answer(completion: str) -> str | None:
    """The final answer text of a completion, or None if it states none.

    Accepts ``Answer: X`` / ``the answer is X`` (last one wins), ``\\boxed{X}`` and ``#### X``.
    """
    for pattern in (_ANSWER_RE, _BOXED_RE, _HASHES_RE):
        found = pattern.findall(completion)
        if found:
            text = found[-1].strip()
            boxed = _BOXED_RE.findall(text)  # "the answer is \boxed{3}"
            return (boxed[-1] if boxed else text).strip() or None
    return None


class Domain(ABC):
    """A generated, verifiable task family. Subclasses set ``name`` and ``difficulty``."""

    name: str = ""

    def __init__(self, **difficulty: int) -> None:
        unknown = sorted(set(difficulty) - set(self.default_difficulty()))
        if unknown:
            raise UserError(
                f"domain {self.name!r}: unknown difficulty knob(s) {unknown}",
                f"valid knobs: {sorted(self.default_difficulty())}",
            )
        self.difficulty = {**self.default_difficulty(), **difficulty}

    # ---- what a domain implements -------------------------------------------------------
    @staticmethod
    @abstractmethod
    def default_difficulty() -> dict[str, int]:
        """Difficulty knobs with their defaults."""

    @abstractmethod
    def _sample(self, rng: random.Random) -> tuple[str, str, str, tuple[str, ...], dict[str, Any]]:
        """One problem: (prompt, answer, solution, choices, spec)."""

    @abstractmethod
    def _corrupt(self, item: Item, rng: random.Random) -> str:
        """The worked solution with one step made wrong (later steps follow from it)."""

    @abstractmethod
    def _score(self, item: Item, answer: str) -> float:
        """Reward in [0, 1] of an extracted answer."""

    # ---- public API ---------------------------------------------------------------------
    def items(self, split: str, n: int, seed: int = 0) -> list[Item]:
        """``n`` distinct items of ``split`` ('train' | 'validation' | 'eval'), deterministic in
        (domain, difficulty, split, n, seed); the first k of n items equal ``items(split, k)``."""
        if split not in SPLITS:
            raise UserError(f"split {split!r} is not one of {list(SPLITS)}")
        knobs = ",".join(f"{k}={v}" for k, v in sorted(self.difficulty.items()))
        rng = random.Random(f"{self.name}|{knobs}|{split}|{seed}")
        out: list[Item] = []
        seen: set[str] = set()
        for _ in range(200 * n + 1000):
            if len(out) == n:
                return out
            prompt, answer, solution, choices, spec = self._sample(rng)
            if prompt in seen or split_of(prompt) != split:
                continue
            seen.add(prompt)
            item_id = f"{self.name}-{prompt_hash(prompt)[:12]}"
            out.append(Item(item_id, self.name, prompt, answer, solution, choices, spec))
        if len(out) == n:
            return out
        raise UserError(
            f"domain {self.name!r}: only {len(out)} distinct {split} items at difficulty {knobs}",
            "ask for fewer items or raise the difficulty knobs",
        )

    def verify(self, item: Item, completion: str) -> Verdict:
        """Exact check of a completion's final answer against ``item.answer``."""
        answer = extract_answer(completion)
        if answer is None:
            return Verdict(0.0, True)
        return Verdict(self._score(item, answer), False)

    def given_pairs(self, items: Sequence[Item], seed: int = 0) -> list[Pair]:
        """One pair per item: chosen = the worked solution, rejected = it with one step
        corrupted (checked to verify as wrong)."""
        rng = random.Random(f"{self.name}|pairs|{seed}")
        pairs = []
        for item in items:
            for _ in range(50):
                rejected = self._corrupt(item, rng)
                if self.verify(item, rejected).reward < 1.0:
                    break
            else:
                raise RuntimeError(f"{item.id}: no corruption changed the answer")
            pairs.append(Pair(item.id, item.prompt, item.solution, rejected))
        return pairs

    def self_sampled_pairs(
        self,
        items: Sequence[Item],
        samples_per_item: Sequence[Sequence[str]],
        max_pairs_per_item: int = 1,
    ) -> list[Pair]:
        """Pairs from the model's own samples: correct (reward 1) vs incorrect, labelled by the
        verifier. Items whose samples are all right or all wrong give no pair.

        Args:
            items: the prompts sampled from.
            samples_per_item: ``samples_per_item[i]`` = k completions for ``items[i]``.
            max_pairs_per_item: at most this many (distinct-completion) pairs per item.
        """
        pairs = []
        for item, good, bad in self._partition(items, samples_per_item):
            for chosen, rejected in list(zip(good, bad, strict=False))[:max_pairs_per_item]:
                pairs.append(Pair(item.id, item.prompt, chosen.completion, rejected.completion))
        return pairs

    def unpaired(
        self, items: Sequence[Item], samples_per_item: Sequence[Sequence[str]]
    ) -> list[Labeled]:
        """Every sample labelled desirable (verified correct) or undesirable, for KTO/BCO."""
        out: list[Labeled] = []
        for _item, good, bad in self._partition(items, samples_per_item):
            out.extend(good + bad)
        return out

    def _partition(
        self, items: Sequence[Item], samples_per_item: Sequence[Sequence[str]]
    ) -> list[tuple[Item, list[Labeled], list[Labeled]]]:
        """Per item: (item, correct samples, incorrect samples), duplicates removed."""
        if len(items) != len(samples_per_item):
            raise ValueError(f"{len(items)} items but {len(samples_per_item)} sample lists")
        out = []
        for item, samples in zip(items, samples_per_item, strict=True):
            good: list[Labeled] = []
            bad: list[Labeled] = []
            for text in dict.fromkeys(samples):
                reward = self.verify(item, text).reward
                ok = reward >= 1.0
                (good if ok else bad).append(Labeled(item.id, item.prompt, text, ok, reward))
            out.append((item, good, bad))
        return out
