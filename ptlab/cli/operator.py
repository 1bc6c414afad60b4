"""`ptlab operator`: run the Kubernetes operator (PostTrainingRun, ComparisonStudy)."""

from __future__ import annotations

from typing import Annotated

import typer


def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only this namespace (repeatable)."),
    ] = None,
    peering: Annotated[
        bool, typer.Option("--peering", help="Coordinate with other replicas (kopf peering).")
    ] = False,
    liveness: Annotated[
        str, typer.Option("--liveness", help="Health endpoint URL ('' = off).")
    ] = "http://0.0.0.0:8081/healthz",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the operator in the foreground (all namespaces unless --namespace is given)."""
    from ptlab.operator.__main__ import run

    run(namespace or (), standalone=not peering, liveness=liveness or None, verbose=verbose)
