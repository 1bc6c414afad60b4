"""torchrun with 2 gloo processes (DDP, DeepSpeed ZeRO-1) follows the 1-process loss curve."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ptlab.trainer.observability import read_jsonl

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(spec: dict, out: Path, nproc: int) -> list[dict]:
    run_file = out.with_suffix(".json")
    run_file.write_text(json.dumps(spec))
    cli = ["-m", "ptlab.cli.main", "train", str(run_file), "--out", str(out)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *cli]
    else:
        cmd = [sys.executable, *cli]
    env = {**os.environ, "PTLAB_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert json.loads((out / "result.json").read_text())["world_size"] == nproc
    return read_jsonl(out / "metrics.jsonl")


@pytest.mark.parametrize("engine", ["ddp", "zero1"])
def test_two_processes_match_one(engine: str, tiny_model: str, spec_for, tmp_path: Path) -> None:
    # global batch 4 = 1 process x 2 micro-batches of 2 = 2 processes x 1 micro-batch of 2
    one = spec_for(tiny_model, "dpo", training={"grad_accum": 2, "budget": {"steps": 4}})
    two = spec_for(tiny_model, "dpo", training={"grad_accum": 1, "budget": {"steps": 4}})
    if engine == "zero1":
        two["resources"] = {"deepspeed": {"zero_stage": 1}}
    single = _train(one, tmp_path / "one", 1)
    multi = _train(two, tmp_path / "two", 2)
    assert [r["step"] for r in multi] == [1, 2, 3, 4]
    for a, b in zip(single, multi, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-5, (a["loss"], b["loss"])
        assert abs(a["rewards/margins"] - b["rewards/margins"]) <= 1e-5
    # the curve really moves (the comparison is not between constant losses)
    assert abs(single[-1]["loss"] - single[0]["loss"]) > 1e-4
