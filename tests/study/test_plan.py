"""Study planning: expansion counts, hashes and names, fairness records, tuning on the
validation split, sequential seeds (pure functions, no runs)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from ptlab.api.models import ComparisonStudy
from ptlab.study.plan import (
    Observations,
    choose_config,
    extend_seeds,
    fairness_violations,
    grid_config,
    grid_size,
    parse_param_count,
    plan_study,
    run_hash,
    tuning_configs,
)

DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def study(**spec: Any) -> ComparisonStudy:
    base: dict[str, Any] = {
        "algorithms": [
            {"name": "dpo", "tune": {"beta": [0.05, 0.1], "logp_reduction": ["sum", "mean"]}},
            {"name": "simpo", "params": {"gamma": 0.5}, "tune": {"beta": [1.0, 2.0]}},
        ],
        "scales": [{"name": "1M", "model": {"name": "zoo/s1"}},
                   {"name": "0.5B", "model": {"name": "Qwen/Qwen2.5-0.5B"}}],
        "domains": ["arith", "algebra"],
        "seeds": {"count": 3},
        "budget": {"steps": 40},
        "template": {"training": {"batch_size": 4, "max_len": 64}, "eval": {"items": 50}},
    }
    base.update(spec)
    return ComparisonStudy.model_validate({"metadata": {"name": "demo"}, "spec": base})


def all_scores(plan: Any, score: Any) -> Observations:
    return Observations({r.spec_hash: score(r) for r in plan.phase("tune")})


def test_tuning_phase_counts_and_equal_budget_record() -> None:
    plan = plan_study(study())
    # trials = largest grid (dpo 2×2 = 4); simpo's grid has 2 → fewer, and that is recorded
    assert len(plan.phase("tune")) == (4 + 2) * 2 * 2
    assert plan.phase("final") == []
    assert sorted(plan.waiting) == sorted(
        f"{a}@{s}/{d}" for a in ("dpo", "simpo") for s in ("1M", "0.5B") for d in ("arith", "algebra")
    )
    unequal = [d for d in plan.decisions if d.kind == "tuning-unequal"]
    assert [(d.subject, d.data["grid_size"], d.data["trials"]) for d in unequal] == [("simpo", 2, 4)]
    for run in plan.phase("tune"):
        assert run.spec.eval.split == "validation"
        assert run.spec.training.budget.steps == 40
        assert run.seed == 0


def test_final_runs_after_tuning_use_eval_split_and_same_seeds() -> None:
    s = study()
    plan = plan_study(s, all_scores(plan_study(s), lambda r: 0.5))
    finals = plan.phase("final")
    assert len(finals) == 2 * 2 * 2 * 3 and plan.complete
    assert {r.seed for r in finals} == {0, 1, 2}
    assert all(r.spec.eval.split == "eval" for r in finals)
    assert all(r.spec.training.budget.steps == 40 for r in finals)
    assert fairness_violations(plan) == []
    kinds = {d.kind for d in plan.decisions}
    assert {"budget", "data", "eval", "seeds", "tuning", "tuning-choice"} <= kinds
    assert plan.cost.runs == len(plan.runs) == 24 + 24
    # tokens upper bound: steps × batch × max_len per run
    assert plan.cost.train_tokens == pytest.approx(48 * 40 * 4 * 64)
    # scale "1M" → 6·1e6·tokens, "0.5B" → 6·5e8·tokens
    per_run = 40 * 4 * 64
    assert plan.cost.flops == pytest.approx(24 * 6 * per_run * (1e6 + 5e8))


def test_tuning_selects_best_validation_score_per_cell() -> None:
    s = study()
    first = plan_study(s)

    def score(run: Any) -> float | None:
        # dpo: beta 0.1/mean best at 1M, beta 0.05/sum best at 0.5B; simpo's 2.0 trial failed
        if run.algorithm == "simpo":
            return None if run.params["beta"] == 2.0 else 0.3
        best = {"1M": (0.1, "mean"), "0.5B": (0.05, "sum")}[run.scale]
        return 0.9 if (run.params["beta"], run.params["logp_reduction"]) == best else 0.4

    plan = plan_study(s, all_scores(first, score))
    chosen = {(r.algorithm, r.scale): dict(r.params) for r in plan.phase("final")}
    assert chosen[("dpo", "1M")] == {"beta": 0.1, "logp_reduction": "mean"}
    assert chosen[("dpo", "0.5B")] == {"beta": 0.05, "logp_reduction": "sum"}
    assert chosen[("simpo", "1M")] == {"gamma": 0.5, "beta": 1.0}
    for run in plan.phase("final"):
        assert run.spec.algorithm.params == dict(run.params)
    choice = next(d for d in plan.decisions if d.subject == "dpo@1M/arith")
    assert choice.data["params"] == {"beta": 0.1, "logp_reduction": "mean"}
    assert max(choice.data["scores"].values()) == 0.9


def test_choose_config_ties_first_failed_and_pending() -> None:
    runs = plan_study(study()).phase("tune")[:4]
    scores = {runs[0].spec_hash: 0.2, runs[1].spec_hash: 0.7, runs[2].spec_hash: 0.7,
              runs[3].spec_hash: None}
    assert choose_config(runs, scores) == (runs[1], True)
    assert choose_config(runs, {r.spec_hash: None for r in runs}) == (None, True)
    assert choose_config(runs, {runs[0].spec_hash: 1.0}) == (None, False)


def test_every_trial_failed_falls_back_to_untuned_params() -> None:
    s = study()
    plan = plan_study(s, all_scores(plan_study(s), lambda r: None))
    simpo = {dict(r.params)["gamma"] for r in plan.phase("final") if r.algorithm == "simpo"}
    assert simpo == {0.5}
    assert all(r.params == {} for r in plan.phase("final") if r.algorithm == "dpo")
    assert any("every tuning trial failed" in d.detail for d in plan.decisions)


def test_random_trials_equal_per_algorithm_and_reproducible() -> None:
    s = study(tune={"trials": 2, "budget_fraction": 0.25})
    plan = plan_study(s)
    per_alg: dict[str, set[str]] = {}
    for run in plan.phase("tune"):
        per_alg.setdefault(run.algorithm, set()).add(run.params_hash)
        assert run.spec.training.budget.steps == 10
    assert {a: len(v) for a, v in per_alg.items()} == {"dpo": 2, "simpo": 2}
    assert not [d for d in plan.decisions if d.kind == "tuning-unequal"]
    assert [r.name for r in plan_study(s).runs] == [r.name for r in plan.runs]


def test_grid_enumeration_is_row_major_over_sorted_keys() -> None:
    grid = {"b": [1, 2, 3], "a": ["x", "y"]}
    assert grid_size(grid) == 6
    assert [grid_config(grid, i) for i in range(6)] == [
        {"a": a, "b": b} for a in ("x", "y") for b in (1, 2, 3)
    ]


def test_random_subset_is_seeded_by_study_and_algorithm() -> None:
    alg = study().spec.algorithms[0]
    one = tuning_configs("demo", alg, 2)
    assert one == tuning_configs("demo", alg, 2)
    assert len({str(c) for c in one}) == 2
    assert tuning_configs("demo", alg, 10) == [grid_config(alg.tune, i) for i in range(4)]


def test_hashes_and_names_are_stable_unique_and_dns_safe() -> None:
    s = study()
    a, b = plan_study(s), plan_study(s)
    assert [(r.name, r.spec_hash) for r in a.runs] == [(r.name, r.spec_hash) for r in b.runs]
    names = [r.name for r in a.runs]
    assert len(set(names)) == len(names)
    assert all(DNS.match(n) and len(n) <= 63 for n in names)
    assert a.runs[0].name.startswith("demo-dpo-1m-arith-t0-")
    # tracking does not change a run's identity; the learning rate does
    tracked = study(template={"training": {"batch_size": 4, "max_len": 64},
                              "eval": {"items": 50}, "tracking": {"mlflow_uri": "http://x:1"}})
    assert [r.spec_hash for r in plan_study(tracked).runs] == [r.spec_hash for r in a.runs]
    other = study(template={"training": {"batch_size": 4, "max_len": 64, "lr": 3e-5},
                            "eval": {"items": 50}})
    assert not {r.spec_hash for r in plan_study(other).runs} & {r.spec_hash for r in a.runs}
    assert all(run_hash(r.spec) == r.spec_hash for r in a.runs)  # fast path == definition


def test_long_names_are_truncated_but_unique() -> None:
    long = "x" * 60
    s = study(scales=[{"name": long + "1", "model": {"name": "zoo/s1"}},
                      {"name": long + "2", "model": {"name": "zoo/s2"}}])
    names = [r.name for r in plan_study(s).runs]
    assert all(len(n) <= 63 and DNS.match(n) for n in names)
    assert len(set(names)) == len(names)


def test_same_data_eval_and_budget_for_every_algorithm_in_a_cell() -> None:
    s = study(algorithms=[{"name": "dpo"}, {"name": "kto"}, {"name": "sft"}],
              datasets={"algebra": {"format": "math", "path": "/data/math.jsonl"}})
    plan = plan_study(s)
    assert plan.phase("tune") == [] and plan.complete
    assert fairness_violations(plan) == []
    algebra = [r for r in plan.runs if r.domain == "algebra"]
    assert {r.spec.data.source.path for r in algebra} == {"/data/math.jsonl"}
    assert {r.spec.model.scale for r in plan.runs} == {"1M", "0.5B"}


def test_fairness_violations_detects_a_differing_spec() -> None:
    plan = plan_study(study(algorithms=[{"name": "dpo"}, {"name": "kto"}]))
    first = plan.runs[0]
    training = first.spec.training.model_copy(update={"lr": 1.0})
    runs = (dataclasses.replace(first, parts={**first.parts, "training": training}), *plan.runs[1:])
    problems = fairness_violations(dataclasses.replace(plan, runs=runs))
    assert problems == ["cell 1M/arith seed 0: specs differ beyond the algorithm"]


def recs(**best: list[str]) -> list[dict[str, Any]]:
    return [{"scale": k.split("_")[0], "domain": k.split("_")[1], "best": v} for k, v in best.items()]


def test_sequential_seeds_only_for_unresolved_cells() -> None:
    s = study(algorithms=[{"name": "dpo"}, {"name": "kto"}],
              seeds={"count": 2, "sequential": {"max": 4}})
    seeds, decisions = extend_seeds(
        s, recs(**{"1M_arith": ["dpo", "kto"], "1M_algebra": ["dpo"],
                   "0.5B_arith": ["kto"], "0.5B_algebra": ["dpo"]}), {})
    assert seeds == {("1M", "arith"): 3, ("1M", "algebra"): 2,
                     ("0.5B", "arith"): 2, ("0.5B", "algebra"): 2}
    assert any(d.subject == "1M/arith" and "one more seed (3 in all)" in d.detail for d in decisions)
    plan = plan_study(s, Observations({}, seeds))
    per_cell: dict[tuple[str, str], set[int]] = {}
    for run in plan.runs:
        per_cell.setdefault(run.cell, set()).add(run.seed)
    assert per_cell[("1M", "arith")] == {0, 1, 2}
    assert per_cell[("0.5B", "algebra")] == {0, 1}
    assert len(plan.runs) == 2 * (3 + 2 + 2 + 2)
    assert plan.cost.max_runs == 2 * 4 * 4
    # at the maximum nothing more is added, and it is recorded
    capped, decisions = extend_seeds(s, recs(**{"1M_arith": ["dpo", "kto"]}), {("1M", "arith"): 4})
    assert capped[("1M", "arith")] == 4
    assert any("maximum of 4" in d.detail for d in decisions)


def test_no_sequential_means_no_extra_seeds() -> None:
    s = study(algorithms=[{"name": "dpo"}, {"name": "kto"}])
    seeds, decisions = extend_seeds(s, recs(**{"1M_arith": ["dpo", "kto"]}), {})
    assert set(seeds.values()) == {3} and decisions == []


def test_seed_list_extends_after_its_largest_seed() -> None:
    s = study(algorithms=[{"name": "dpo"}, {"name": "kto"}],
              seeds={"list": [7, 3], "sequential": {"max": 3}})
    plan = plan_study(s, Observations({}, {("1M", "arith"): 3}))
    assert {r.seed for r in plan.runs if r.cell == ("1M", "arith")} == {7, 3, 8}


def test_tokens_budget_is_scaled_for_tuning_and_recorded() -> None:
    s = study(budget={"tokens": 1000}, tune={"budget_fraction": 0.5})
    plan = plan_study(s)
    assert {r.spec.training.budget.tokens for r in plan.phase("tune")} == {500}
    budget = next(d for d in plan.decisions if d.kind == "budget")
    assert budget.data["unit"] == "tokens" and "generated tokens" in budget.detail


def test_parse_param_count() -> None:
    assert parse_param_count("0.5B") == 5e8
    assert parse_param_count("Qwen/Qwen2.5-7B-Instruct") == 7e9
    assert parse_param_count("16M") == 1.6e7
    assert parse_param_count("s1") is None


def test_manifest_is_a_valid_post_training_run_with_labels() -> None:
    from ptlab.api.models import PostTrainingRun

    run = plan_study(study(algorithms=[{"name": "dpo"}, {"name": "kto"}])).runs[0]
    obj = PostTrainingRun.model_validate(run.manifest("demo", namespace="ns"))
    assert obj.metadata.name == run.name
    assert obj.metadata.labels["ptlab.io/spec-hash"] == run.spec_hash
    assert obj.metadata.labels["ptlab.io/scale"] == "1M"
    assert obj.spec.study == "demo"
