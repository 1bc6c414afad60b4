"""Fixtures of the study tests: a test-only trainer with known ground truth."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ptlab.api import hooks
from tests.trainer.conftest import tiny_model  # noqa: F401  (the trainer tests' tiny Qwen2)


@pytest.fixture()
def any_algorithm() -> Iterator[None]:
    """Accept made-up algorithm names/params (the fake trainer's 'bonus')."""
    previous = hooks._load()
    hooks.set_algorithm_checkers([])
    yield
    hooks.set_algorithm_checkers(previous)


@pytest.fixture()
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal true means for the fake trainer's 'good' and 'bad'; no failures, no sleeps."""
    monkeypatch.setenv("FAKE_MEANS", json.dumps({"good": 0.5, "bad": 0.5}))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.delenv("FAKE_STEP_S", raising=False)
