"""``algebra``: harder math — linear equations, fraction sums and modular arithmetic — with
worked solutions and exact answers (integers or reduced fractions ``p/q``; ``0.75`` = ``3/4``).

Difficulty knobs: ``max_coef`` (coefficients and denominators), ``max_value`` (solutions and
operands).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ptlab.trainer.domains.answers import answers_match
from ptlab.trainer.domains.base import Domain, Item

Wrong = tuple[int, int] | None


def fmt(value: Fraction | int) -> str:
    """An exact number as text: integer, or reduced ``p/q``."""
    value = Fraction(value)
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _signed(n: int) -> str:
    return f"+ {n}" if n >= 0 else f"- {-n}"


def _linear(spec: dict[str, Any], wrong: Wrong) -> tuple[list[str], Fraction]:
    a, b, c = spec["a"], spec["b"], spec["c"]
    rhs = c - b + (wrong[1] if wrong and wrong[0] == 0 else 0)
    x = Fraction(rhs, a) + (wrong[1] if wrong and wrong[0] == 1 else 0)
    op = "-" if b >= 0 else "+"
    return [f"{a}x = {c} {op} {abs(b)} = {rhs}", f"x = {rhs} / {a} = {fmt(x)}"], x


def _fraction(spec: dict[str, Any], wrong: Wrong) -> tuple[list[str], Fraction]:
    (p, q), (r, s), sign = spec["left"], spec["right"], spec["sign"]
    den = q * s // math.gcd(q, s)
    left, right = p * den // q, r * den // s
    num = left + sign * right + (wrong[1] if wrong else 0)
    total = Fraction(num, den)
    ops = "+" if sign > 0 else "-"
    lines = [f"{p}/{q} = {left}/{den}", f"{r}/{s} = {right}/{den}"]
    lines.append(f"{left}/{den} {ops} {right}/{den} = {num}/{den} = {fmt(total)}")
    return lines, total


def _modular(spec: dict[str, Any], wrong: Wrong) -> tuple[list[str], Fraction]:
    a, b, c, m = spec["a"], spec["b"], spec["c"], spec["m"]
    shift = [wrong[1] if wrong and wrong[0] == i else 0 for i in range(3)]
    prod = a * b + shift[0]
    total = prod + c + shift[1]
    rest = (total % m + shift[2]) % m
    return [
        f"{a} * {b} = {prod}",
        f"{prod} + {c} = {total}",
        f"{total} mod {m} = {rest}",
    ], Fraction(rest)


_SOLVERS: dict[str, Callable[[dict[str, Any], Wrong], tuple[list[str], Fraction]]] = {
    "linear": _linear,
    "fraction": _fraction,
    "modular": _modular,
}


def solve(spec: dict[str, Any], wrong: Wrong = None) -> tuple[list[str], Fraction]:
    """Solution lines and exact answer; ``wrong=(step, delta)`` corrupts one step."""
    return _SOLVERS[spec["kind"]](spec, wrong)


class Algebra(Domain):
    """Linear equations, fraction arithmetic, modular arithmetic (MATH-like, miniature)."""

    name = "algebra"

    @staticmethod
    def default_difficulty() -> dict[str, int]:
        return {"max_coef": 9, "max_value": 20}

    def _spec(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        coef, top = self.difficulty["max_coef"], self.difficulty["max_value"]
        kind = rng.choice(("linear", "fraction", "modular"))
        if kind == "linear":
            a, x, b = rng.randint(2, coef), rng.randint(-top, top), rng.randint(-top, top)
            c = a * x + b
            return f"Solve for x: {a}x {_signed(b)} = {c}.", {"kind": kind, "a": a, "b": b, "c": c}
        if kind == "fraction":
            q, s = rng.randint(2, coef), rng.randint(2, coef)
            p, r = rng.randint(1, q - 1), rng.randint(1, s - 1)
            sign = rng.choice((1, -1))
            prompt = f"Compute {p}/{q} {'+' if sign > 0 else '-'} {r}/{s}. Give a reduced fraction."
            return prompt, {"kind": kind, "left": [p, q], "right": [r, s], "sign": sign}
        a, b, c, m = (
            rng.randint(2, top),
            rng.randint(2, coef),
            rng.randint(0, top),
            rng.randint(3, 11),
        )
        return f"What is ({a} * {b} + {c}) mod {m}?", {"kind": kind, "a": a, "b": b, "c": c, "m": m}

    def _sample(self, rng: random.Random) -> tuple[str, str, str, tuple[str, ...], dict[str, Any]]:
        prompt, spec = self._spec(rng)
        lines, value = solve(spec)
        return prompt, fmt(value), "\n".join([*lines, f"Answer: {fmt(value)}"]), (), spec

    def _corrupt(self, item: Item, rng: random.Random) -> str:
        n_steps = len(solve(dict(item.spec))[0])
        wrong = (rng.randrange(n_steps), rng.choice((-2, -1, 1, 2)))
        lines, value = solve(dict(item.spec), wrong)
        return "\n".join([*lines, f"Answer: {fmt(value)}"])

    def _score(self, item: Item, answer: str) -> float:
        return float(answers_match(item.answer, answer))
