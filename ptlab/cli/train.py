"""`ptlab train RUN.yaml|RUN.json [--out DIR] [--metrics-port P]`: train one run locally.

The pod runs the same command (under ``torchrun`` for several processes). The file holds a
full PostTrainingRun object or a bare spec. Exit code 0 when the run succeeded (or was
already done), 1 when it failed (e.g. non-finite loss), 2 for invalid input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ptlab.api.load import load_documents, load_one, problems_from
from ptlab.api.models import PostTrainingRun, PostTrainingRunSpec
from ptlab.cli.common import console, error_line
from ptlab.errors import UserError


def read_run(path: Path) -> PostTrainingRun | PostTrainingRunSpec:
    """The run in ``path``: a PostTrainingRun (has ``kind``) or a bare spec."""
    docs = load_documents(path)
    if len(docs) != 1:
        raise UserError(f"{path}: expected one document, found {len(docs)}", "put one run per file")
    data = docs[0][1]
    if isinstance(data, dict) and "kind" in data:
        run = load_one(path, PostTrainingRun)
        assert isinstance(run, PostTrainingRun)
        return run
    try:
        return PostTrainingRunSpec.model_validate(data)
    except ValidationError as err:
        raise UserError(str(problems_from(err, str(path), 1, PostTrainingRunSpec)[0])) from None


def train(
    run_file: Annotated[Path, typer.Argument(help="PostTrainingRun (or bare spec) YAML/JSON.")],
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default ptlab-out/runs/NAME).")] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics here.")] = None,
) -> int:
    """Train one PostTrainingRun; re-running a finished run is a no-op."""
    from ptlab.trainer.run import train as run_train

    run = read_run(run_file)
    name = run.metadata.name if isinstance(run, PostTrainingRun) else run_file.stem
    result: dict[str, Any] = run_train(run, out or Path("ptlab-out") / "runs" / name, metrics_port=metrics_port)
    if result.get("status") != "succeeded":
        error_line(f"run {name} failed: {result.get('reason', 'unknown reason')}")
        return 1
    if os.environ.get("RANK", "0") != "0":
        return 0  # torchrun: rank 0 reports
    accuracy = result.get("metrics", {}).get("accuracy")
    shown = f", accuracy {accuracy:.3f}" if isinstance(accuracy, float) else ""
    console.print(f"run {name} succeeded: {result.get('steps')} steps{shown}", markup=False)
    return 0
