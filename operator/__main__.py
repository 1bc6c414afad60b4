"""``python -m ptlab.operator`` / ``ptlab operator``: run the operator (kopf) until stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import kopf


def run(
    namespaces: Sequence[str] = (),
    standalone: bool = True,
    liveness: str | None = "http://0.0.0.0:8081/healthz",
    verbose: bool = False,
) -> None:
    """Watch ``namespaces`` (none = all) with the ptlab handlers."""
    import ptlab.operator.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=standalone,
            liveness_endpoint=liveness,
        )
    )


if __name__ == "__main__":
    run()
