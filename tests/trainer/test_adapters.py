"""Real-dataset adapters on small fixture files the tests write (incl. malformed lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptlab.errors import UserError
from ptlab.trainer.data import VERIFIER_DOMAIN, load_items, load_pairs
from ptlab.trainer.data.adapters import last_boxed
from ptlab.trainer.domains import get_domain


def write_jsonl(path: Path, rows: list[object], raw: dict[int, str] | None = None) -> str:
    """Rows as jsonl; ``raw`` replaces line numbers (1-based) with literal text."""
    lines = [json.dumps(r) for r in rows]
    for lineno, text in (raw or {}).items():
        lines.insert(lineno - 1, text)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


GSM8K = [
    {
        "question": "Tom has 3 boxes of 400 pens. How many pens?",
        "answer": "3 * 400 = <<3*400=1200>>1200 pens\n#### 1,200",
    },
    {"question": "A debt of 5 grows by -8. What is it?", "answer": "5 - 8 = -3\n#### -3"},
]
MATH = [
    {"problem": "Simplify 6/8.", "solution": "Divide by 2: $\\boxed{\\frac{3}{4}}$."},
    {"problem": "Find x.", "solution": "So $x = \\boxed{\\sqrt{2}}$ and done."},
]


def test_gsm8k(tmp_path: Path) -> None:
    items = load_items(write_jsonl(tmp_path / "g.jsonl", GSM8K), "gsm8k")
    assert [(it.prompt, it.answer) for it in items] == [
        (GSM8K[0]["question"], "1200"),
        (GSM8K[1]["question"], "-3"),
    ]
    assert items[0].solution == "3 * 400 = 1200 pens\nAnswer: 1200"  # calculator notes removed
    assert items[0].id.startswith("gsm8k-0-") and items[1].id.startswith("gsm8k-1-")
    dom = get_domain(VERIFIER_DOMAIN["gsm8k"])
    assert dom.verify(items[0], "Answer: 1,200").reward == 1.0
    assert dom.verify(items[1], "The answer is -3.").reward == 1.0
    assert dom.verify(items[1], "Answer: 3").reward == 0.0
    assert load_items(str(tmp_path / "g.jsonl"), "gsm8k", limit=1) == items[:1]


def test_math(tmp_path: Path) -> None:
    items = load_items(write_jsonl(tmp_path / "m.jsonl", MATH), "math")
    assert [it.answer for it in items] == ["\\frac{3}{4}", "\\sqrt{2}"]
    dom = get_domain(VERIFIER_DOMAIN["math"])
    assert dom.verify(items[0], "Answer: 0.75").reward == 1.0
    assert dom.verify(items[0], "\\boxed{3/4}").reward == 1.0
    assert dom.verify(items[1], "Answer: \\sqrt{2}").reward == 1.0
    assert dom.verify(items[1], "Answer: \\sqrt{3}").reward == 0.0
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{unclosed") is None


def test_arc_style_multiple_choice(tmp_path: Path) -> None:
    rows = [
        {
            "question": "Which is a metal?",
            "choices": {"text": ["wood", "iron", "glass"], "label": ["A", "B", "C"]},
            "answerKey": "B",
        },
        {
            "question": {
                "stem": "Pick two.",
                "choices": [
                    {"text": "one", "label": "1"},
                    {"text": "two", "label": "2"},
                    {"text": "3", "label": "3"},
                    {"text": "4", "label": "4"},
                    {"text": "five", "label": "5"},
                ],
            },
            "answerKey": "2",
        },
    ]
    items = load_items(write_jsonl(tmp_path / "arc.jsonl", rows), "mc")
    assert items[0].prompt == "Which is a metal?\nA) wood\nB) iron\nC) glass"
    assert (items[0].answer, items[0].choices) == ("B", ("wood", "iron", "glass"))
    assert (items[1].answer, items[1].prompt.splitlines()[-1]) == ("B", "E) five")
    dom = get_domain(VERIFIER_DOMAIN["mc"])
    assert dom.verify(items[0], "Answer: B").reward == 1.0
    assert dom.verify(items[0], "Answer: iron").reward == 1.0
    assert dom.verify(items[1], "Answer: E").reward == 0.0


def test_preference_pairs_string_and_chat_forms(tmp_path: Path) -> None:
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {
            "chosen": [
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris"},
            ],
            "rejected": [
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Rome"},
            ],
        },
    ]
    pairs = load_pairs(write_jsonl(tmp_path / "p.jsonl", rows))
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ("2+2?", "4", "5"),
        ("Capital of France?", "Paris", "Rome"),
    ]


@pytest.mark.parametrize(
    ("fmt", "rows", "raw", "message"),
    [
        ("gsm8k", GSM8K, {2: '{"question": "x", "answer": '}, r"g\.jsonl:2: not valid JSON"),
        ("gsm8k", GSM8K, {3: ""}, r"g\.jsonl:3: not valid JSON"),
        ("gsm8k", GSM8K, {1: "[1, 2]"}, r"g\.jsonl:1: expected a JSON object, got list"),
        (
            "gsm8k",
            [*GSM8K, {"question": "q", "answer": "no marker"}],
            None,
            r"g\.jsonl:3: .*'#### <number>'",
        ),
        ("gsm8k", [{"question": "q"}], None, r"g\.jsonl:1: missing field 'answer'"),
        (
            "gsm8k",
            [{"question": 3, "answer": "#### 1"}],
            None,
            r"g\.jsonl:1: field 'question' must be str",
        ),
        (
            "math",
            [*MATH, {"problem": "p", "solution": "no box"}],
            None,
            r"g\.jsonl:3: .*no \\boxed",
        ),
        (
            "mc",
            [
                {
                    "question": "q",
                    "choices": {"text": ["a", "b"], "label": ["A", "B"]},
                    "answerKey": "C",
                }
            ],
            None,
            r"g\.jsonl:1: answerKey 'C' is not one of",
        ),
        ("pairs", [{"prompt": "p", "chosen": "a"}], None, r"g\.jsonl:1: missing field 'rejected'"),
        (
            "pairs",
            [
                {
                    "chosen": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ],
                    "rejected": [
                        {"role": "user", "content": "z"},
                        {"role": "assistant", "content": "c"},
                    ],
                }
            ],
            None,
            r"g\.jsonl:1: .*share the same user message",
        ),
    ],
)
def test_malformed_lines_name_the_line(
    tmp_path: Path, fmt: str, rows: list[object], raw: dict[int, str] | None, message: str
) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", rows, raw)
    with pytest.raises(UserError, match=message):
        load_pairs(path) if fmt == "pairs" else load_items(path, fmt)


def test_bad_source_and_format(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_items(str(tmp_path / "nope.jsonl"), "gsm8k")
    with pytest.raises(UserError, match="data format 'csv'"):
        load_items(str(tmp_path / "nope.jsonl"), "csv")


@pytest.mark.slow
def test_datasets_load_dataset_path_with_local_files(tmp_path: Path) -> None:
    """The ``hf:<name>`` path runs the real ``datasets.load_dataset`` (here on a local folder)."""
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", GSM8K)
    items = load_items(f"hf:{folder}", "gsm8k", split="test")
    assert [it.answer for it in items] == ["1200", "-3"]
    with pytest.raises(UserError, match="cannot be loaded"):
        load_items(f"hf:{tmp_path / 'missing'}", "gsm8k", split="test")
