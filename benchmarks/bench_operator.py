"""Operator at scale: a ComparisonStudy expanding to 1,000 runs (10 algorithms × 100 seeds).

Three processes on 127.0.0.1, so each is measured alone:
- the API server: the tests' server-like kmock (``python -m tests.operator.standalone apiserver``);
- the operator: ``ptlab operator`` exactly as the Deployment runs it;
- a fake training operator that completes every PyTorchJob as soon as it appears (watch).

Measures (1) seconds from creating the study until all 1,000 child PostTrainingRuns exist
(parallelism unlimited), (2) seconds until the study is Succeeded (every job done, analysis
written), (3) the operator's peak RSS (VmHWM), and the CPU seconds of each process (where the
time goes). Targets: ≤ 60 s, ≤ 60 s, ≤ 300 MB. Writes benchmarks/results/operator.json.
``PTLAB_BENCH_SEEDS`` (default 100) sets the seeds per algorithm for quicker checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))

from tests.operator.harness import RUN, STUDY, eventually  # noqa: E402
from tests.operator.standalone import SessionAPI, known_kinds  # noqa: E402
from tests.support.servers import free_port, process, wait_http  # noqa: E402

ALGORITHMS = ["dpo", "ipo", "orpo", "simpo", "cpo", "hinge", "rdpo", "exo", "cal_dpo", "apo_zero"]
SEEDS = int(os.environ.get("PTLAB_BENCH_SEEDS", "100"))
TARGET_S, TARGET_MB = 60.0, 300.0


def study() -> dict[str, Any]:
    return {
        "apiVersion": STUDY[0], "kind": STUDY[1],
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "algorithms": [{"name": a} for a in ALGORITHMS],
            "scales": [{"name": "s1", "model": {"name": "zoo/s1"}}],
            "domains": ["arith"], "seeds": {"count": SEEDS}, "budget": {"steps": 4},
            "parallelism": 10_000, "analysis": {"bootstrap": 200},
        },
    }


def proc_status(pid: int, key: str) -> float:
    """A ``kB`` field of /proc/PID/status in MB (VmHWM = peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def started(workdir: Path) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    """API server, operator and fake training operator; yields (url, processes).

    Run from the repository root (the cwd of every process; ``ptlab`` is installed)."""
    py = sys.executable
    url_file = workdir / "url"
    env = dict(os.environ)
    # ROOT appended, never prepended: the operator/ folder must not shadow the stdlib module
    standalone = [py, "-c", f"import sys; sys.path.append({str(ROOT)!r}); "
                  "from tests.operator.standalone import main; main(sys.argv[1:])"]
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(process(
            [*standalone, "apiserver", str(url_file)],
            workdir / "apiserver.log", env=env))
        deadline = time.monotonic() + 120
        while not url_file.exists() and time.monotonic() < deadline:
            if api.poll() is not None:
                raise RuntimeError((workdir / "apiserver.log").read_text()[-2000:])
            time.sleep(0.2)
        url = url_file.read_text()
        health = f"http://127.0.0.1:{free_port()}/healthz"
        op_env = {**env, "KUBECONFIG": f"{url_file}.kubeconfig", "PTLAB_OPERATOR_METRICS_PORT": "0",
                  "PTLAB_OPERATOR_STUDY_INTERVAL_S": "1"}
        operator = stack.enter_context(process(
            [py, "-m", "ptlab.cli.main", "operator", "--liveness", health],
            workdir / "operator.log", env=op_env))
        training = stack.enter_context(process(
            [*standalone, "training", url],
            workdir / "training.log", env=env))
        wait_http(health, timeout=180, proc=operator)
        time.sleep(2.0)  # kopf's watches start right after the liveness endpoint
        yield url, {"apiserver": api, "operator": operator, "training": training}


async def measure(url: str, procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, Any]:
    api = known_kinds(SessionAPI(url=url, kind="kmock", kubeconfig=Path(os.devnull)))
    n = len(ALGORITHMS) * SEEDS
    cpu0 = {k: cpu_s(p.pid) for k, p in procs.items()}
    t0 = time.perf_counter()
    status, data = await api.create(study())
    assert status in (200, 201), data

    async def all_children() -> bool:
        status = (await api.get(*STUDY, "bench"))[1].get("status") or {}
        assert status.get("phase") != "Failed", status.get("message")
        return len(await api.list(*RUN)) >= n

    await eventually(all_children, timeout=1800, interval=1.0)
    t_children = time.perf_counter() - t0

    async def succeeded() -> dict[str, Any] | None:
        body = (await api.get(*STUDY, "bench"))[1]
        return body if (body.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    final = await eventually(succeeded, timeout=3600, interval=0.5)
    t_done = time.perf_counter() - t0
    if api.session is not None:
        await api.session.close()
    return {
        "children_s": t_children, "done_s": t_done, "phase": final["status"]["phase"],
        "runs": final["status"]["runs"],
        "rss_mb": proc_status(procs["operator"].pid, "VmHWM"),
        "cpu_s": {k: round(cpu_s(p.pid) - cpu0[k], 1) for k, p in procs.items()},
    }


def rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(ALGORITHMS) * SEEDS
    details = {"runs": n, "api": "kmock (server-like), own process", "cpus": os.cpu_count(),
               "study_phase": m["phase"], "run_counts": m["runs"],
               "cpu_s_during_study": m["cpu_s"], "load_avg_1m": os.getloadavg()[0]}
    row = {"baseline": "target", "details": details}
    return [
        {"name": f"operator_children_exist_{n}", "ours_s": m["children_s"], **row,
         "baseline_s": TARGET_S, "ratio": m["children_s"] / TARGET_S, "target": "<= 1.0"},
        {"name": f"operator_study_succeeded_{n}", "ours_s": m["done_s"], **row,
         "baseline_s": TARGET_S, "ratio": m["done_s"] / TARGET_S, "target": "<= 1.0"},
        {"name": "operator_peak_rss_mb", "ours_s": m["rss_mb"], **row,
         "baseline_s": TARGET_MB, "ratio": m["rss_mb"] / TARGET_MB, "target": "<= 1.0",
         "details": {**details, "unit": "MB (ours_s and baseline_s hold MB in this row)"}},
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, started(Path(tmp)) as (url, procs):
        measured = asyncio.run(measure(url, procs))
    results = rows(measured)
    if SEEDS == 100:
        out = ROOT / "benchmarks" / "results" / "operator.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
