"""`ptlab crds generate`: write the CRDs generated from the API models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ptlab.api.crd import stale_crds, write_crds
from ptlab.cli.common import console
from ptlab.errors import UserError

app = typer.Typer(help="CustomResourceDefinitions generated from the API models.", no_args_is_help=True)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("crds"),
    check: Annotated[
        bool, typer.Option("--check", help="Only report files that differ; exit 2 if any.")
    ] = False,
) -> None:
    """Write crds/*.yaml from ptlab/api/models.py (or --check that they are current)."""
    if check:
        stale = stale_crds(out)
        if stale:
            raise UserError(
                f"{', '.join(map(str, stale))} differ from the models",
                "run `ptlab crds generate`",
            )
        console.print(f"CRDs in {out} are current")
        return
    for path in write_crds(out):
        console.print(f"wrote {path}")
