"""One fast case per bug the fuzz suites found (each used to end in a traceback, an
"internal error" exit 1, a multi-line message or a leftover file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ptlab.analysis import analyze, read_results
from ptlab.api.load import load_study, validate_file
from ptlab.errors import UserError
from ptlab.trainer.data import load_items, load_pairs
from tests.fuzz.support import assert_cli_contract, files_under, invoke

TWO = "algorithm,scale,domain,seed,metric,value\ndpo,s1,arith,0,accuracy,0.5\n" \
      "sft,s1,arith,0,accuracy,0.25\n"


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(("data", "text"), [
    (b"[" * 1500, "nest"),  # libyaml: "exceeded maximum nesting depth"; PyYAML: recursion
    (b"apiVersion: ptlab.io/v1alpha1\nkind: [ComparisonStudy]\n", "is not a ptlab kind"),
])
def test_spec_files_that_crashed_the_loader(tmp_path: Path, data: bytes, text: str) -> None:
    path = _write(tmp_path, "s.yaml", data)
    with pytest.raises(UserError, match="^" + str(path)) as err:
        load_study(path)
    assert text in str(err.value)
    result = invoke(["validate", str(path)])
    assert result.code == 2 and text in result.err


def test_a_newline_in_a_field_name_stays_on_one_line(tmp_path: Path) -> None:
    doc = {"apiVersion": "ptlab.io/v1alpha1", "kind": "ComparisonStudy",
           "metadata": {"name": "x"}, "spec": {"a\n\n  b": 1}}
    path = _write(tmp_path, "s.yaml", yaml.safe_dump(doc))
    (problem,) = [p for o in validate_file(path) for p in o.problems if "unknown" in p.message]
    assert problem.path == "spec['a\\n\\n  b']" and "\n" not in str(problem)
    assert_cli_contract(invoke(["validate", str(path)]), lines=None)


def test_user_error_escapes_line_breaks() -> None:
    assert str(UserError("bad 'x\ny'", "fix\u2028it")) == "bad 'x\\ny' (fix\\u2028it)"


@pytest.mark.parametrize(("argv", "text"), [
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["analyze", "x.csv", "--n-boot", "x"], "Invalid value for '--n-boot'"),
    (["analyze"], "Missing argument"),
    (["algorithms"], "a command is missing"),
    (["crds", "generate", "--check", "--out", "é" * 300], "File name too long"),
])
def test_usage_errors_exit_2_with_one_line(argv: list[str], text: str) -> None:
    result = invoke(argv)
    assert_cli_contract(result)
    assert result.code == 2 and text in result.err, result


@pytest.mark.parametrize(("csv", "opts", "text"), [
    ("algorithm,scale,domain,seed,metric,value\ndpo,s1,arith,0,accuracy,0\n"
     "sft,s2,arith,0,accuracy,1\n", [], "no scale/domain cell has 'accuracy' results"),
    (TWO.replace("0.5\n", "0.5,,\n"), [], "more fields than its header"),
    (TWO, ["--seed", "-1"], "seed=-1 must be ≥ 0"),
    (TWO, ["--json", "a-dir"], "exists and is not a file"),
    (TWO, ["--report", "results.csv"], "exists and is not a directory"),
    (TWO, ["--json", "results.csv/a.json"], "is a file, not a directory"),
])
def test_analyze_failures_are_one_line_and_leave_no_files(
    tmp_path: Path, csv: str, opts: list[str], text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "results.csv", csv)
    (tmp_path / "a-dir").mkdir()
    before = files_under(tmp_path)
    result = invoke(["analyze", "results.csv", "--n-boot", "100", *opts,
                     *([] if opts[:1] == ["--json"] else ["--json", "out/a.json"]),
                     *([] if opts[:1] == ["--report"] else ["--report", "out/report"])])
    assert_cli_contract(result)
    assert result.code == 2 and text in result.err, result
    assert files_under(tmp_path) == before


def test_report_skips_a_domain_without_an_analysed_cell(tmp_path: Path) -> None:
    """Domain ' ' has one algorithm only: the report draws arith alone, without warnings."""
    csv = _write(tmp_path, "r.csv", TWO + "dpo,s1, ,1,accuracy,0.1\n")
    result = invoke(["analyze", str(csv), "--n-boot", "100", "--report", str(tmp_path / "rep")])
    assert_cli_contract(result)
    assert sorted(p.name for p in (tmp_path / "rep").glob("*.png")) == [
        "bump_arith.png", "forest_s1_arith.png", "heatmap_arith.png", "inversions.png"]


def test_report_labels_the_font_cannot_draw_give_no_warning(tmp_path: Path) -> None:
    csv = _write(tmp_path, "r.csv", TWO.replace("dpo", "\x1f"))
    result = invoke(["analyze", str(csv), "--n-boot", "100", "--report", str(tmp_path / "rep")])
    assert_cli_contract(result)
    assert result.code == 0 and (tmp_path / "rep" / "report.html").is_file()
    table = analyze(read_results(csv), n_boot=100)
    assert table.recommendations[0]["best"] == ["\x1f", "sft"]


@pytest.mark.parametrize(("data", "text"), [
    (b'{"question": "q", "answer": "\xff #### 1"}\n', "not UTF-8 text"),
    (b"[" * 5000 + b"\n", "JSON nested too deeply"),
    (b'{"question": "q", "choices": null, "answerKey": "A"}\n',
     "field 'choices' must be dict or list, got NoneType"),
])
def test_dataset_rows_that_crashed_the_adapter(tmp_path: Path, data: bytes, text: str) -> None:
    path = _write(tmp_path, "d.jsonl", data)
    fmt = "mc" if b"choices" in data else "gsm8k"
    with pytest.raises(UserError) as err:
        load_items(str(path), fmt)
    assert str(err.value).startswith(f"{path}:1: ") and text in str(err.value)
    with pytest.raises(UserError, match=r"not UTF-8|nested|expected a JSON object|missing"):
        load_pairs(str(path))


def test_valid_chat_pairs_still_load(tmp_path: Path) -> None:
    row = {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
           "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}
    path = _write(tmp_path, "p.jsonl", json.dumps(row) + "\r\n")
    (pair,) = load_pairs(str(path))
    assert (pair.prompt, pair.chosen, pair.rejected) == ("q", "a", "b")
