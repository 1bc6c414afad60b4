"""Generated reference docs are current (regenerate with `ptlab docs generate`)."""

from __future__ import annotations

from pathlib import Path

from ptlab.algorithms import entries
from ptlab.docs import render_algorithms_md, render_api_md, stale_docs

ROOT = Path(__file__).resolve().parents[1]


def test_docs_are_current() -> None:
    assert stale_docs(ROOT / "docs") == [], "run `ptlab docs generate`"


def test_api_doc_lists_every_field_with_default_and_range() -> None:
    text = render_api_md()
    assert "| `spec.training.lr` | float | `1e-05` | > 0, ≤ 1 |" in text
    assert "| `spec.seeds.list` | list[int] |" in text
    assert "| `spec.scales[].model.name` |" in text


def test_algorithm_doc_has_one_row_per_entry() -> None:
    text = render_algorithms_md()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(entries())
