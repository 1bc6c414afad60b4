"""`ptlab crds generate` and `ptlab docs generate`: files generated from code, with --check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ptlab.cli.common import console
from ptlab.errors import UserError

app = typer.Typer(help="CustomResourceDefinitions generated from the API models.", no_args_is_help=True)
docs_app = typer.Typer(help="Reference docs generated from the API models and the registry.", no_args_is_help=True)

CheckOption = Annotated[bool, typer.Option("--check", help="Only report stale files; exit 2 if any.")]


def generate_or_check(
    out: Path,
    check: bool,
    write: Callable[[Path], list[Path]],
    stale: Callable[[Path], list[Path]],
    command: str,
) -> None:
    """Write generated files into ``out``, or with ``check`` fail if any is stale."""
    if check:
        outdated = stale(out)
        if outdated:
            raise UserError(f"{', '.join(map(str, outdated))} out of date", f"run `{command}`")
        console.print(f"{out}: generated files are current")
        return
    for path in write(out):
        console.print(f"wrote {path}")


@app.command("generate")
def generate_crds(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("crds"),
    check: CheckOption = False,
) -> None:
    """Write crds/*.yaml from ptlab/api/models.py (or --check that they are current)."""
    from ptlab.api.crd import stale_crds, write_crds

    generate_or_check(out, check, write_crds, stale_crds, "ptlab crds generate")


@docs_app.command("generate")
def generate_docs(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("docs"),
    check: CheckOption = False,
) -> None:
    """Write docs/api.md and docs/algorithms.md (or --check that they are current)."""
    from ptlab.docs import stale_docs, write_docs

    generate_or_check(out, check, write_docs, stale_docs, "ptlab docs generate")
