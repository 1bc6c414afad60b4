"""Normalisation of final answers: numbers (``1,000``, ``-3``, ``3/4`` = ``0.75``), LaTeX
(``\\frac{3}{4}``, ``\\dfrac``, ``$...$``) and multiple-choice letters (``(B)``, ``b)``)."""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(/[-+]?\d+(\.\d*)?)?$")
_FRAC_RE = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_LETTER_RE = re.compile(r"^\(?([A-Za-z])\)?(?:[).:\s]|$)")


def _strip_latex(text: str) -> str:
    text = text.strip().strip("$").strip()
    text = _FRAC_RE.sub(r"(\1)/(\2)", text)
    for token in ("\\left", "\\right", "\\!", "\\,", "\\$", "\\%", "%", "\\text{", "}", "{"):
        text = text.replace(token, "")
    return text.replace(" ", "")


def parse_number(text: str) -> Fraction | None:
    """Exact value of a numeric answer, or None if it is not a number.

    Thousands separators, ``$``, a trailing period and LaTeX fractions are accepted.
    """
    text = _strip_latex(text).replace(",", "").rstrip(".")
    text = re.sub(r"^\((-?[\d.]+)\)/\((-?[\d.]+)\)$", r"\1/\2", text)
    if not _NUMBER_RE.match(text):
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def normalise_text(text: str) -> str:
    """Canonical form of a non-numeric answer (LaTeX spacing and delimiters removed)."""
    return _strip_latex(text).rstrip(".").lower()


def answers_match(gold: str, predicted: str) -> bool:
    """Exact equality of two answers: as numbers when both parse, else as normalised text."""
    gold_num, pred_num = parse_number(gold), parse_number(predicted)
    if gold_num is not None and pred_num is not None:
        return gold_num == pred_num
    return normalise_text(gold) == normalise_text(predicted)


def parse_letter(text: str, n_choices: int = 26) -> str | None:
    """The option letter of a multiple-choice answer (``B``, ``(b)``, ``B) Paris``), or None."""
    match = _LETTER_RE.match(text.strip())
    if not match:
        return None
    letter = match.group(1).upper()
    return letter if ord(letter) - ord("A") < n_choices else None
