"""Fuzzing the arguments of every `ptlab` command, in-process.

Each argv is a command from the real command tree with generated arguments, then random
tokens (known option names, nasty values, workspace files) inserted anywhere. Every case ends
with exit 0 or exit 2 and one `error: ...` line (one per problem for `validate`), no
traceback, and — when it fails — no new file in the working directory.

Commands that start long work (`study run`, `train`, `zoo build|path`, `operator`) get only
arguments that fail fast (a bad spec file, an unknown scale or option). As a second guard
their work functions are replaced by a tripwire: reaching one means the arguments were
accepted, which the test counts as success without running anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import (
    SPECIAL_STRINGS,
    any_text,
    assert_cli_contract,
    count,
    files_under,
    fuzz,
    invoke,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

GOOD_STUDY = (ROOT / "examples" / "quickstart-tiny.yaml").read_text()
WORKSPACE = {  # files every case can name (relative to the working directory)
    "good-study.yaml": GOOD_STUDY,
    "bad-study.yaml": GOOD_STUDY.replace("name: orpo", "name: orpoo"),
    "bad-run.yaml": (ROOT / "examples" / "run-dpo.yaml").read_text().replace("lr: 0.0005", "lr: -1"),
    "bad-spec.yaml": "algorithm: {name: dpo}\nmodel: {name: zoo/s1, path: /m}\n",
    "garbage.yaml": b"\x00\xff\xfe garbage",
    "empty.yaml": "",
    "results.csv": "algorithm,scale,domain,seed,metric,value\n"
    + "".join(f"{a},s1,arith,{k},accuracy,{0.1 * k + (a == 'b') / 3}\n" for a in "ab" for k in range(3)),
    "bad.csv": "algorithm,value\nx,1\n",
    "items.jsonl": '{"algorithm": "a"}\n',
    "a-file.txt": "not a directory",
}
DIRS = ["a-dir", "a-dir/nested"]
# Files that make a long command fail fast; never a valid study/run/scale.
BAD_FILES = ["bad-study.yaml", "bad-run.yaml", "bad-spec.yaml", "garbage.yaml", "empty.yaml",
             "missing.yaml", "a-dir", "results.csv", "a-file.txt", "", "-", "🤖.yaml"]
OPTIONS = ["--json", "--metric", "--alpha", "--margin", "--report", "--items", "--scale-order",
           "--n-boot", "--seed", "--family", "-f", "--check", "--out", "--parallel", "-j",
           "--fail-fast", "--mlflow-uri", "--no-mlflow", "--scales", "--quiet", "--namespace",
           "-n", "--peering", "--liveness", "-v", "--verbose", "--metrics-port", "--version",
           "--help", "--", "-", "--bogus", "-x", "--json=", "--alpha=nan"]
values = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    st.sampled_from([*BAD_FILES, "a-file.txt/x.json", "a-dir", "out/x.json", "good-study.yaml"]),
    st.integers().map(str),
    st.floats().map(repr),
    any_text,
)
tokens = st.one_of(st.sampled_from(OPTIONS), values)
bad_files = st.sampled_from(BAD_FILES)
bad_scales = st.one_of(st.sampled_from(["s5", "S1", "s1,s9", ",", " ", "s1 s2", "zoo/s1", "0.5B"]),
                       any_text.filter(lambda t: t.strip() not in ("s1", "s2", "s3", "s4")))


def opt(name: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """``[]`` or ``[name, value]``."""
    return st.one_of(st.just([]), value.map(lambda v: [name, v]))


def flag(name: str) -> st.SearchStrategy[list[str]]:
    return st.sampled_from([[], [name]])


def seq(*parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    """Concatenate the argv pieces drawn from ``parts``."""
    return st.tuples(*parts).map(lambda xs: [t for x in xs for t in x])


def fixed(*words: str) -> st.SearchStrategy[list[str]]:
    return st.just(list(words))


numbers = st.one_of(st.sampled_from(["0", "1", "2", "-1", "0.05", "1e9", "nan", "inf", "x", ""]),
                    st.integers().map(str))
files = st.one_of(bad_files, st.just("good-study.yaml"))
COMMANDS: dict[str, st.SearchStrategy[list[str]]] = {
    # safe commands: any arguments
    "root": st.sampled_from([[], ["--version"], ["--help"], ["nope"], ["-h"], ["--versio"]]),
    "validate": seq(fixed("validate"), st.lists(files.map(lambda f: [f]), max_size=4).map(
        lambda xs: [t for x in xs for t in x])),
    "analyze": seq(fixed("analyze"), st.sampled_from([["results.csv"], ["bad.csv"], []]).map(list),
                   opt("--metric", values), opt("--alpha", numbers), opt("--margin", numbers),
                   opt("--n-boot", st.sampled_from(["100", "99", "-3", "x", "1e3"])),
                   opt("--seed", numbers), opt("--scale-order", values),
                   opt("--items", values), opt("--json", values), opt("--report", values)),
    "algorithms": st.one_of(
        seq(fixed("algorithms", "list"), opt("--family", values), flag("--json")),
        seq(fixed("algorithms", "show"), st.one_of(
            st.sampled_from(["dpo", "simpo", "grpo", "ipo", "dpoo", "DPO"]), values).map(lambda v: [v])),
        fixed("algorithms"),
    ),
    "generate": seq(st.sampled_from([["crds", "generate"], ["docs", "generate"]]),
                    fixed("--check"), opt("--out", values)),
    "plan": seq(fixed("study", "plan"), files.map(lambda f: [f]), flag("--json")),
    "zoo list": fixed("zoo", "list"),
    "report/sync": seq(st.sampled_from([["study", "report"], ["study", "sync"]]),
                       st.sampled_from(["a-dir", ".", "missing", "a-file.txt", ""]).map(lambda v: [v]),
                       opt("--mlflow-uri", values)),
    # long commands: arguments that fail before any work
    "study run": seq(fixed("study", "run"), bad_files.map(lambda f: [f]),
                     opt("--out", values), opt("-j", numbers), flag("--fail-fast"),
                     opt("--mlflow-uri", values), flag("--no-mlflow")),
    "train": seq(fixed("train"), bad_files.map(lambda f: [f]), opt("--out", values),
                 opt("--metrics-port", numbers)),
    "zoo build": seq(fixed("zoo", "build"), bad_scales.map(lambda s: ["--scales", s]),
                     flag("--quiet")),
    "zoo path": seq(fixed("zoo", "path"), bad_scales.map(lambda s: [s])),
    "operator": seq(fixed("operator"), st.sampled_from([["--bogus"], ["-n"], ["--peering", "x"],
                                                        ["--liveness"], ["--namespace"]]),
                    opt("--liveness", values), flag("-v")),
}


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """A command's argv with 0-3 random tokens inserted anywhere after the command words."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(draw(COMMANDS[name]))
    words = len(name.split()) if name not in ("root", "generate", "report/sync") else 0
    for _ in range(draw(st.integers(0, 3))):
        # keep the failing argument of a long command: insert after it
        low = len(argv) if name in ("operator", "zoo build", "zoo path", "study run", "train") \
            else words
        argv.insert(draw(st.integers(low, len(argv))), draw(tokens))
    return argv


class Tripwire(BaseException):
    """Raised instead of long work (not an Exception, so the CLI boundary does not catch it)."""


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with the WORKSPACE files, and tripwires on the long commands."""
    import ptlab.cli.study
    import ptlab.operator.__main__
    import ptlab.trainer.run
    import ptlab.trainer.zoo

    for name, text in WORKSPACE.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    for name in DIRS:
        (tmp_path / name).mkdir()

    def tripwire(*args: Any, **kwargs: Any) -> None:
        raise Tripwire

    monkeypatch.setattr(ptlab.cli.study, "run_study", tripwire)
    monkeypatch.setattr(ptlab.trainer.run, "train", tripwire)
    monkeypatch.setattr(ptlab.trainer.zoo, "ensure_model", tripwire)
    monkeypatch.setattr(ptlab.operator.__main__, "run", tripwire)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _reset(root: Path, keep: set[Path]) -> None:
    """Remove everything under ``root`` that a successful case wrote."""
    for path in sorted(files_under(root) - keep, key=lambda p: len(p.parts), reverse=True):
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()


@fuzz
@given(argv=argvs())
def test_cli_arguments_give_success_or_one_line_error(workspace: Path, argv: list[str]) -> None:
    before = files_under(workspace)
    try:
        result = invoke(argv)
    except Tripwire:
        count(f"accepted (long work not started): {argv}")
        _reset(workspace, before)
        return
    try:
        assert_cli_contract(result, lines=None if argv[:1] == ["validate"] else 1)
        if result.code != 0:
            new = sorted(str(p.relative_to(workspace)) for p in files_under(workspace) - before)
            assert not new, f"failed command left files behind: {new} ({argv})"
    except AssertionError as err:
        raise AssertionError(f"argv={argv}: {err}") from None
    finally:
        _reset(workspace, before)
    count(f"exit {result.code}")


def test_tripwire_guards_every_long_command(workspace: Path) -> None:
    """With valid arguments each long command reaches its tripwire (so the fuzz cases above
    that fail do so on their arguments, not by accident), and bad ones fail with exit 2."""
    (workspace / "run.yaml").write_text((ROOT / "examples" / "run-dpo.yaml").read_text())
    for argv in (["study", "run", "good-study.yaml"], ["train", "run.yaml", "--out", "o"],
                 ["zoo", "build", "--scales", "s1"], ["zoo", "path", "s2"], ["operator"]):
        with pytest.raises(Tripwire):
            invoke(argv)
    for argv, text in ((["study", "run", "bad-study.yaml"], "unknown algorithm 'orpoo'"),
                       (["train", "bad-run.yaml"], "spec.training.lr"),
                       (["zoo", "build", "--scales", "s9"], "--scales: unknown scale"),
                       (["operator", "--bogus"], "No such option"),
                       (["analyze", "results.csv", "--n-boot", "x"], "--n-boot")):
        result = invoke(argv)
        assert result.code == 2 and text in result.err, (argv, result)
    assert os.listdir(workspace / "a-dir") == ["nested"]
