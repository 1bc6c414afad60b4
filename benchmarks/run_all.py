"""Run every benchmark, record the machine, regenerate README's performance table (`make bench`).

    .venv/bin/python benchmarks/run_all.py                 # all benchmarks, then the table
    .venv/bin/python benchmarks/run_all.py losses trainer  # some of them, then the table
    .venv/bin/python benchmarks/run_all.py --table-only    # only regenerate the README table

Benchmarks run one after another (each measures ours vs its baseline interleaved in one
process); the vLLM comparison runs in ``.venv-vllm`` when that venv exists and is skipped with
a message otherwise. Results: ``benchmarks/results/*.json``; machine: ``benchmarks/machine.json``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # appended: the repo's operator/ must not shadow the stdlib module

from ptlab.perf import render_table, replace_block  # noqa: E402

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
BENCHMARKS: dict[str, list[list[str]]] = {
    "losses": [[sys.executable, "benchmarks/bench_losses.py"]],
    "analysis": [[sys.executable, "benchmarks/bench_analysis.py"]],
    "plan": [[sys.executable, "benchmarks/bench_plan.py"]],
    "trainer": [[sys.executable, "benchmarks/bench_trainer.py"]],
    "rollout": [[sys.executable, "benchmarks/bench_rollout.py", "trl"],
                [str(VLLM_PYTHON), "benchmarks/bench_rollout.py", "vllm"]],
    "operator": [[sys.executable, "benchmarks/bench_operator.py"]],
}
MACHINE = ROOT / "benchmarks" / "machine.json"


def describe_machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and torch versions, date."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    gpu = "no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    return {
        "description": f"{os.cpu_count()} cores of {cpu}, {mem_kb / 2**20:.0f} GiB RAM, {gpu}, "
                       f"Python {platform.python_version()}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }


def run(names: list[str]) -> list[str]:
    """Run the named benchmarks; returns those that failed."""
    failed = []
    for name in names:
        for cmd in BENCHMARKS[name]:
            if not Path(cmd[0]).exists():
                print(f"[bench] {name}: skipped {' '.join(cmd[1:])} ({cmd[0]} missing: "
                      "bash scripts/setup_vllm_venv.sh creates it)", flush=True)
                continue
            print(f"[bench] {name}: {' '.join(cmd[1:])}", flush=True)
            start = time.perf_counter()
            env = {**os.environ, "PYTHONSAFEPATH": "1"}
            code = subprocess.call(cmd, cwd=ROOT, env=env)
            print(f"[bench] {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
            if code:
                failed.append(name)
    return failed


def write_table() -> None:
    readme = ROOT / "README.md"
    machine = json.loads(MACHINE.read_text()) if MACHINE.exists() else {}
    readme.write_text(replace_block(readme.read_text(), render_table(ROOT / "benchmarks" / "results", machine)))
    print(f"[bench] README performance table regenerated ({MACHINE.relative_to(ROOT)})")


def main(argv: list[str]) -> int:
    if argv == ["--table-only"]:
        write_table()
        return 0
    unknown = [a for a in argv if a not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}: choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = run(argv or list(BENCHMARKS))
    MACHINE.write_text(json.dumps(describe_machine(), indent=1) + "\n")
    write_table()
    if failed:
        print(f"[bench] failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
