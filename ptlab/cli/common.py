"""Shared CLI plumbing: one-line errors and exit codes."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
import typer
from rich.console import Console

from ptlab.errors import UserError, one_line

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)
# typer ≥ 0.2x runs a vendored copy of click whose exceptions are not click's: catch both.
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)
_USAGE = (click.ClickException, typer.TyperException)


def error_line(message: str) -> None:
    """Print one error line to stderr (no markup interpretation)."""
    console_err.print(f"error: {one_line(message)}", markup=False, soft_wrap=True)


def run_guarded(fn: Callable[[], Any]) -> int:
    """Run a click/typer app, mapping failures to exit codes without tracebacks.

    UserError / click usage errors / an unusable path (OSError naming a file) → 2;
    KeyboardInterrupt → 130; anything else → 1 with a one-line message (set PTLAB_DEBUG=1 to
    see the traceback).
    """
    try:
        result = fn()
    except UserError as err:
        error_line(str(err))
        return 2
    except _EXIT as done:
        return int(done.exit_code or 0)
    except _ABORT:
        error_line("aborted")
        return 130
    except _USAGE as err:
        message = getattr(err, "format_message", err.__str__)().replace("\n", " ").strip()
        error_line(message or "a command is missing (see the usage above)")  # no_args_is_help
        return 2
    except KeyboardInterrupt:
        error_line("interrupted; results written so far are kept")
        return 130
    except Exception as err:  # the CLI boundary: never print a traceback
        if isinstance(err, OSError) and err.filename is not None:
            # a path the user gave cannot be used (too long, not a directory, no permission…)
            error_line(f"{err.filename}: {err.strerror or err}")
            return 2
        if os.environ.get("PTLAB_DEBUG"):
            raise
        error_line(f"internal error: {type(err).__name__}: {err} (rerun with PTLAB_DEBUG=1)")
        return 1
    return int(result) if isinstance(result, int) else 0
