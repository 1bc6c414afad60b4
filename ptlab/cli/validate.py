"""`ptlab validate FILE...`: check ptlab YAML files without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ptlab.api.load import validate_file
from ptlab.cli.common import console, error_line
from ptlab.errors import UserError


def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML files (multi-document allowed).")],
) -> None:
    """Validate PostTrainingRun / ComparisonStudy files: one line per object or problem."""
    bad = 0
    for path in files:
        try:
            outcomes = validate_file(path)
        except UserError as err:
            error_line(str(err))
            bad += 1
            continue
        for outcome in outcomes:
            if outcome.obj is not None:
                obj = outcome.obj
                console.print(
                    f"{outcome.file}:{outcome.doc}: OK {obj.kind}/{obj.metadata.name}", markup=False
                )
            for problem in outcome.problems:
                error_line(str(problem))
                bad += 1
    if bad:
        raise typer.Exit(2)
