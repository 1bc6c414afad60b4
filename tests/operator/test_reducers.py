"""Status reducers and operator-side validation (pure)."""

from __future__ import annotations

import pytest

from ptlab.api.models import PostTrainingRunSpec
from ptlab.operator import reducers, validation
from ptlab.operator.config import OperatorConfig

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def cond(*types: str) -> dict:
    return {"conditions": [{"type": t, "status": "True"} for t in types]}


@pytest.mark.parametrize(
    ("status", "phase"),
    [({}, "Pending"), (cond("Created"), "Pending"), (cond("Created", "Running"), "Running"),
     (cond("Created", "Running", "Succeeded"), "Succeeded"), (cond("Failed"), "Failed"),
     ({"active": 1}, "Running"), (cond("Complete"), "Succeeded")],
)
def test_job_phase(status, phase):
    assert reducers.job_phase(status)[0] == phase


def test_run_status_transition_keeps_transition_times_and_stops_at_terminal():
    running = reducers.run_status_from_job("j", cond("Created", "Running"), {}, T0)
    assert running["phase"] == "Running" and running["startTime"] == T0
    assert running["conditions"] == [{"type": "Running", "status": "True", "reason": "Running",
                                      "message": "job is running", "lastTransitionTime": T0}]
    done = reducers.run_status_from_job("j", cond("Succeeded"), {**running}, T1)
    assert done["phase"] == "Succeeded" and done["completionTime"] == T1
    assert "startTime" not in done  # already set, never moved
    by_type = {c["type"]: c for c in done["conditions"]}
    assert (by_type["Running"]["status"], by_type["Running"]["lastTransitionTime"]) == ("False", T1)
    assert reducers.run_status_from_job("j", cond("Failed"), done, T1) == {}  # terminal stays
    assert reducers.run_status_from_job("j", cond("Created", "Running"), running, T1) == {}


def test_runs_to_create_respects_parallelism_plan_order_and_suspend():
    existing = {"a": reducers.Child("a", "Running", {}), "b": reducers.Child("b", "Succeeded", {})}
    planned = ["a", "b", "c", "d", "e"]
    assert reducers.runs_to_create(planned, existing, 3, False) == ["c", "d"]
    assert reducers.runs_to_create(planned, existing, 1, False) == []
    assert reducers.runs_to_create(planned, existing, 3, True) == []
    assert reducers.run_counts(planned, existing) == {
        "total": 5, "pending": 3, "running": 1, "succeeded": 1, "failed": 0}


def test_config_zoo_matches_the_trainer_zoo():
    from ptlab.trainer.zoo import SCALES

    assert OperatorConfig().zoo == frozenset(f"zoo/{s}" for s in SCALES)


def test_config_from_env_types_and_errors():
    config = OperatorConfig.from_env({"PTLAB_OPERATOR_MAX_NODES": "3",
                                      "PTLAB_OPERATOR_IMAGE": "x:1"})
    assert (config.max_nodes, config.image) == (3, "x:1")
    with pytest.raises(ValueError, match="PTLAB_OPERATOR_MAX_NODES='many'"):
        OperatorConfig.from_env({"PTLAB_OPERATOR_MAX_NODES": "many"})


@pytest.mark.parametrize(
    ("resources", "field"),
    [({"gpus": 2, "nodes": 2, "backend": "job"}, "spec.resources.nodes"),
     ({"nodes": 100}, "spec.resources.nodes"),
     ({"backend": "pytorchjob"}, "spec.resources.backend")],
)
def test_resource_checks_name_the_field(resources, field):
    spec = PostTrainingRunSpec.model_validate(
        {"algorithm": {"name": "dpo"}, "model": {"name": "zoo/s1"}, "resources": resources})
    invalid = validation.check_run(spec, OperatorConfig(), OperatorConfig().zoo, False)
    assert invalid is not None and invalid.field == field


def test_valid_run_passes():
    spec = PostTrainingRunSpec.model_validate(
        {"algorithm": {"name": "dpo"}, "model": {"name": "Qwen/Qwen2.5-0.5B"}})
    assert validation.check_run(spec, OperatorConfig(), OperatorConfig().zoo, True) is None
