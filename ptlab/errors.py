"""User-facing errors: one line naming the field/file and the fix; CLI exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (spec, file, argument). The CLI prints ``str(err)`` on one line, exits 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)
