"""Operator at scale: a ComparisonStudy expanding to 1,000 runs (10 algorithms × 100 seeds).

Measures, with the real operator (``python -m ptlab.operator``, its own process) against
kmock on 127.0.0.1 and a fake training operator that completes every job at once:
1. seconds until all 1,000 child PostTrainingRuns exist (parallelism unlimited);
2. seconds until the study is Succeeded (every run's job done, analysis written);
3. the operator's peak RSS.
Targets: ≤ 60 s, ≤ 60 s, ≤ 300 MB. Writes benchmarks/results/operator.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kmock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.operator.harness import (  # noqa: E402
    STUDY,
    ServerLikeEmulator,
    eventually,
    fake_training,
    get,
    install,
)
from tests.support.kube import KubeAPI, register_builtin_resources  # noqa: E402
from tests.support.servers import write_kubeconfig  # noqa: E402

ALGORITHMS = ["dpo", "ipo", "orpo", "simpo", "cpo", "hinge", "rdpo", "exo", "cal_dpo", "apo_zero"]
SEEDS = int(os.environ.get("PTLAB_BENCH_SEEDS", "100"))
"""Seeds per algorithm: 100 → 1,000 runs (set lower for a quick check)."""


def study() -> dict[str, Any]:
    return {
        "apiVersion": STUDY[0], "kind": STUDY[1],
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "algorithms": [{"name": a} for a in ALGORITHMS],
            "scales": [{"name": "s1", "model": {"name": "zoo/s1"}}],
            "domains": ["arith"], "seeds": {"count": SEEDS}, "budget": {"steps": 4},
            "parallelism": 10000, "analysis": {"bootstrap": 200},
        },
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(workdir: Path) -> list[dict[str, Any]]:
    async with ServerLikeEmulator() as emulator, kmock.Server(emulator):
        register_builtin_resources(emulator)
        url = str(emulator.url).rstrip("/")
        api = KubeAPI(url=url, kind="kmock", emulator=emulator,
                      kubeconfig=write_kubeconfig(workdir / "kubeconfig", url, None))
        await api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        await install(api)
        env = {**os.environ, "KUBECONFIG": str(api.kubeconfig), "PTLAB_OPERATOR_METRICS_PORT": "0",
               "PTLAB_OPERATOR_STUDY_INTERVAL_S": "1"}
        log = (workdir / "operator.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "ptlab.operator"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            await asyncio.sleep(8)  # operator start-up (imports, discovery, watches)
            t0 = time.perf_counter()
            await api.create(study())

            async def all_children() -> bool:
                return len(await api.list("ptlab.io/v1alpha1", "PostTrainingRun")) >= len(ALGORITHMS) * SEEDS

            await eventually(all_children, timeout=600, interval=0.5)
            t_children = time.perf_counter() - t0

            async def succeeded() -> bool:
                body = await get(api, STUDY, "bench")
                return bool(body and (body.get("status") or {}).get("phase") == "Succeeded")

            async with fake_training(api):
                await eventually(succeeded, timeout=1200, interval=1.0)
            t_done = time.perf_counter() - t0
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    details = {"runs": len(ALGORITHMS) * SEEDS, "api": "kmock", "cpus": os.cpu_count()}
    return [
        {"name": f"operator_children_{len(ALGORITHMS) * SEEDS}", "ours_s": t_children, "baseline": "target 60 s",
         "baseline_s": 60.0, "ratio": t_children / 60.0, "target": "<= 1.0", "details": details},
        {"name": f"operator_study_succeeded_{len(ALGORITHMS) * SEEDS}", "ours_s": t_done, "baseline": "target 60 s",
         "baseline_s": 60.0, "ratio": t_done / 60.0, "target": "<= 1.0", "details": details},
        {"name": "operator_peak_rss_mb", "ours_s": rss, "baseline": "target 300 MB",
         "baseline_s": 300.0, "ratio": rss / 300.0, "target": "<= 1.0",
         "details": {**details, "unit": "MB (ours_s holds MB for this row)"}},
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(main(Path(tmp)))
    out = ROOT / "benchmarks" / "results" / "operator.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
