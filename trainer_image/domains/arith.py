"""``arith``: grade-school multi-step word problems (buy, give away, boxes of k) with a worked
solution, one arithmetic step per line, and a numeric final answer.

Difficulty knobs: ``max_steps`` (events per story, 1..max_steps, uniform), ``max_value`` (largest
number in the story).
"""

from __future__ import annotations

import random
from typing import Any

from ptlab.trainer.domains.answers import answers_match
from ptlab.trainer.domains.base import Domain, Item

NAMES = ("Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Ben", "Eva", "Tom", "Lia", "Dan")
OBJECTS = ("apples", "marbles", "coins", "stickers", "cards", "books", "pens", "shells")
_ADD = ("buys {n} more", "finds {n} more", "gets {n} more")
_SUB = ("gives away {n}", "loses {n}", "sells {n}")


def solve(spec: dict[str, Any], wrong: tuple[int, int] | None = None) -> tuple[list[str], int]:
    """Solution lines and final value; ``wrong=(line, delta)`` shifts that line's result by
    ``delta`` and carries the error forward (a one-step corruption)."""
    lines: list[str] = []

    def emit(lhs: str, value: int) -> int:
        if wrong is not None and wrong[0] == len(lines):
            value += wrong[1]
        lines.append(f"{lhs} = {value}")
        return value

    total = spec["start"]
    for op in spec["ops"]:
        if op[0] == "add":
            total = emit(f"{total} + {op[1]}", total + op[1])
        elif op[0] == "sub":
            total = emit(f"{total} - {op[1]}", total - op[1])
        else:
            box = emit(f"{op[1]} * {op[2]}", op[1] * op[2])
            total = emit(f"{total} + {box}", total + box)
    return lines, total


class Arith(Domain):
    """Multi-step word problems with integer answers (GSM8K-like, miniature)."""

    name = "arith"

    @staticmethod
    def default_difficulty() -> dict[str, int]:
        return {"max_steps": 4, "max_value": 40}

    def _sample(self, rng: random.Random) -> tuple[str, str, str, tuple[str, ...], dict[str, Any]]:
        top = self.difficulty["max_value"]
        who, obj = rng.choice(NAMES), rng.choice(OBJECTS)
        total = rng.randint(2, top)
        ops: list[list[Any]] = []
        story = [f"{who} has {total} {obj}."]
        for _ in range(rng.randint(1, self.difficulty["max_steps"])):
            kind = rng.choice(("add", "sub", "box")) if total > 1 else "add"
            if kind == "add":
                n = rng.randint(1, top)
                story.append(f"{who} {rng.choice(_ADD).format(n=n)}.")
                ops.append(["add", n])
                total += n
            elif kind == "sub":
                n = rng.randint(1, total - 1)
                story.append(f"{who} {rng.choice(_SUB).format(n=n)}.")
                ops.append(["sub", n])
                total -= n
            else:
                k, each = rng.randint(2, 9), rng.randint(2, max(2, top // 4))
                story.append(f"{who} buys {k} boxes with {each} {obj} each.")
                ops.append(["box", k, each])
                total += k * each
        story.append(f"How many {obj} does {who} have now?")
        spec = {"start": int(story[0].split()[2]), "ops": ops}
        lines, value = solve(spec)
        solution = "\n".join([*lines, f"Answer: {value}"])
        return " ".join(story), str(value), solution, (), spec

    def _corrupt(self, item: Item, rng: random.Random) -> str:
        n_lines = len(solve(dict(item.spec))[0])
        delta = rng.choice((-10, -2, -1, 1, 2, 10))
        lines, value = solve(dict(item.spec), (rng.randrange(n_lines), delta))
        return "\n".join([*lines, f"Answer: {value}"])

    def _score(self, item: Item, answer: str) -> float:
        return float(answers_match(item.answer, answer))
