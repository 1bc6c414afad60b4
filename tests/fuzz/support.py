"""Shared pieces of the fuzz suites: the in-process CLI runner, the "success or one-line
error" contract, and strategies for nasty values and corrupted files."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from ptlab.cli.common import run_guarded
from ptlab.cli.main import app
from ptlab.errors import UserError


def count(label: str) -> None:
    """Count an outcome in hypothesis' statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(label)


def fuzz(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Apply the deterministic 1,000-case profile registered in ``tests/fuzz/conftest.py``."""
    return settings(settings.get_profile("ptlab-fuzz"))(fn)


# --------------------------------------------------------------------------- CLI in-process


@dataclass(frozen=True)
class CliResult:
    """Exit code and the text written to stdout / stderr by one ``ptlab`` invocation."""

    code: int
    out: str
    err: str
    warnings: tuple[str, ...]


# What ``ptlab.cli.main.main`` runs, with typer's click command built once (~30 ms a call).
_COMMAND = typer.main.get_command(app)


def invoke(argv: list[str]) -> CliResult:
    """Run ``ptlab ARGV`` in this process exactly as ``ptlab.cli.main.main`` does (same
    ``run_guarded`` boundary), capturing output and the Python warnings it raised (which a
    user would see on stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_guarded(
                lambda: _COMMAND.main(args=argv, prog_name="ptlab", standalone_mode=False)
            )
    shown = tuple(
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, RuntimeWarning | UserWarning)
        and not issubclass(w.category, DeprecationWarning)
    )
    return CliResult(code, out.getvalue(), err.getvalue(), shown)


def assert_cli_contract(result: CliResult, *, lines: int | None = 1) -> list[str]:
    """Exit 0 with a silent stderr, or exit 2 with ``lines`` ``error: ...`` lines (None: any
    number ≥ 1, one per problem); never a traceback, an internal error or a warning."""
    where = f"exit {result.code}\nstdout: {result.out!r}\nstderr: {result.err!r}"
    assert "Traceback" not in result.out + result.err, where
    assert not result.warnings, f"warnings leaked to the user: {result.warnings}\n{where}"
    assert result.code in (0, 2), f"not success nor a user error (a bug): {where}"
    errors = result.err.splitlines()
    if result.code == 0:
        assert errors == [], where
        return []
    assert errors, f"exit 2 without an error line: {where}"
    if lines is not None:
        assert len(errors) == lines, where
    for line in errors:
        assert line.startswith("error: ") and len(line) > len("error: ") + 3, where
        assert "internal error" not in line, where
    return errors


def assert_user_error(err: UserError, *, names: str | None = None) -> str:
    """A UserError message is one non-empty line (optionally naming ``names``)."""
    text = str(err)
    assert text.strip() and "\n" not in text and "\r" not in text, repr(text)
    if names is not None:
        assert names in text, f"{names!r} not in {text!r}"
    return text


def files_under(root: Path) -> set[Path]:
    """Every file and folder below ``root`` (empty if it does not exist)."""
    return set(root.rglob("*")) if root.exists() else set()


@contextlib.contextmanager
def no_new_files_on_failure(root: Path) -> Iterator[Callable[[bool], None]]:
    """Yield ``done(ok)``; on ``ok=False`` nothing new may exist under ``root``."""
    before = files_under(root)

    def done(ok: bool) -> None:
        if not ok:
            new = sorted(map(str, files_under(root) - before))
            assert not new, f"a failed command left files behind: {new}"

    yield done


# --------------------------------------------------------------------------- strategies

# Text without lone surrogates (YAML/CSV writers cannot encode them) but with every other
# kind of unicode: combining marks, RTL, emoji, control characters, NUL.
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
BIG_NUMBERS = [10**30, -(10**30), 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 5e-324]
SPECIAL_STRINGS = [
    "", " ", "\t", "\n", "nan", "NaN", "inf", "-inf", ".inf", "-.inf", ".nan", "1e999",
    "-1e999", "0x1F", "1_000", "~", "null", "None", "yes", "no", "on", "true", "2024-01-01",
    "12:30:00", "1/0", "0/0", "∞", "١٢٣", "½", "🤖", "'", '"', "\\", "${HOME}", "%s", "a,b",
    "é" * 300, "x" * 5000, "9" * 5000, "#### " + "7" * 4400, "0." + "3" * 400, "-", "--", "--help", "\x00", "\u202e", "#### 1e99999",
]
nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_STRINGS),
    any_text,
)
nasty_values = st.recursive(
    nasty_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(any_text, st.sampled_from(["name", "value", "spec"])), inner, max_size=4),
    ),
    max_leaves=8,
)


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (dict keys / list indices) inside a JSON-like document, in document order."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(paths_of(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.extend(paths_of(value, (*prefix, index)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def mutate(doc: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    """A deep copy of ``doc`` with one change at ``path``: ``set`` it to ``value``,
    ``delete`` it, ``extra`` (add an unknown key next to it) or ``wrap`` it in a list."""
    import copy

    new = copy.deepcopy(doc)
    parent, last = _parent(new, path), path[-1]
    if how == "set":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent[f"{last}_typo" if isinstance(last, str) else "unknownField"] = value
    elif how == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return new


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any]) -> Any:
    """One of ``bases`` with one to three fields changed (wrong type, range, unknown key…)."""
    doc = draw(st.sampled_from(bases))
    for _ in range(draw(st.integers(1, 3))):
        paths = paths_of(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "wrap"]))
        doc = mutate(doc, path, how, draw(nasty_values))
    return doc


ENCODINGS = ["utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig", "shift_jis"]


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` damaged at the byte level: truncated, re-encoded, bytes inserted/flipped,
    a slice deleted or duplicated."""
    how = draw(st.sampled_from(["truncate", "encode", "insert", "flip", "delete", "repeat"]))
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return data[:at]
    if how == "encode":
        encoding = draw(st.sampled_from(ENCODINGS))
        return data.decode("utf-8").encode(encoding, errors="replace")
    if how == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if how == "flip":
        if not data:
            return b"\xff"
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "delete":
        end = draw(st.integers(at, len(data)))
        return data[:at] + data[end:]
    return data[:at] + data[: draw(st.integers(0, len(data)))] + data[at:]


raw_garbage = st.one_of(
    st.binary(max_size=600),
    any_text.map(lambda t: t.encode("utf-8")),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
    st.sampled_from([b"", b"\n", b"\xef\xbb\xbf", b"\xff\xfe", b"{" * 1500, b"[" * 1500,
                     b"- " * 3000, b"a: " * 3000, b"&a [*a]", b"!!python/object:os.system ls"]),
)


def is_finite_json(obj: Any) -> bool:
    """True when a JSON-like value holds no NaN/inf floats (a strict JSON document)."""
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(is_finite_json(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return all(is_finite_json(v) for v in obj)
    return True
