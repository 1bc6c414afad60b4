"""The run contract (DESIGN §4): files, result.json fields, no-op rerun, determinism, NaN guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ptlab.algorithms.registry import REGISTRY, register
from ptlab.algorithms.types import LossOutput, PairedBatch
from ptlab.errors import UserError
from ptlab.trainer import run
from ptlab.trainer.observability import read_jsonl

pytestmark = pytest.mark.slow


def test_run_writes_the_contract_and_a_rerun_is_a_no_op(tiny_model: str, spec_for, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run.train(spec_for(tiny_model, "dpo"), out)
    assert result["status"] == "succeeded"
    for name in ("spec.json", "metrics.jsonl", "result.json", "eval/items.jsonl", "model/config.json"):
        assert (out / name).exists(), name
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3, 4]
    assert result["steps"] == 4
    n = result["n_params"]
    assert result["flops"] == 6 * n * result["train_tokens"]
    assert result["generated_tokens"] == 0
    for key in ("seed", "config_hash", "code_version", "data_hash", "wall_s", "metrics"):
        assert key in result
    assert "accuracy" in result["metrics"]
    assert json.loads((out / "spec.json").read_text())["hash"] == result["config_hash"]
    # a finished run is a no-op: same result, nothing retrained
    mtime = (out / "metrics.jsonl").stat().st_mtime_ns
    assert run.train(spec_for(tiny_model, "dpo"), out) == result
    assert (out / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_same_spec_gives_bit_identical_metrics(tiny_model: str, spec_for, tmp_path: Path) -> None:
    from tests.trainer.conftest import curve

    spec = spec_for(tiny_model, "sft", training={"grad_accum": 2})
    a = run.train(spec, tmp_path / "a")
    b = run.train(spec, tmp_path / "b")
    assert curve(read_jsonl(tmp_path / "a" / "metrics.jsonl")) == curve(read_jsonl(tmp_path / "b" / "metrics.jsonl"))
    assert a["metrics"] == b["metrics"]


def test_out_dir_of_another_run_is_refused(tiny_model: str, spec_for, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.json").write_text(json.dumps({"hash": "0000", "spec": {}}))
    with pytest.raises(UserError, match="different run"):
        run.train(spec_for(tiny_model, "sft"), out)


def test_budget_in_tokens_is_never_exceeded(tiny_model: str, spec_for, tmp_path: Path) -> None:
    spec = spec_for(tiny_model, "sft", training={"budget": {"tokens": 1500}})
    result = run.train(spec, tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert result["train_tokens"] <= 1500
    # the next step would not have fitted: at least one batch's worth of tokens remains unused
    per_step = rows[0]["train_tokens"]
    assert result["train_tokens"] > 1500 - 2 * per_step
    assert rows[-1]["train_tokens"] == result["train_tokens"]


@pytest.fixture()
def nan_entry():
    """A real registry entry whose loss turns NaN from the 3rd call on (a numerics accident)."""
    calls = {"n": 0}

    @register("test_nan_dpo", family="paired-offline", input_kind="paired", needs_reference=True,
              citation="test", formula="DPO, NaN from step 3")
    def nan_loss(batch: PairedBatch, params: object) -> LossOutput:
        calls["n"] += 1
        margin = (batch.policy_chosen_logps - batch.policy_rejected_logps).sum(-1)
        loss = -torch.nn.functional.logsigmoid(0.1 * margin)
        return LossOutput(loss * float("nan") if calls["n"] >= 3 else loss)

    yield "test_nan_dpo"
    del REGISTRY["test_nan_dpo"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    nan_entry: str, tiny_model: str, spec_for, tmp_path: Path
) -> None:
    from ptlab.cli.common import run_guarded
    from ptlab.cli.main import app

    spec = spec_for(tiny_model, "dpo", training={"checkpoint_every": 1, "budget": {"steps": 6}})
    spec["algorithm"] = {"name": nan_entry}
    (tmp_path / "run.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    code = run_guarded(lambda: app(args=["train", str(tmp_path / "run.json"), "--out", str(out)],
                                   standalone_mode=False))
    assert code == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["reason"] == "non-finite loss at step 3"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
