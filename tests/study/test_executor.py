"""Local executor against a test-only trainer with known ground truth (tests/study/fake_trainer.py):
tables, tuning on validation, resume without redoing runs, failures, SIGKILL and Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ptlab.api.models import ComparisonStudy
from ptlab.study.executor import ExecutorConfig, StudyFailed, run_study
from ptlab.study.results import RESULT_COLUMNS

FAKE = Path(__file__).with_name("fake_trainer.py")
ENTRY = [sys.executable, str(FAKE)]
REPO = Path(__file__).resolve().parents[2]
QUIET = Console(quiet=True)


def tuned_study(**extra: Any) -> ComparisonStudy:
    spec = {
        "algorithms": [{"name": "good", "tune": {"bonus": [0.0, 0.3]}},
                       {"name": "bad", "tune": {"bonus": [0.0, -0.2]}}],
        "scales": [{"name": "1M", "model": {"name": "zoo/s1"}}],
        "domains": ["arith"],
        "seeds": {"count": 2},
        "budget": {"steps": 3},
        "template": {"eval": {"items": 100}},
        "analysis": {"bootstrap": 200},
        **extra,
    }
    return ComparisonStudy.model_validate({"metadata": {"name": "exe"}, "spec": spec})


def expected_accuracy(algorithm: str, params: dict[str, Any], seed: int, split: str, n: int) -> float:
    """The fake trainer's ground truth, recomputed independently of the executor."""
    mean = 0.5 + float(params.get("bonus", 0.0))
    key = json.dumps([algorithm, params, seed, split], sort_keys=True)
    return sum(random.Random(f"{key}/{i}").random() < mean for i in range(n)) / n


def config(out: Path, **kw: Any) -> ExecutorConfig:
    return ExecutorConfig(out=out, parallel=kw.pop("parallel", 2), mlflow_uri="",
                          entrypoint=ENTRY, poll_s=0.05, **kw)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def invocations(out: Path) -> dict[str, int]:
    return {p.parent.name: len(p.read_text().split()) for p in out.glob("runs/*/invocations")}


def test_study_runs_tunes_on_validation_and_writes_the_results_table(
    tmp_path: Path, any_algorithm: None, fake_env: None
) -> None:
    done = run_study(tuned_study(), config(tmp_path), QUIET)
    assert done.failed == {} and len(done.succeeded) == 4 + 4
    rows = read_csv(tmp_path / "results.csv")
    assert tuple(rows[0]) == RESULT_COLUMNS
    # tuning picked bonus 0.3 for good and 0.0 for bad: the validation-best configs
    got = {(r["algorithm"], int(r["seed"])): float(r["value"]) for r in rows}
    assert got == {
        (a, s): expected_accuracy(a, {"bonus": b}, s, "eval", 100)
        for a, b in (("good", 0.3), ("bad", 0.0)) for s in (0, 1)
    }
    assert {r["metric"] for r in rows} == {"accuracy"}
    assert {r["n_items"] for r in rows} == {"100"} and {r["train_tokens"] for r in rows} == {"192"}
    tuning = read_csv(tmp_path / "tuning.csv")
    assert {(r["algorithm"], float(r["value"])) for r in tuning} == {
        (a, expected_accuracy(a, {"bonus": b}, 0, "validation", 100))
        for a, b in (("good", 0.0), ("good", 0.3), ("bad", 0.0), ("bad", -0.2))
    }
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(items) == 400 and all(i["item_id"].startswith("eval-") for i in items)
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    means = {a["algorithm"]: a["mean"] for a in analysis["rankings"][0]["algorithms"]}
    assert means == pytest.approx({a: (got[(a, 0)] + got[(a, 1)]) / 2 for a in ("good", "bad")})
    assert analysis["recommendations"][0]["best"][0] == "good"
    assert done.report is not None and done.report.is_file()
    assert "<img" in done.report.read_text()  # self-contained report with embedded figures
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert {r["status"] for r in plan["runs"]} == {"succeeded"}
    assert any(d["kind"] == "tuning-choice" and d["data"]["params"] == {"bonus": 0.3}
               for d in plan["decisions"])
    # a rerun is a no-op: nothing executed, no trainer started, results untouched
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/result.json")}
    before = invocations(tmp_path)
    again = run_study(tuned_study(), config(tmp_path), QUIET)
    assert again.executed == [] and invocations(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/result.json")} == stamps
    assert read_csv(tmp_path / "results.csv") == rows


def test_failed_run_is_recorded_and_the_study_continues(
    tmp_path: Path, any_algorithm: None, fake_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "bad")
    study = tuned_study(algorithms=[{"name": "good"}, {"name": "bad"}])
    done = run_study(study, config(tmp_path), QUIET)
    assert sorted(done.succeeded) == sorted(r.name for r in done.plan.runs if r.algorithm == "good")
    assert len(done.failed) == 2
    assert all(e.startswith("exit code 3: fake failure of bad") for e in done.failed.values())
    assert done.analysis is None and "at least two" in (done.analysis_note or "")
    statuses = {r["algorithm"]: r["status"] for r in json.loads((tmp_path / "plan.json").read_text())["runs"]}
    assert statuses == {"good": "succeeded", "bad": "failed"}
    # the next invocation retries the failed runs only
    monkeypatch.delenv("FAKE_FAIL")
    again = run_study(study, config(tmp_path), QUIET)
    assert sorted(again.executed) == sorted(done.failed) and again.failed == {}
    assert len(read_csv(tmp_path / "results.csv")) == 4


def test_fail_fast_stops_at_the_first_failure(
    tmp_path: Path, any_algorithm: None, fake_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "bad")
    study = tuned_study(algorithms=[{"name": "bad"}, {"name": "good"}])
    with pytest.raises(StudyFailed, match="failed"):
        run_study(study, config(tmp_path, parallel=1, fail_fast=True), QUIET)
    assert list(tmp_path.glob("runs/*/result.json")) == []
    assert (tmp_path / "results.csv").is_file()


def test_sequential_seeds_run_until_resolved_or_max(
    tmp_path: Path, any_algorithm: None, fake_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # equal true means: the top set stays unresolved, so seeds grow to the maximum
    study = tuned_study(algorithms=[{"name": "good"}, {"name": "bad"}],
                        seeds={"count": 2, "sequential": {"max": 4}})
    done = run_study(study, config(tmp_path), QUIET)
    seeds = {(r.algorithm, r.seed) for r in done.plan.runs}
    assert seeds == {(a, s) for a in ("good", "bad") for s in range(4)}
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [d["detail"] for d in plan["decisions"] if d["detail"].startswith(("unresolved", "still"))] == [
        "unresolved with 2 seeds: one more seed (3 in all)",
        "unresolved with 3 seeds: one more seed (4 in all)",
        "still unresolved at the maximum of 4 seeds"]
    # clearly separated means: resolved with the initial seeds, nothing added
    monkeypatch.setenv("FAKE_MEANS", json.dumps({"good": 0.9, "bad": 0.1}))
    out = tmp_path / "separated"
    done = run_study(study, config(out), QUIET)
    assert {r.seed for r in done.plan.runs} == {0, 1}


def cli_study(tmp_path: Path, steps: int) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(f"""\
apiVersion: ptlab.io/v1alpha1
kind: ComparisonStudy
metadata: {{name: kill}}
spec:
  algorithms: [{{name: dpo}}, {{name: kto}}]
  scales: [{{name: 1M, model: {{name: zoo/s1}}}}]
  domains: [arith]
  seeds: {{count: 2}}
  budget: {{steps: {steps}}}
  template: {{eval: {{items: 20}}}}
  analysis: {{bootstrap: 200}}
""")
    return path


def start_cli(study: Path, out: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "ptlab.cli.main", "study", "run", str(study), "--out", str(out),
           "--parallel", "1", "--no-mlflow", "--entrypoint", f"{sys.executable} {FAKE}"]
    env = {**os.environ, "FAKE_STEP_S": "0.25"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def interrupted_then_finished(tmp_path: Path, sig: int) -> tuple[int, dict[str, int], dict[Path, int]]:
    """Stop the executor with ``sig`` while a second run is mid-way; then rerun to the end."""
    study, out = cli_study(tmp_path, steps=8), tmp_path / "out"
    proc = start_cli(study, out)
    wait_for(lambda: len(list(out.glob("runs/*/result.json"))) == 1
             and any(len(p.read_text().splitlines()) >= 2 for p in out.glob("runs/*/metrics.jsonl")
                     if not (p.parent / "result.json").exists()))
    finished = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    pids = [int(x) for p in out.glob("runs/*/invocations") for x in p.read_text().split()]
    proc.send_signal(sig)
    code = proc.wait(60)
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=20)  # no trainer left behind
    before = invocations(out)
    rerun = start_cli(study, out)
    output = rerun.communicate(timeout=180)[0].decode()
    assert rerun.returncode == 0, output
    assert "report" in output or "recommendation" in output
    after = invocations(out)
    assert len(after) == 4 and len(list(out.glob("runs/*/result.json"))) == 4
    for path, stamp in finished.items():  # finished runs were not redone
        assert path.stat().st_mtime_ns == stamp and after[path.parent.name] == 1
    return code, {k: after[k] - before.get(k, 0) for k in after}, finished


@pytest.mark.slow
def test_sigkill_mid_study_then_rerun_finishes_without_redoing_runs(tmp_path: Path) -> None:
    code, new, finished = interrupted_then_finished(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert sum(new.values()) == 3  # the killed run + the 2 never started
    killed = [p for p in (tmp_path / "out").glob("runs/*/metrics.jsonl")
              if p.parent.name not in {f.parent.name for f in finished} and len(p.parent.joinpath("invocations").read_text().split()) == 2]
    assert len(killed) == 1
    steps = [json.loads(line)["step"] for line in killed[0].read_text().splitlines()]
    assert steps[-1] == 8 and sorted(set(steps)) == list(range(1, 9))
    assert len(steps) < 16  # resumed from its checkpoint, not restarted


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_rerun_resumes(tmp_path: Path) -> None:
    code, new, _ = interrupted_then_finished(tmp_path, signal.SIGINT)
    assert code == 130
    assert sum(new.values()) == 3
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 4 and {r["algorithm"] for r in rows} == {"dpo", "kto"}
