"""`ptlab zoo build|list|path`: the tiny pretrained model zoo (see ptlab.trainer.zoo)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ptlab.cli.common import console
from ptlab.errors import UserError

app = typer.Typer(help="The tiny model zoo: 4 pretrained scales, cached.", no_args_is_help=True)


def _scales(text: str) -> list[str]:
    from ptlab.trainer.zoo import SCALES

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCALES]
    if unknown or not names:
        raise UserError(f"--scales: unknown scale(s) {unknown}", f"choose from {','.join(SCALES)}")
    return names


@app.command("build")
def build(
    scales: Annotated[
        str, typer.Option("--scales", help="Comma-separated scales.")
    ] = "s1,s2,s3,s4",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Pretrain the given scales (a cached scale is found instantly)."""
    from ptlab.trainer.zoo import ensure_model

    for name in _scales(scales):
        start = time.perf_counter()
        path = ensure_model(name, progress=not quiet)
        console.print(f"{name}: {path} ({time.perf_counter() - start:.1f} s)")


@app.command("list")
def list_cmd() -> None:
    """Scales and the models built in the cache."""
    from ptlab.trainer.zoo import SCALES, list_models

    built = {row["scale"]: row for row in list_models()}
    for name, spec in SCALES.items():
        row = built.get(name)
        state = (
            f"{row['params'] / 1e6:.2f}M params, {row['train_tokens'] / 1e6:.1f}M tokens, "
            f"loss {row['final_loss']:.3f}, built in {row['build_s']:.0f} s  {row['path']}"
            if row
            else "not built"
        )
        console.print(f"{name}: hidden {spec.hidden} x {spec.layers} layers — {state}")


@app.command("path")
def path_cmd(scale: Annotated[str, typer.Argument(help="Scale name, e.g. s2.")]) -> None:
    """Print the directory of a scale's model (building it if needed)."""
    from ptlab.trainer.zoo import ensure_model

    typer.echo(str(ensure_model(_scales(scale)[0], progress=False)))


@app.command("eval")
def eval_cmd(
    scales: Annotated[
        str, typer.Option("--scales", help="Comma-separated scales.")
    ] = "s1,s2,s3,s4",
    items: Annotated[int, typer.Option("--items", help="Eval items per domain.")] = 300,
    out: Annotated[str | None, typer.Option("--out", help="Write the table as JSON here.")] = None,
) -> None:
    """Greedy eval-split accuracy of the base models: one row per scale, one column per domain."""
    import json

    from ptlab.trainer.domains import DOMAINS, get_domain
    from ptlab.trainer.evaluation import evaluate
    from ptlab.trainer.zoo import ensure_model, load_pretrained

    table: dict[str, dict[str, float]] = {}
    console.print("scale  " + "  ".join(f"{d:>8}" for d in DOMAINS))
    for name in _scales(scales):
        model, tok = load_pretrained(str(ensure_model(name)))
        table[name] = {}
        for domain in DOMAINS:
            dom = get_domain(domain)
            table[name][domain] = evaluate(
                model, tok, dom, dom.items("eval", items), max_new_tokens=96
            )["accuracy"]
        console.print(f"{name:<6} " + "  ".join(f"{table[name][d]:>8.3f}" for d in DOMAINS))
    if out:
        with open(out, "w") as fh:
            json.dump({"items_per_domain": items, "accuracy": table}, fh, indent=1)
