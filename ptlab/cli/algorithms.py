"""`ptlab algorithms list|show`: browse the loss / advantage registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ptlab.cli.common import console
from ptlab.errors import UserError

app = typer.Typer(
    help="List and describe registered algorithms (losses, advantage estimators).",
    no_args_is_help=True,
)


def _registry():  # type: ignore[no-untyped-def]
    """Import lazily: torch loads only for this command group."""
    import ptlab.algorithms as algorithms

    return algorithms


@app.command("list")
def list_(
    family: Annotated[
        str | None, typer.Option("--family", "-f", help="Only this family, e.g. paired-offline.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List entries (aliases are shown with their entry, never as entries)."""
    algorithms = _registry()
    from ptlab.algorithms.registry import FAMILIES

    if family is not None and family not in FAMILIES:
        raise UserError(
            f"--family {family!r} is not a family", hint=f"one of: {', '.join(FAMILIES)}"
        )
    specs = algorithms.entries(family=family)
    if as_json:
        rows = [
            {
                k: v
                for k, v in spec.describe().items()
                if k not in {"formula", "role", "input_kind", "needs_teacher"}
            }
            | {"input_kind": spec.input_kind, "needs_teacher": spec.needs_teacher}
            for spec in specs
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "aliases", "family", "ref", "rollouts", "citation", box=None)
    for spec in specs:
        table.add_row(
            spec.name,
            ", ".join(spec.aliases),
            spec.family,
            "yes" if spec.needs_reference else "",
            "yes" if spec.needs_rollouts else "",
            spec.citation,
        )
    console.print(table)
    console.print(f"{len(specs)} entries", markup=False)


@app.command()
def show(name: Annotated[str, typer.Argument(help="Entry name or alias.")]) -> None:
    """Formula, parameters (default, range) and citation of one entry."""
    algorithms = _registry()
    try:
        spec = algorithms.get(name)
    except algorithms.UnknownAlgorithmError as err:
        raise UserError(str(err)) from None
    alias = f" (via alias {name})" if spec.name != name else ""
    console.print(f"{spec.name}{alias} — {spec.family}, input: {spec.input_kind}", markup=False)
    console.print(f"  formula:  {spec.formula}", markup=False)
    needs = [k for k in ("reference", "teacher", "rollouts") if getattr(spec, f"needs_{k}")]
    console.print(f"  needs:    {', '.join(needs) or 'policy log-probs only'}", markup=False)
    if spec.aliases:
        console.print(f"  aliases:  {', '.join(spec.aliases)}", markup=False)
    ranges = spec.param_ranges()
    console.print("  params:" + ("" if ranges else "   none"), markup=False)
    for pname, (default, rng) in ranges.items():
        if rng.choices is not None:
            bounds = "one of " + ", ".join(map(str, rng.choices))
        else:
            lo = "(" if rng.min_exclusive else "["
            hi = ")" if rng.max_exclusive else "]"
            bounds = f"{lo}{'-inf' if rng.min is None else rng.min}, {'inf' if rng.max is None else rng.max}{hi}"
        doc = f"  {rng.doc}" if rng.doc else ""
        console.print(f"    {pname} = {default!r}  {bounds}{doc}", markup=False)
    console.print(f"  citation: {spec.citation}", markup=False)
    summary = (spec.fn.__doc__ or "").strip().splitlines()
    if summary:
        console.print(f"  {summary[0]}", markup=False)
