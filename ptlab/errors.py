"""User-facing errors: one line naming the field/file and the fix; CLI exit code 2."""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``), so a
    value quoted from a user's file can never split an error message over several lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class UserError(Exception):
    """Bad input (spec, file, argument). The CLI prints ``str(err)`` on one line, exits 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        message, hint = one_line(message), one_line(hint) if hint else hint
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)
