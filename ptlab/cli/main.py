"""The `ptlab` command line. Exit codes: 0 ok, 2 invalid input, 1 internal error."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ptlab import __version__
from ptlab.cli import algorithms as algorithms_cli
from ptlab.cli import crds as crds_cli
from ptlab.cli import study as study_cli
from ptlab.cli import train as train_cli
from ptlab.cli import zoo as zoo_cli
from ptlab.cli.analyze import analyze as analyze_cmd
from ptlab.cli.common import console_err, run_guarded
from ptlab.cli.operator import operator as operator_cmd
from ptlab.cli.validate import validate

app = typer.Typer(
    name="ptlab",
    help="Compare post-training algorithms (DPO, SimPO, KTO, GRPO, ...) fairly across scales.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(validate)
app.add_typer(crds_cli.app, name="crds")
app.add_typer(algorithms_cli.app, name="algorithms")
app.add_typer(zoo_cli.app, name="zoo")
app.add_typer(crds_cli.docs_app, name="docs")
app.command(name="analyze")(analyze_cmd)
app.add_typer(study_cli.app, name="study")
app.command(name="operator")(operator_cmd)
app.command(name="train")(train_cli.train)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ptlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """ptlab: fair, statistically honest post-training algorithm comparisons."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input → one line + exit 2; a bug → one line + exit 1."""
    code = run_guarded(lambda: app(args=argv, standalone_mode=False))
    if code:
        console_err.file.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
