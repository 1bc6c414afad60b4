"""Fixtures of the trainer tests: real models (a tiny random Qwen2 with the zoo tokenizer for
plumbing tests, the smallest pretrained zoo model for learning tests) and run specs."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ptlab.trainer.recipes.common import TIMING_KEYS


def zoo_cache() -> Path:
    """The shared zoo cache (models are built once per machine, not per test)."""
    return Path(os.environ.get("PTLAB_CACHE") or Path.home() / ".cache" / "ptlab")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 40k-parameter random Qwen2 (2 layers, hidden 32) with the zoo tokenizer, saved in HF format."""
    from transformers import AutoTokenizer

    from ptlab.trainer.modeling import save_random_model
    from ptlab.trainer.zoo.build import ensure_tokenizer

    tok = AutoTokenizer.from_pretrained(ensure_tokenizer(zoo_cache()))
    out = tmp_path_factory.mktemp("tiny-model")
    return save_random_model(out, tok, hidden=32, layers=2, heads=2, intermediate=64)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Another random model of the same shape and tokenizer (a teacher that differs)."""
    from transformers import AutoTokenizer

    from ptlab.trainer.modeling import save_random_model
    from ptlab.trainer.zoo.build import ensure_tokenizer

    tok = AutoTokenizer.from_pretrained(ensure_tokenizer(zoo_cache()))
    out = tmp_path_factory.mktemp("tiny-teacher")
    return save_random_model(out, tok, hidden=32, layers=2, heads=2, intermediate=64, seed=1)


@pytest.fixture(scope="session")
def zoo_s1() -> str:
    """Directory of the smallest pretrained zoo model (built on first use, then cached)."""
    from ptlab.trainer.zoo import ensure_model

    return str(ensure_model("s1", cache=zoo_cache(), progress=False))


@pytest.fixture(autouse=True)
def _private_ref_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own reference-log-prob cache (models come via explicit paths)."""
    monkeypatch.setenv("PTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PTLAB_RUN_NAME", raising=False)


def make_spec(model_path: str, algorithm: str = "dpo", **overrides: Any) -> dict[str, Any]:
    """A small run spec (dict) on ``model_path``; ``overrides`` are merged per top-level section."""
    spec: dict[str, Any] = {
        "algorithm": {"name": algorithm},
        "model": {"path": model_path},
        "data": {"domain": "arith", "train_size": 32},
        "training": {"budget": {"steps": 4}, "batch_size": 4, "lr": 1e-3, "max_len": 128,
                     "checkpoint_every": 2, "schedule": "constant"},
        "eval": {"items": 8, "max_new_tokens": 16},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**copy.deepcopy(spec[key]), **value}
        else:
            spec[key] = value
    return spec


@pytest.fixture()
def spec_for() -> Callable[..., dict[str, Any]]:
    return make_spec


def curve(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """metrics.jsonl rows without wall-time fields (the only ones that may differ)."""
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in metrics]
