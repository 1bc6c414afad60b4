"""`ptlab validate`: examples pass; each bad file gives exactly one clear line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STUDY = """\
apiVersion: ptlab.io/v1alpha1
kind: ComparisonStudy
metadata: {{name: s}}
spec:
  algorithms: {algorithms}
  scales: {scales}
  domains: [arith]
  budget: {budget}
"""
OK_ALGOS = "[{name: dpo}, {name: sft}]"
OK_SCALES = "[{name: s1, model: {name: zoo/s1}}]"


def study(algorithms: str = OK_ALGOS, scales: str = OK_SCALES, budget: str = "{steps: 10}") -> str:
    return STUDY.format(algorithms=algorithms, scales=scales, budget=budget)


# name -> (file content, text the one error line must contain)
BAD: dict[str, tuple[bytes, str]] = {
    "wrong-kind": (study().replace("ComparisonStudy", "TrainingJob").encode(), "kind: 'TrainingJob' is not a ptlab kind"),
    "wrong-api-version": (study().replace("v1alpha1", "v9").encode(), "apiVersion: 'ptlab.io/v9' is not supported"),
    "unknown-field": (study(algorithms="[{name: dpo, betta: 0.1}]").encode(), "spec.algorithms[0].betta: unknown field"),
    "negative-beta": (study(algorithms="[{name: dpo, params: {beta: -1}}]").encode(), "spec.algorithms[0].params: dpo: beta=-1 must be > 0"),
    "unknown-algorithm": (study(algorithms="[{name: simpoo}]").encode(), "spec.algorithms[0].name: unknown algorithm 'simpoo' (did you mean simpo"),
    "empty-algorithms": (study(algorithms="[]").encode(), "spec.algorithms: List should have at least 1 item"),
    "duplicate-scales": (study(scales=OK_SCALES[:-1] + ", {name: s1, model: {name: zoo/s2}}]").encode(), "spec.scales: scales must have unique names (duplicate: s1)"),
    "two-budget-units": (study(budget="{steps: 10, tokens: 100}").encode(), "set exactly one of budget.steps, budget.tokens or budget.flops"),
    "zero-lr": (study().replace("  budget:", "  template: {training: {lr: 0}}\n  budget:").encode(), "spec.template.training.lr: Input should be greater than 0"),
    "yaml-syntax": (b"kind: ComparisonStudy\nspec: [unclosed\n", "YAML syntax error at line"),
    "empty-file": (b"", "no YAML documents (the file is empty)"),
    "binary-garbage": (bytes(range(256)) * 4, "binary file, not YAML"),
    "not-utf8": ("kind: Comparison\xe9Study\n".encode("latin-1"), "not UTF-8 text"),
    "list-document": (b"- a\n- b\n", "document is a list"),
    "missing-spec": (b"apiVersion: ptlab.io/v1alpha1\nkind: PostTrainingRun\nmetadata: {name: r}\n", "spec: field required"),
    "run-two-model-sources": (
        b"apiVersion: ptlab.io/v1alpha1\nkind: PostTrainingRun\nmetadata: {name: r}\n"
        b"spec: {algorithm: {name: dpo}, model: {name: zoo/s1, path: /m}}\n",
        "set exactly one of model.name or model.path",
    ),
}


def run_validate(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ptlab.cli.main", "validate", *map(str, files)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


def test_examples_validate() -> None:
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    assert len(examples) >= 3
    result = run_validate(*examples)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": OK ") == len(examples)


@pytest.mark.slow
def test_each_bad_file_gives_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    files = []
    for name, (content, _) in BAD.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(content)
        files.append(path)
    result = run_validate(*files)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(BAD), result.stderr
    for (name, (_, expected)), line in zip(BAD.items(), lines, strict=True):
        assert line.startswith(f"error: {tmp_path / name}.yaml"), line
        assert expected in line, f"{name}: {line}"


def test_missing_file_is_exit_2_not_a_traceback(tmp_path: Path) -> None:
    result = run_validate(tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file (check the path)"


def test_version_and_help() -> None:
    version = subprocess.run([sys.executable, "-m", "ptlab.cli.main", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "ptlab 0.1.0"
    helptext = subprocess.run([sys.executable, "-m", "ptlab.cli.main", "--help"], capture_output=True, text=True, check=True)
    for command in ("validate", "crds"):
        assert command in helptext.stdout
