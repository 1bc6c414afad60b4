"""Spec validation uses the registry (entry point ``ptlab.validators``): unknown names get close
matches, out-of-range parameters are rejected — through the hook, the API model and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ptlab.api import hooks
from ptlab.api.models import AlgorithmRef
from ptlab.cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "run-dpo.yaml"


@pytest.fixture(autouse=True)
def _entry_point_checkers():
    """Load the installed checkers afresh (another test may have replaced them)."""
    hooks._checkers = None
    yield
    hooks._checkers = None


def test_entry_point_installs_the_registry_checker():
    from ptlab.algorithms.validation import check_algorithm

    assert check_algorithm in hooks._load()


@pytest.mark.parametrize(
    ("typo", "hint"), [("simpoo", "simpo"), ("dpo_pos", "dpop"), ("kto2", "kto")]
)
def test_unknown_name_lists_close_matches(typo, hint):
    with pytest.raises(
        ValueError, match=rf"unknown algorithm '{typo}' \(did you mean .*\b{hint}\b"
    ):
        hooks.check_algorithm(typo, {})


def test_api_model_rejects_unknown_name_with_suggestion():
    with pytest.raises(ValidationError, match=r"did you mean simpo"):
        AlgorithmRef(name="simpoo")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("dpo", {"beta": -1}, "dpo: beta=-1 must be > 0"),
        ("robust_dpo", {"label_smoothing": 0.7}, "label_smoothing=0.7 must be < 0.5"),
        ("simpo", {"gamma_mode": "percent"}, "gamma_mode='percent' is not one of"),
        ("kto", {"bogus": 1}, "unknown parameter 'bogus'"),
    ],
)
def test_api_model_rejects_out_of_range_params(name, params, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        AlgorithmRef(name=name, params=params)


def test_valid_alias_and_params_accepted():
    ref = AlgorithmRef(name="slic", params={"beta": 0.5})
    assert ref.name == "slic"
    AlgorithmRef(name="simpo", params={"beta": 2.5, "gamma": 1.4, "gamma_mode": "ratio"})


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{name: dpo, params: {beta: 0.1}}", "{name: simpoo}", "did you mean simpo"),
        ("params: {beta: 0.1}", "params: {beta: 0}", "beta=0 must be > 0"),
    ],
)
def test_cli_validate_rejects_bad_algorithm(tmp_path, old, new, message):
    spec = EXAMPLE.read_text()
    assert old in spec
    path = tmp_path / "run.yaml"
    path.write_text(spec.replace(old, new))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.output
