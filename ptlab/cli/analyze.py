"""`ptlab analyze RESULTS.csv`: statistics, JSON and an HTML/PNG report for a results table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ptlab.analysis import analyze as run_analysis
from ptlab.analysis import print_summary, read_items, read_results, write_report
from ptlab.cli.common import console
from ptlab.errors import UserError


def analyze(
    results: Annotated[Path, typer.Argument(help="Results table CSV (DESIGN.md §4 columns).")],
    metric: Annotated[
        str | None, typer.Option(help="Metric to analyse (required if the table has several).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise level per cell (Holm).")] = 0.05,
    margin: Annotated[
        float, typer.Option(help="TOST equivalence margin in metric units (0: off).")
    ] = 0.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the analysis JSON here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write report.html and PNGs into this directory.")
    ] = None,
    items: Annotated[
        Path | None, typer.Option(help="Per-item scores, JSON lines (pairs tests on items).")
    ] = None,
    scale_order: Annotated[
        str | None, typer.Option(help="Explicit scale order, comma-separated: 0.5B,1.5B,7B.")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples per cell.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap random seed.")] = 0,
) -> None:
    """Rank algorithms per scale × domain, find ranking inversions, recommend, report."""
    for target, kind in ((json_out, "file"), (report, "directory")):
        if target is not None:
            check_output_path(target, kind)
    table = read_results(results)
    item_table = read_items(items) if items else None
    order = [s.strip() for s in scale_order.split(",") if s.strip()] if scale_order else None
    result = run_analysis(
        table, metric=metric, alpha=alpha, margin=margin, n_boot=n_boot, seed=seed,
        items=item_table, scale_order=order,
    )
    print_summary(result, console)
    if report:  # first: it is the step that can fail, and it writes nothing until it can't
        console.print(f"wrote {write_report(result, report)}", markup=False)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_json(), indent=2))
        console.print(f"wrote {json_out}", markup=False)


def check_output_path(path: Path, kind: str) -> None:
    """UserError unless ``path`` can become a ``kind`` (file/directory): it is not the other
    kind, and no existing parent is a file."""
    if path.exists() and path.is_dir() != (kind == "directory"):
        raise UserError(f"output {str(path)!r} exists and is not a {kind}", f"give a {kind} path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"output {str(path)!r}: {str(parent)!r} is a file, not a directory")
            break
