"""`ptlab analyze` from the command line: JSON, report.html with embedded PNGs, exit codes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ptlab.analysis.simulate import Design, designed_effect, simulate_study
from ptlab.cli.main import main

PTLAB = Path(sys.executable).with_name("ptlab")


def _write_study(tmp_path: Path) -> tuple[Path, Path]:
    d = Design(n_seeds=3, n_items=20)
    study = simulate_study(d, effect=designed_effect(d), planted=True, seed=4)
    csv = tmp_path / "results.csv"
    study.table.to_csv(csv, index=False)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in study.items.to_dict("records")))
    return csv, items


@pytest.mark.slow
def test_cli_end_to_end_writes_json_report_and_pngs(tmp_path: Path) -> None:
    csv, items = _write_study(tmp_path)
    out, report = tmp_path / "a.json", tmp_path / "report"
    proc = subprocess.run(
        [str(PTLAB), "analyze", str(csv), "--items", str(items), "--json", str(out),
         "--report", str(report), "--n-boot", "400", "--scale-order", "0.5B,1.5B,7B"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "significant inversion" in proc.stdout and "Recommendations" in proc.stdout
    js = json.loads(out.read_text())
    assert {(i["domain"], i["a"], i["b"], i["scale_a"], i["scale_b"])
            for i in js["inversions"] if i["significant"]} == {("math", "alpha", "beta", "0.5B", "7B")}
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs == sorted(
        ["bump_chat.png", "bump_math.png", "heatmap_chat.png", "heatmap_math.png",
         "inversions.png"] + [f"forest_{s}_{d}.png" for s in ("0.5B", "1.5B", "7B")
                              for d in ("chat", "math")])
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    first = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src=\"http" not in page and "<script" not in page  # self-contained


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return int(done.value.code), capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("algorithm,scale,domain,metric,value\nx,1B,d,m,1\n", "missing column(s) 'seed'"),
        ("algorithm,scale,domain,seed,metric,value\nx,1B,d,0,m,1\ny,1B,d,0,m,abc\n",
         "non-numeric entry 'abc'"),
        ("algorithm,scale,domain,seed,metric,value\nx,1B,d,0,m,1\nx,1B,d,1,m,2\n",
         "only one algorithm ('x')"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, content, message) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text(content)
    code, err = _run(["analyze", str(csv)], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_missing_file_and_bad_alpha(tmp_path: Path, capsys) -> None:
    code, err = _run(["analyze", str(tmp_path / "nope.csv")], capsys)
    assert code == 2 and "does not exist" in err
    csv = tmp_path / "r.csv"
    pd.DataFrame({"algorithm": ["x", "y"] * 2, "scale": "1B", "domain": "d", "seed": [0, 0, 1, 1],
                  "metric": "m", "value": [1.0, 2.0, 1.5, 2.5]}).to_csv(csv, index=False)
    code, err = _run(["analyze", str(csv), "--alpha", "1.5"], capsys)
    assert code == 2 and "alpha=1.5 is out of range" in err
