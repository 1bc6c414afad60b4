"""kill -9 at random steps, rerun, resume: the final metrics equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptlab.trainer.observability import read_jsonl
from tests.trainer.conftest import curve

pytestmark = pytest.mark.slow
PTLAB = [sys.executable, "-m", "ptlab.cli.main"]


def _start(run_file: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*PTLAB, "train", str(run_file), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_at_step(proc: subprocess.Popen[bytes], metrics: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(read_jsonl(metrics)) >= step:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_kill_nine_then_resume_is_bit_identical(tiny_model: str, spec_for, tmp_path: Path) -> None:
    spec = spec_for(tiny_model, "dpo", training={"budget": {"steps": 10}, "checkpoint_every": 2,
                                                 "grad_accum": 2, "schedule": "cosine"})
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(spec))
    env_out = tmp_path / "straight"
    assert subprocess.run([*PTLAB, "train", str(run_file), "--out", str(env_out)],
                          capture_output=True, timeout=600).returncode == 0

    out = tmp_path / "killed"
    rng = random.Random(7)
    kills = sorted(rng.sample(range(1, 10), 3))
    for step in kills:
        _kill_at_step(_start(run_file, out), out / "metrics.jsonl", step)
        assert not (out / "result.json").exists()
    final = subprocess.run([*PTLAB, "train", str(run_file), "--out", str(out)], capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr.decode()[-2000:]

    assert curve(read_jsonl(out / "metrics.jsonl")) == curve(read_jsonl(env_out / "metrics.jsonl"))
    a = json.loads((out / "result.json").read_text())
    b = json.loads((env_out / "result.json").read_text())
    assert a["metrics"] == b["metrics"]
    for key in ("steps", "train_tokens", "flops"):
        assert a[key] == b[key]


@pytest.mark.parametrize("algorithm,params", [("tr_dpo", {"sync_steps": 1, "tau": 0.5}), ("beta_dpo", {})])
def test_resume_restores_moving_reference_and_running_statistics(
    algorithm: str, params: dict, tiny_model: str, spec_for, tmp_path: Path
) -> None:
    """In-process resume from the step-2 checkpoint of a 4-step run (state beyond the model:
    TR-DPO's updated reference, β-DPO's running margin) reproduces steps 3-4 exactly."""
    import shutil

    from ptlab.trainer import run

    spec = spec_for(tiny_model, algorithm, training={"budget": {"steps": 4}, "checkpoint_every": 2})
    spec["algorithm"]["params"] = params
    out = tmp_path / "run"
    run.train(spec, out)
    straight = curve(read_jsonl(out / "metrics.jsonl"))
    (out / "result.json").unlink()
    shutil.rmtree(out / "checkpoints" / "step-00000004")
    run.train(spec, out)
    assert curve(read_jsonl(out / "metrics.jsonl")) == straight
    assert straight[2]["loss"] != straight[0]["loss"]
