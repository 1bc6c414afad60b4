"""Planning speed: expand a 10,000-run ComparisonStudy (target ≤ 2 s).

Baseline: the naive expansion — one fully validated PostTrainingRun per run
(``PostTrainingRun.model_validate`` of a dict built from the template) plus its content hash,
which is what a planner without shared pre-validated parts would do. Both include hashing.
Writes benchmarks/results/bench_plan.json (project format; ratio = ours / baseline).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from ptlab.api.hashing import content_hash
from ptlab.api.models import ComparisonStudy, PostTrainingRun
from ptlab.study.plan import plan_study

TARGET_S = 2.0
REPEATS = 3


def big_study() -> ComparisonStudy:
    """10 algorithms (2 tuned, 2-value grids) × 4 scales × 5 domains × 50 seeds = 10,000 final runs."""
    return ComparisonStudy.model_validate({
        "metadata": {"name": "bench"},
        "spec": {
            "algorithms": [{"name": n, **({"tune": {"beta": [0.05, 0.1]}} if n in ("dpo", "ipo") else {})}
                           for n in ("dpo", "ipo", "kto", "simpo", "orpo", "cpo", "sft", "rpo", "nca", "exo")],
            "scales": [{"name": s, "model": {"name": f"zoo/{s}"}} for s in ("s1", "s2", "s3", "s4")],
            "domains": ["arith", "algebra", "general", "d4", "d5"],
            "seeds": {"count": 50},
            "budget": {"steps": 100},
        },
    })


def naive_plan(study: ComparisonStudy) -> list[str]:
    """Validate every run as its own object, then hash it (the baseline)."""
    spec, template = study.spec, study.spec.template.model_dump(mode="json")
    hashes = []
    for alg in spec.algorithms:
        for scale in spec.scales:
            for domain in spec.domains:
                for seed in spec.seeds.values():
                    run = PostTrainingRun.model_validate({
                        "metadata": {"name": "x"},
                        "spec": {**template, "algorithm": {"name": alg.name, "params": alg.params},
                                 "model": scale.model.model_dump(mode="json"),
                                 "data": {**template["data"], "domain": domain},
                                 "training": {**template["training"], "seed": seed,
                                              "budget": spec.budget.model_dump(exclude_none=True)},
                                 "study": study.metadata.name},
                    })
                    hashes.append(content_hash(run.spec))
    return hashes


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    study = big_study()
    # final runs need the tuning scores: plan with every trial observed
    first = plan_study(study)
    from ptlab.study.plan import Observations

    observed = Observations({r.spec_hash: 0.5 for r in first.phase("tune")})
    ours, base = [], []
    for _ in range(REPEATS):  # interleaved: the machine is shared and noisy
        t, plan = timed(lambda: plan_study(study, observed))
        ours.append(t)
        t, hashes = timed(lambda: naive_plan(study))
        base.append(t)
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    finals = len(plan.phase("final"))
    assert finals == len(hashes) == 10_000
    result = [{
        "name": "plan_10k_runs",
        "ours_s": round(ours_s, 4),
        "baseline": "per-run PostTrainingRun.model_validate + content_hash (naive expansion)",
        "baseline_s": round(base_s, 4),
        "ratio": round(ours_s / base_s, 4),
        "target": f"ours_s <= {TARGET_S}",
        "details": {"runs": len(plan.runs), "final_runs": finals, "tune_runs": len(plan.phase("tune")),
                    "repeats": REPEATS, "ours_all_s": ours, "baseline_all_s": base,
                    "met": ours_s <= TARGET_S},
    }]
    out = Path(__file__).parent / "results" / "bench_plan.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
