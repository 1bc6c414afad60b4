"""Row converters (GSM8K, MATH, ARC-style multiple choice, preference pairs) and the readers
that feed them from jsonl files or the Hugging Face hub. See the package docstring."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ptlab.errors import UserError
from ptlab.trainer.domains import Item, Pair
from ptlab.trainer.domains.answers import parse_number
from ptlab.trainer.domains.base import prompt_hash

Row = dict[str, Any]
VERIFIER_DOMAIN = {"gsm8k": "arith", "math": "algebra", "mc": "general"}
_CALC_RE = re.compile(r"<<[^>]*>>")  # GSM8K calculator annotations


class RowError(ValueError):
    """A row lacks a field or has the wrong type (the reader adds file and line)."""


def _field(row: Row, name: str, kind: type = str) -> Any:
    if not isinstance(row, dict) or name not in row:
        raise RowError(f"missing field {name!r}")
    if not isinstance(row[name], kind):
        kinds = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RowError(f"field {name!r} must be {kinds}, got {type(row[name]).__name__}")
    return row[name]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (nested braces allowed), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None


def gsm8k_item(row: Row, key: str) -> Item:
    """GSM8K: the number after ``####`` is the answer; the rest, the worked solution."""
    question, answer = _field(row, "question"), _field(row, "answer")
    work, sep, final = answer.rpartition("####")
    value = parse_number(final)
    if not sep or value is None:
        raise RowError("field 'answer' must end with '#### <number>'")
    gold = (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )
    solution = _CALC_RE.sub("", work).strip() + f"\nAnswer: {gold}"
    return Item(f"gsm8k-{key}", "arith", question.strip(), gold, solution)


def math_item(row: Row, key: str) -> Item:
    """MATH: the last ``\\boxed{}`` of the solution is the answer."""
    problem, solution = _field(row, "problem"), _field(row, "solution")
    gold = last_boxed(solution)
    if not gold:
        raise RowError("field 'solution' has no \\boxed{...} answer")
    return Item(
        f"math-{key}", "algebra", problem.strip(), gold, f"{solution.strip()}\nAnswer: {gold}"
    )


def mc_item(row: Row, key: str) -> Item:
    """ARC-style multiple choice; options are re-lettered A, B, C... in their given order."""
    question = row.get("question") if isinstance(row, dict) else None
    if isinstance(question, dict):
        stem, choices = _field(question, "stem"), _field(question, "choices", list)
    else:
        stem, choices = _field(row, "question"), _field(row, "choices", (dict, list))
    if isinstance(choices, dict):
        texts, labels = _field(choices, "text", list), _field(choices, "label", list)
    else:
        texts = [_field(c, "text") for c in choices]
        labels = [_field(c, "label") for c in choices]
    key_label = str(_field(row, "answerKey"))
    if len(texts) != len(labels) or not 2 <= len(texts) <= 26:
        raise RowError("choices need 2-26 options with one label each")
    if key_label not in map(str, labels):
        raise RowError(f"answerKey {key_label!r} is not one of the labels {labels}")
    letter = string.ascii_uppercase[list(map(str, labels)).index(key_label)]
    options = [f"{string.ascii_uppercase[i]}) {t}" for i, t in enumerate(texts)]
    prompt = "\n".join([stem.strip(), *options])
    return Item(f"mc-{key}", "general", prompt, letter, f"Answer: {letter}", tuple(texts))


def pair_from_row(row: Row, key: str) -> Pair:
    """A preference pair from strings or from single-turn chat messages."""
    chosen, rejected = row.get("chosen") if isinstance(row, dict) else None, None
    if isinstance(chosen, list):
        chosen_msgs, rejected_msgs = _field(row, "chosen", list), _field(row, "rejected", list)
        prompt = _single_turn_prompt(chosen_msgs, "chosen")
        if _single_turn_prompt(rejected_msgs, "rejected") != prompt:
            raise RowError("'chosen' and 'rejected' must share the same user message")
        chosen, rejected = _last_assistant(chosen_msgs), _last_assistant(rejected_msgs)
        if isinstance(row.get("prompt"), str) and row["prompt"] != prompt:
            raise RowError("'prompt' differs from the user message of 'chosen'")
    else:
        prompt, chosen, rejected = (
            _field(row, "prompt"),
            _field(row, "chosen"),
            _field(row, "rejected"),
        )
    return Pair(f"pair-{key}", prompt, chosen, rejected)


def _single_turn_prompt(messages: list[Any], name: str) -> str:
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles != ["user", "assistant"]:
        raise RowError(
            f"{name!r} must be [user, assistant] messages (single turn), got roles {roles}"
        )
    return str(_field(messages[0], "content"))


def _last_assistant(messages: list[Any]) -> str:
    return str(_field(messages[-1], "content"))


_ITEM_FORMATS: dict[str, Callable[[Row, str], Item]] = {
    "gsm8k": gsm8k_item,
    "math": math_item,
    "mc": mc_item,
}
FORMATS = (*_ITEM_FORMATS, "pairs")


def read_rows(source: str, split: str = "train") -> Iterator[tuple[str, Row]]:
    """(location, row) of a jsonl file (location = ``path:line``) or of a hub dataset named
    ``hf:<name>[:<config>]`` (location = ``name[split][index]``). Blank or non-object lines
    raise UserError with their line number."""
    if source.startswith("hf:"):
        yield from _hub_rows(source[3:], split)
        return
    path = Path(source)
    if not path.is_file():
        raise UserError(f"data file {source!r} does not exist", "give a .jsonl path or hf:<name>")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise UserError(
                    f"{where}: not UTF-8 text (byte {err.start})", "save the file as UTF-8"
                ) from None
            except json.JSONDecodeError as err:
                raise UserError(
                    f"{where}: not valid JSON ({err.msg})", "one JSON object per line"
                ) from err
            except RecursionError:
                raise UserError(f"{where}: JSON nested too deeply") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def _hub_rows(spec: str, split: str) -> Iterator[tuple[str, Row]]:
    import datasets

    name, _, config = spec.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split=split)
    except Exception as err:
        raise UserError(
            f"dataset {name!r} ({split}) cannot be loaded: {type(err).__name__}: {err}".splitlines()[
                0
            ],
            "use a local .jsonl file when the hub is unreachable",
        ) from err
    for index, row in enumerate(ds):
        yield f"{name}[{split}][{index}]", dict(row)


def _convert(
    source: str, split: str, limit: int | None, fn: Callable[[Row, str], Any]
) -> list[Any]:
    out = []
    for where, row in read_rows(source, split):
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append(fn(row, f"{len(out)}-{prompt_hash(json.dumps(row, sort_keys=True))[:8]}"))
        except RowError as err:
            raise UserError(f"{where}: {err}") from err
    return out


def load_items(source: str, fmt: str, split: str = "train", limit: int | None = None) -> list[Item]:
    """Items of a ``gsm8k`` / ``math`` / ``mc`` dataset; score them with
    ``get_domain(VERIFIER_DOMAIN[fmt])``. Ids are ``<fmt>-<row index>-<row hash>``."""
    if fmt not in _ITEM_FORMATS:
        raise UserError(f"data format {fmt!r} is not one of {sorted(_ITEM_FORMATS)}")
    return _convert(source, split, limit, _ITEM_FORMATS[fmt])


def load_pairs(source: str, split: str = "train", limit: int | None = None) -> list[Pair]:
    """Preference pairs (string or chat-message form)."""
    return _convert(source, split, limit, pair_from_row)
