"""Fuzzing the results table of `ptlab analyze` (read_results → analyze → JSON / report).

Valid tables with one cell, column or row damaged, byte-level corruption and raw garbage
must end in an analysis or one `error: ...` line with exit 2 — and a failed command must
leave no file behind in the --json / --report locations.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptlab.analysis import analyze, read_results
from ptlab.analysis.engine import JSON_KEYS
from ptlab.errors import UserError
from tests.fuzz.support import (
    BIG_NUMBERS,
    SPECIAL_STRINGS,
    any_text,
    assert_cli_contract,
    assert_user_error,
    corrupted,
    count,
    files_under,
    fuzz,
    invoke,
    no_new_files_on_failure,
    raw_garbage,
)

pytestmark = pytest.mark.slow
COLUMNS = ["study", "run", "algorithm", "params_hash", "scale", "domain", "seed", "metric",
           "value", "n_items", "train_tokens", "flops", "wall_s"]
N_BOOT = 100  # the smallest accepted: keeps a successful case at ~0.1 s


@st.composite
def tables(draw: st.DrawFn) -> list[list[str]]:
    """A valid results table (header + rows of strings): 2-3 algorithms × 1-3 scales ×
    1-2 domains × 1-3 seeds, sometimes with a second metric or without optional columns."""
    algos = draw(st.sampled_from([["dpo", "sft"], ["dpo", "kto", "simpo"], ["a", "b"]]))
    scales = draw(st.sampled_from([["s1"], ["0.5B", "7B"], ["s1", "s2", "s3"], ["125M", "1B"]]))
    domains = draw(st.sampled_from([["arith"], ["arith", "general"]]))
    seeds = draw(st.integers(1, 3))
    metrics = draw(st.sampled_from([["accuracy"], ["accuracy", "pass@4"]]))
    columns = COLUMNS if draw(st.booleans()) else ["algorithm", "scale", "domain", "seed",
                                                    "metric", "value"]
    rows = []
    for a in algos:
        for s in scales:
            for d in domains:
                for k in range(seeds):
                    for m in metrics:
                        value = draw(st.floats(0, 1, allow_nan=False, width=32))
                        full = {"study": "fz", "run": f"{a}-{s}-{d}-{k}", "algorithm": a,
                                "params_hash": "abc123", "scale": s, "domain": d, "seed": str(k),
                                "metric": m, "value": repr(value), "n_items": "100",
                                "train_tokens": "4096", "flops": "1.5e12", "wall_s": "3.2"}
                        rows.append([full[c] for c in columns])
    return [columns, *rows]


cell_values = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    st.sampled_from([repr(b) for b in BIG_NUMBERS]),
    st.floats().map(repr),
    st.integers().map(str),
    any_text,
)


@st.composite
def damaged(draw: st.DrawFn, table: list[list[str]]) -> list[list[str]]:
    """``table`` with one change: a cell, a header name, a dropped column, a duplicated,
    dropped or ragged row, or all rows removed."""
    header, rows = list(table[0]), [list(r) for r in table[1:]]
    if not header or not rows:
        return [header, [draw(cell_values)]]
    how = draw(st.sampled_from(["cell", "cell", "cell", "header", "drop-column", "dup-row",
                                "drop-rows", "ragged", "empty"]))
    col = draw(st.integers(0, len(header) - 1))
    row = draw(st.integers(0, len(rows) - 1))
    if how == "cell":
        rows[row][col] = draw(cell_values)
    elif how == "header":
        header[col] = draw(st.one_of(cell_values, st.sampled_from(COLUMNS)))
    elif how == "drop-column":
        header.pop(col)
        rows = [r[:col] + r[col + 1 :] for r in rows]
    elif how == "dup-row":
        rows.insert(row, list(rows[row]))
    elif how == "drop-rows":
        rows = rows[: draw(st.integers(0, len(rows)))]
    elif how == "ragged":
        rows[row] = rows[row] + [draw(cell_values)] * draw(st.integers(1, 3))
    else:
        rows = []
    return [header, *rows]


def to_csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """Structured-but-wrong tables (and some valid ones), corrupted bytes, or garbage."""
    how = draw(st.sampled_from(["damaged", "damaged", "damaged", "valid", "bytes", "garbage",
                                "delimiter"]))
    table = draw(tables())
    if how == "damaged":
        for _ in range(draw(st.integers(1, 2))):
            table = draw(damaged(table))
        return to_csv(table)
    if how == "valid":
        return to_csv(table)
    if how == "bytes":
        return draw(corrupted(to_csv(table)))
    if how == "delimiter":
        return to_csv(table, draw(st.sampled_from([";", "\t", "|", " "])))
    return draw(raw_garbage)


def check_analysis(path: Path, metric: str | None) -> dict[str, Any] | None:
    """read_results + analyze: an AnalysisResult with strict-JSON output, or a UserError."""
    try:
        result = analyze(read_results(path), metric=metric, n_boot=N_BOOT, seed=0)
    except UserError as err:
        assert_user_error(err)
        count("rejected")
        return None
    count("analysed")
    doc = result.to_json()
    assert tuple(doc) == JSON_KEYS
    json.dumps(doc, allow_nan=False)  # the stable document is strict JSON (no NaN/inf)
    assert {r["scale"] for r in doc["recommendations"]} <= set(result.scales)
    return doc


@fuzz
@given(data=csv_files(), metric=st.sampled_from([None, "accuracy", "pass@4", "bogus"]))
def test_results_tables_analyse_or_fail_with_one_line(
    tmp_path: Path, data: bytes, metric: str | None
) -> None:
    path = tmp_path / "results.csv"
    path.write_bytes(data)
    check_analysis(path, metric)


options = st.fixed_dictionaries(
    {},
    optional={
        "--metric": st.sampled_from(["accuracy", "pass@4", "", "nope", "🤖"]),
        "--alpha": st.sampled_from(["0.05", "0.1", "0", "0.5", "-1", "nan", "inf", "x", "1e-300"]),
        "--margin": st.sampled_from(["0", "0.02", "-0.1", "nan", "inf", "1e308", "abc"]),
        "--n-boot": st.sampled_from([str(N_BOOT), "150", "99", "0", "-5", "1e3", "x"]),
        "--seed": st.sampled_from(["0", "7", "-1", "2**70", "99999999999999999999999"]),
        "--scale-order": st.sampled_from(["s1,s2,s3", "7B,0.5B", "", ",,", "s1", "1B,125M,x"]),
    },
)


@fuzz
@given(data=csv_files(), opts=options, pick=st.integers(0, 19))
def test_analyze_cli_one_line_error_and_no_partial_files(
    tmp_path: Path, data: bytes, opts: dict[str, str], pick: int
) -> None:
    """`ptlab analyze CSV --json OUT/a.json [--report OUT/report]`: exit 0 or 2 with one
    error line; on failure OUT holds nothing new. The report is requested for every table
    the analysis rejects, and for 1 accepted table in 20 (a report takes ~1.5 s)."""
    case = tmp_path / "case"
    case.mkdir(exist_ok=True)
    for old in sorted(files_under(case), reverse=True):
        old.unlink() if old.is_file() else old.rmdir()
    csv_path = case / "results.csv"
    csv_path.write_bytes(data)
    out = case / "out"
    argv = ["analyze", str(csv_path), "--json", str(out / "a.json")]
    argv += [x for kv in opts.items() for x in kv]
    if "--n-boot" not in opts:
        argv += ["--n-boot", str(N_BOOT)]
    try:
        analyze(read_results(csv_path), metric=opts.get("--metric"), n_boot=N_BOOT)
        report = pick == 0
    except UserError:
        report = True
    if report:
        argv += ["--report", str(out / "report")]
    with no_new_files_on_failure(case) as done:
        result = invoke(argv)
        assert_cli_contract(result)
        done(result.code == 0)
    count("exit 0" if result.code == 0 else "exit 2")
    if result.code == 0:
        doc = json.loads((out / "a.json").read_text())
        assert tuple(doc) == JSON_KEYS
        if report:
            assert (out / "report" / "report.html").is_file()
