"""Acceptance: `ptlab study run` with the REAL trainer (`ptlab train`) on a tiny model — two
algorithms, one scale, one domain, two seeds — is SIGKILLed mid-study, rerun, and finishes
without redoing finished runs; results.csv, analysis.json and report.html are written."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def trainer_pids(out: Path) -> list[int]:
    """Processes whose command line mentions the study directory (trainers)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(out) in cmd and " train " in cmd.replace("\0", " "):
                pids.append(int(proc.name))
    return pids


def test_real_trainer_study_survives_sigkill_and_reports(tmp_path: Path, tiny_model: str) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(f"""\
apiVersion: ptlab.io/v1alpha1
kind: ComparisonStudy
metadata: {{name: accept}}
spec:
  algorithms: [{{name: dpo}}, {{name: simpo}}]
  scales: [{{name: 40K, model: {{path: {tiny_model}}}}}]
  domains: [arith]
  seeds: {{count: 2}}
  budget: {{steps: 3}}
  template:
    data: {{train_size: 16, validation_size: 8}}
    training: {{batch_size: 4, lr: 0.001, max_len: 128, checkpoint_every: 1, schedule: constant}}
    eval: {{items: 8, max_new_tokens: 8}}
  analysis: {{bootstrap: 200}}
""")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ptlab.cli.main", "study", "run", str(study), "--out", str(out),
           "--parallel", "1", "--no-mlflow"]
    env = {**os.environ, "PTLAB_CACHE": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while not list(out.glob("runs/*/result.json")):
        assert first.poll() is None, first.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)  # the next run is starting
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    wait = time.monotonic() + 30
    while trainer_pids(out) and time.monotonic() < wait:  # trainers die with the executor
        time.sleep(0.2)
    assert trainer_pids(out) == []
    done_before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert 1 <= len(done_before) < 4
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    results = sorted(out.glob("runs/*/result.json"))
    assert len(results) == 4
    for path, stamp in done_before.items():  # finished runs were not redone
        assert path.stat().st_mtime_ns == stamp
    with (out / "results.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "accuracy"]
    assert len(rows) == 4 and {r["algorithm"] for r in rows} == {"dpo", "simpo"}
    for row in rows:  # the table holds exactly what each run reported
        result = json.loads((out / "runs" / row["run"] / "result.json").read_text())
        assert float(row["value"]) == pytest.approx(result["metrics"]["accuracy"])
        assert int(row["train_tokens"]) == result["train_tokens"]
    analysis = json.loads((out / "analysis.json").read_text())
    assert {a["algorithm"] for a in analysis["rankings"][0]["algorithms"]} == {"dpo", "simpo"}
    assert (out / "report" / "report.html").is_file()
    assert "report:" in rerun.stdout and "recommendation" in rerun.stdout
