"""The model zoo: scales, name resolution, deterministic cached builds, killed builds."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Qwen2ForCausalLM

from ptlab.errors import UserError
from ptlab.trainer.zoo import (
    SCALES,
    ensure_model,
    list_models,
    load_pretrained,
    model_dir,
    resolve_model_name,
)
from ptlab.trainer.zoo.build import qwen2_config

TINY = {"steps": 3, "items_per_domain": 40}


def test_scales_are_one_qwen2_family_about_4x_apart() -> None:
    class Tok:
        eos_token_id, pad_token_id = 2, 0

    params = [
        sum(p.numel() for p in Qwen2ForCausalLM(qwen2_config(s, 600, Tok())).parameters())
        for s in SCALES.values()
    ]
    assert list(SCALES) == ["s1", "s2", "s3", "s4"]
    assert 0.15e6 < params[0] < 0.4e6 and 12e6 < params[-1] < 24e6
    assert all(3.0 < b / a < 6.0 for a, b in itertools.pairwise(params))
    budgets = [s.steps / n for s, n in zip(SCALES.values(), params, strict=True)]
    assert budgets == sorted(budgets, reverse=True)  # fewer tokens per parameter as scale grows


def test_resolve_model_name_passes_hub_ids_and_paths_through() -> None:
    assert resolve_model_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model_name("/models/my-llm") == "/models/my-llm"
    with pytest.raises(UserError, match="unknown zoo scale 's9'"):
        resolve_model_name("zoo/s9")


def test_local_path_loads_through_the_hub_code_path(
    tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = load_pretrained(tiny_model)
    assert isinstance(model, Qwen2ForCausalLM) and tok.padding_side == "left"
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot be loaded"):
        load_pretrained("no-such-org/no-such-model")


@pytest.mark.slow
def test_build_is_deterministic_cached_and_listed(tmp_path: Path) -> None:
    first = ensure_model("s1", cache=tmp_path / "a", progress=False, **TINY)
    second = ensure_model("s1", cache=tmp_path / "b", progress=False, **TINY)
    assert first.name == second.name  # same content hash
    wa, wb = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # A cache hit returns the same directory without rebuilding.
    stamp = (first / "zoo.json").stat().st_mtime_ns
    start = time.perf_counter()
    assert ensure_model("s1", cache=tmp_path / "a", progress=False, **TINY) == first
    assert (first / "zoo.json").stat().st_mtime_ns == stamp and time.perf_counter() - start < 5
    meta = json.loads((first / "zoo.json").read_text())
    assert meta["train_tokens"] == 3 * 16 * 128 and meta["params"] > 0
    assert [(r["scale"], r["path"]) for r in list_models(tmp_path / "a")] == [("s1", str(first))]
    assert (
        ensure_model("s1", cache=tmp_path / "a", progress=False, steps=4, items_per_domain=40)
        != first
    )
    model, tok = load_pretrained(str(first))
    assert model.config.hidden_size == SCALES["s1"].hidden and len(tok) == model.config.vocab_size


def _builder(cache: Path, steps: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from ptlab.trainer.zoo import ensure_model; "
        f"print(ensure_model('s1', cache=Path(sys.argv[1]), progress=False, steps={steps}, items_per_domain=40))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(cache)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_killed_build_leaves_nothing_usable_and_concurrent_builders_agree(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    zoo = cache / "zoo"
    victim = _builder(cache, steps=100_000)
    deadline = time.time() + 300
    while not list(zoo.glob("s1-*.tmp-*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert list(zoo.glob("s1-*.tmp-*"))
    assert (
        list_models(cache) == []
        and not model_dir("s1", cache, steps=100_000, items_per_domain=40).exists()
    )
    # A stale temp dir of the model about to be built (a killed builder's) is cleared, and two
    # builders at once agree: one builds under the lock, the other finds its result.
    final = model_dir("s1", cache, steps=3, items_per_domain=40)
    (final.parent / f"{final.name}.tmp-1").mkdir()
    builders = [_builder(cache, steps=3) for _ in range(2)]
    outputs = [b.communicate(timeout=600)[0].decode().strip().splitlines()[-1] for b in builders]
    assert outputs == [str(final)] * 2 and all(b.returncode == 0 for b in builders)
    assert (final / "model.safetensors").is_file()
    assert not list(zoo.glob(f"{final.name}.tmp-*"))
