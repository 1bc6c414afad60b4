"""Fuzzing the dataset adapters (ptlab.trainer.data): GSM8K, MATH, multiple-choice and
preference-pair jsonl (string and chat-message forms) read from local files.

Every file must give its items/pairs or a one-line UserError naming the file (and, for a bad
row, its line) — never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptlab.errors import UserError
from ptlab.trainer.data import load_items, load_pairs
from ptlab.trainer.domains import Item, Pair
from tests.fuzz.support import (
    any_text,
    assert_user_error,
    corrupted,
    count,
    fuzz,
    mutated,
    nasty_values,
    raw_garbage,
)

pytestmark = pytest.mark.slow


def _chat(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


# format -> valid rows (each a real shape of the public dataset it mirrors)
ROWS: dict[str, list[dict[str, Any]]] = {
    "gsm8k": [
        {"question": "Tom has 3 apples and buys 2 more. How many?",
         "answer": "He has 3+2=<<3+2=5>>5 apples.\n#### 5"},
        {"question": "A shirt costs $1,200 per dozen. Price of one?",
         "answer": "1,200/12=<<1200/12=100>>100\n#### 1,200"},
    ],
    "math": [
        {"problem": "Compute $\\frac12+\\frac14$.",
         "solution": "We get $\\boxed{\\frac{3}{4}}$.", "level": "Level 1", "type": "Algebra"},
        {"problem": "Solve $x^2=4$, $x>0$.", "solution": "So $x=\\boxed{2}$."},
    ],
    "mc": [
        {"question": "Which is a mammal?",
         "choices": {"text": ["cat", "trout", "crow"], "label": ["A", "B", "C"]},
         "answerKey": "A"},
        {"question": "2+2?", "choices": [{"text": "3", "label": "1"}, {"text": "4", "label": "2"}],
         "answerKey": "2"},
        {"question": {"stem": "Sun is a", "choices": [{"text": "star", "label": "A"},
                                                     {"text": "planet", "label": "B"}]},
         "answerKey": "A"},
    ],
    "pairs": [
        {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."},
        {"chosen": _chat("2+2?", "4"), "rejected": _chat("2+2?", "5")},
        {"prompt": "2+2?", "chosen": _chat("2+2?", "4"), "rejected": _chat("2+2?", "22")},
    ],
}
FORMATS = sorted(ROWS)


def jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


@st.composite
def dataset_files(draw: st.DrawFn, fmt: str) -> bytes:
    """A ``fmt`` jsonl file: valid rows with one mutated (wrong type, missing or unknown key,
    NaN, huge numbers, unicode), a damaged line, byte-level corruption, or garbage."""
    rows = draw(st.lists(st.sampled_from(ROWS[fmt]), min_size=1, max_size=4))
    how = draw(st.sampled_from(["row", "row", "row", "valid", "line", "bytes", "garbage"]))
    if how in ("row", "line"):
        at = draw(st.integers(0, len(rows) - 1))
        if how == "row":
            rows[at] = draw(mutated([rows[at]]))
            return jsonl(rows)
        lines = jsonl(rows).decode().splitlines(keepends=True)
        bad = draw(st.one_of(
            nasty_values.map(lambda v: json.dumps(v) + "\n"),
            any_text.map(lambda t: t + "\n"),
            st.sampled_from(["\n", "\r\n", "   \n", "{\n", "[1,\n", "NaN\n", "\ufeff{}\n",
                             '{"question": "' + "[" * 5000 + '"}\n', "[" * 5000 + "\n"]),
        ))
        lines.insert(at, bad)
        return "".join(lines).encode("utf-8", errors="surrogatepass")
    if how == "bytes":
        return draw(corrupted(jsonl(rows)))
    if how == "garbage":
        return draw(raw_garbage)
    return jsonl(rows)


def check_dataset(path: Path, fmt: str, limit: int | None) -> list[Any] | None:
    """Adapter result: well-typed items/pairs with unique ids, or a one-line UserError."""
    try:
        out = load_pairs(str(path), limit=limit) if fmt == "pairs" else load_items(
            str(path), fmt, limit=limit)
    except UserError as err:
        assert_user_error(err, names=str(path))
        count("rejected")
        return None
    count("loaded")
    kind = Pair if fmt == "pairs" else Item
    assert all(isinstance(x, kind) for x in out)
    ids = [x.item_id if isinstance(x, Pair) else x.id for x in out]
    assert len(set(ids)) == len(ids), ids
    for x in out:
        texts = (x.prompt, x.chosen, x.rejected) if isinstance(x, Pair) else (
            x.prompt, x.answer, x.solution)
        assert all(isinstance(t, str) for t in texts), x
        json.dumps(texts)  # serialisable (no object smuggled in as text)
        if isinstance(x, Item):
            assert x.answer.strip(), x  # every item can be scored
    if limit is not None:
        assert len(out) <= max(limit, 0)
    return out


@fuzz
@given(data=st.data(), fmt=st.sampled_from(FORMATS),
       limit=st.one_of(st.none(), st.integers(-1, 5)))
def test_dataset_files_load_or_fail_with_one_line(
    tmp_path: Path, data: st.DataObject, fmt: str, limit: int | None
) -> None:
    path = tmp_path / f"{fmt}.jsonl"
    path.write_bytes(data.draw(dataset_files(fmt), label="file"))
    check_dataset(path, fmt, limit)


@fuzz
@given(row=st.one_of(nasty_values, st.sampled_from([r for rs in ROWS.values() for r in rs])),
       fmt=st.sampled_from([*FORMATS, "gsm8k ", "GSM8K", "", "multiple_choice", "🤖"]))
def test_any_row_in_any_format_loads_or_fails_with_one_line(
    tmp_path: Path, row: Any, fmt: str
) -> None:
    """Rows of one format read as another (or a wrong format name) fail cleanly."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl([row]))
    if fmt in ROWS:
        check_dataset(path, fmt, None)
    else:
        with pytest.raises(UserError) as err:
            load_items(str(path), fmt)
        assert_user_error(err.value, names="format")


def test_valid_rows_give_the_expected_items(tmp_path: Path) -> None:
    """The fuzzer's starting rows are valid and parsed as documented."""
    loaded = {}
    for fmt, rows in ROWS.items():
        path = tmp_path / f"{fmt}.jsonl"
        path.write_bytes(jsonl(rows))
        loaded[fmt] = check_dataset(path, fmt, None)
    assert [i.answer for i in loaded["gsm8k"]] == ["5", "1200"]
    assert [i.answer for i in loaded["math"]] == ["\\frac{3}{4}", "2"]
    assert [i.answer for i in loaded["mc"]] == ["A", "B", "A"]
    assert [(p.prompt, p.chosen, p.rejected) for p in loaded["pairs"]] == [
        ("Say hi.", "Hi!", "No."), ("2+2?", "4", "5"), ("2+2?", "4", "22")]
