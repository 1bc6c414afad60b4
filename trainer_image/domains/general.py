"""``general``: multiple-choice reasoning over a generated world (ARC-like, miniature) — who is
tallest/oldest from pairwise facts, where an object is from nested containers, what property a
thing has from a chain of "every X is a Y" rules. Four options, answered by letter.

Difficulty knobs: ``max_chain`` (facts to chain, 2..max_chain), ``distractors`` (unrelated facts).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from ptlab.trainer.domains.answers import normalise_text, parse_letter
from ptlab.trainer.domains.base import Domain, Item

LETTERS = "ABCD"
PEOPLE = ("Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lou")
RELATIONS = (
    ("taller", "tallest", "shortest"),
    ("older", "oldest", "youngest"),
    ("faster", "fastest", "slowest"),
)
THINGS = ("ring", "key", "coin", "map", "note", "pin", "bead", "card")
BOXES = ("cup", "box", "bag", "jar", "case", "tin", "sack", "pot")
PLACES = ("kitchen", "garden", "garage", "attic", "office", "cellar", "hall", "shed")
KINDS = ("wug", "dax", "fep", "blick", "toma", "zup", "lorp", "mip")
COLORS = ("red", "blue", "green", "yellow", "white", "black", "pink", "gray")


def _order(
    rng: random.Random, chain: int, distractors: int
) -> tuple[list[str], str, str, list[str]]:
    rel, most, least = rng.choice(RELATIONS)
    people = rng.sample(PEOPLE, chain + 1)  # people[0] is the most
    facts = [f"{a} is {rel} than {b}." for a, b in itertools.pairwise(people)]
    rng.shuffle(facts)
    del distractors  # every person is already in the chain
    ask_most = rng.random() < 0.5
    answer = people[0] if ask_most else people[-1]
    question = f"Who is the {most if ask_most else least}?"
    steps = [" > ".join(people), f"The {most if ask_most else least} is {answer}."]
    others = [p for p in people if p != answer] + [p for p in PEOPLE if p not in people]
    return [*facts, question], answer, steps[0], [steps[1], *others]


def _location(
    rng: random.Random, chain: int, distractors: int
) -> tuple[list[str], str, str, list[str]]:
    things = rng.sample(THINGS, 1 + distractors)
    boxes = rng.sample(BOXES, chain - 1 + distractors)
    places = rng.sample(PLACES, 1 + distractors)
    path = [things[0], *boxes[: chain - 1], places[0]]
    facts = [f"The {a} is in the {b}." for a, b in itertools.pairwise(path)]
    for i in range(distractors):
        facts += [
            f"The {things[1 + i]} is in the {boxes[chain - 1 + i]}.",
            f"The {boxes[chain - 1 + i]} is in the {places[1 + i]}.",
        ]
    rng.shuffle(facts)
    answer = places[0]
    steps = [" -> ".join(path), f"The {things[0]} is in the {answer}."]
    others = list(places[1:]) + [p for p in PLACES if p not in places]
    return [*facts, f"Which room is the {things[0]} in?"], answer, steps[0], [steps[1], *others]


def _category(
    rng: random.Random, chain: int, distractors: int
) -> tuple[list[str], str, str, list[str]]:
    who = rng.choice(PEOPLE)
    kinds = rng.sample(KINDS, chain + distractors)
    colors = rng.sample(COLORS, 1 + distractors)
    path = kinds[:chain]
    facts = [f"Every {a} is a {b}." for a, b in itertools.pairwise(path)]
    facts.append(f"Every {path[-1]} is {colors[0]}.")
    facts += [f"Every {kinds[chain + i]} is {colors[1 + i]}." for i in range(distractors)]
    rng.shuffle(facts)
    answer = colors[0]
    steps = [" -> ".join([who, *path, answer]), f"{who} is {answer}."]
    others = list(colors[1:]) + [c for c in COLORS if c not in colors]
    return (
        [*facts, f"{who} is a {path[0]}.", f"What color is {who}?"],
        answer,
        steps[0],
        [steps[1], *others],
    )


_KINDS = {"order": _order, "location": _location, "category": _category}


class General(Domain):
    """Four-option multiple choice over generated entities and relations."""

    name = "general"

    @staticmethod
    def default_difficulty() -> dict[str, int]:
        return {"max_chain": 4, "distractors": 1}

    def _sample(self, rng: random.Random) -> tuple[str, str, str, tuple[str, ...], dict[str, Any]]:
        kind = rng.choice(sorted(_KINDS))
        chain = rng.randint(2, self.difficulty["max_chain"])
        lines, answer, work, (conclusion, *others) = _KINDS[kind](
            rng, chain, self.difficulty["distractors"]
        )
        wrong = rng.sample(others[:3] if len(others) >= 3 else others, 3)
        choices = [answer, *wrong]
        rng.shuffle(choices)
        letter = LETTERS[choices.index(answer)]
        options = [f"{LETTERS[i]}) {c}" for i, c in enumerate(choices)]
        prompt = "\n".join([" ".join(lines), *options])
        solution = "\n".join([work, conclusion, f"Answer: {letter}"])
        spec = {"kind": kind, "work": work, "conclusion": conclusion, "gold": answer}
        return prompt, letter, solution, tuple(choices), spec

    def _corrupt(self, item: Item, rng: random.Random) -> str:
        wrong = rng.choice([c for c in item.choices if c != item.spec["gold"]])
        conclusion = str(item.spec["conclusion"]).replace(str(item.spec["gold"]), wrong)
        return "\n".join(
            [str(item.spec["work"]), conclusion, f"Answer: {LETTERS[item.choices.index(wrong)]}"]
        )

    def _score(self, item: Item, answer: str) -> float:
        letter = parse_letter(answer, len(item.choices) or 4)
        if letter is None and item.choices:
            # The option's text instead of its letter ("Answer: garden").
            texts = [normalise_text(c) for c in item.choices]
            if normalise_text(answer) in texts:
                letter = LETTERS[texts.index(normalise_text(answer))]
        return float(letter == item.answer)
