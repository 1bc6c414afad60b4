"""Test-only stand-in for `ptlab train RUN.json --out DIR` (executor tests via --entrypoint).

Follows the run contract (metrics.jsonl, checkpoints/, eval/items.jsonl, result.json last,
no-op when result.json exists, resume from the checkpoint) with a known ground truth:
an item is solved iff u(algorithm, params, seed, split, item) < mean, where
mean = FAKE_MEANS[algorithm] (default 0.5) + params["bonus"] (default 0).
Env: FAKE_STEP_S seconds per step; FAKE_FAIL comma list of algorithms that exit 3.
Each invocation appends a line to DIR/invocations (the tests count them).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    run = json.loads(Path(argv[0]).read_text())
    out = Path(argv[argv.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    with (out / "invocations").open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    if (out / "result.json").exists():
        return 0
    spec = run["spec"]
    algorithm, params = spec["algorithm"]["name"], spec["algorithm"].get("params", {})
    if algorithm in os.environ.get("FAKE_FAIL", "").split(","):
        print(f"fake failure of {algorithm}", file=sys.stderr)
        return 3
    steps = spec["training"]["budget"]["steps"]
    ckpt = out / "checkpoints" / "step"
    start = int(ckpt.read_text()) if ckpt.exists() else 0
    ckpt.parent.mkdir(exist_ok=True)
    for step in range(start + 1, steps + 1):
        time.sleep(float(os.environ.get("FAKE_STEP_S", "0")))
        with (out / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\n")
        ckpt.write_text(str(step))
    mean = json.loads(os.environ.get("FAKE_MEANS", "{}")).get(algorithm, 0.5)
    mean += float(params.get("bonus", 0.0))
    split, seed = spec["eval"]["split"], spec["training"]["seed"]
    n = spec["eval"]["items"]
    key = json.dumps([algorithm, params, seed, split], sort_keys=True)
    scores = [float(random.Random(f"{key}/{i}").random() < mean) for i in range(n)]
    (out / "eval").mkdir(exist_ok=True)
    with (out / "eval" / "items.jsonl").open("w") as fh:
        for i, score in enumerate(scores):
            fh.write(json.dumps({"item_id": f"{split}-{i}", "score": score}) + "\n")
    result = {"status": "succeeded", "steps": steps, "train_tokens": 64 * steps,
              "flops": 1e6 * steps, "wall_s": 0.01, "metrics": {"accuracy": sum(scores) / n}}
    tmp = out / ".result.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out / "result.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
