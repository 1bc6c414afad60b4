"""Validity on simulated studies with known truth (the full run: scripts/validity.py →
docs/validity/analysis.json). Tolerances here are for the smaller sample: with n = 40 studies
a true 97.5% recovery is ≥ 0.9 with probability > 0.99, and a true ≤ 2% false-positive rate
stays ≤ 0.125 likewise; coverage is averaged over ~1,400 intervals (binomial sd ≈ 0.6%, more
with the within-study correlation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptlab.analysis.simulate import Design, evaluate

DOC = Path(__file__).parents[2] / "docs" / "validity" / "analysis.json"


@pytest.mark.slow
@pytest.mark.parametrize("design", [Design(n_seeds=5), Design(n_seeds=3, n_items=40)],
                         ids=["5seeds", "3seeds_40items"])
def test_recovery_false_positives_coverage(design: Design) -> None:
    got = evaluate(design, n_studies=40, seed=1000, n_boot=500)
    assert got["recovery"] >= 0.9
    assert got["false_positive_rate"] <= 0.125
    assert 0.92 <= got["ci_coverage"] <= 0.98
    assert 0.92 <= got["diff_ci_coverage"] <= 0.98


def test_committed_validity_report_meets_targets() -> None:
    doc = json.loads(DOC.read_text())
    assert doc["n_studies"] >= 200
    for run in doc["designs"]:
        assert run["recovery"] >= 0.95, run["name"]
        assert run["false_positive_rate"] <= 0.05, run["name"]
        assert 0.93 <= run["ci_coverage"] <= 0.97, run["name"]
