"""`ptlab algorithms list|show` through the real console entry point (exit codes included)."""

from __future__ import annotations

import json

import pytest

from ptlab.cli.main import main

OFFLINE = {"sft", "distill", "reward-model", "paired-offline", "unpaired-offline", "reference-free"}


def run(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_list_json_has_fifty_distinct_offline_entries(capsys):
    code, out, _ = run(capsys, "algorithms", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    offline = [r for r in rows if r["family"] in OFFLINE]
    names = [r["name"] for r in offline]
    assert len(names) == len(set(names)) >= 50
    aliases = {a for r in rows for a in r["aliases"]}
    assert not aliases & {r["name"] for r in rows}
    dpo = next(r for r in rows if r["name"] == "dpo")
    assert set(dpo) >= {
        "name",
        "aliases",
        "family",
        "needs_reference",
        "needs_rollouts",
        "params",
        "citation",
    }
    assert dpo["params"]["beta"] == {"default": 0.1, "min": 0, "max": None}
    assert "sigmoid" in dpo["aliases"] and dpo["needs_reference"] is True


def test_list_family_filter(capsys):
    code, out, _ = run(capsys, "algorithms", "list", "--family", "unpaired-offline", "--json")
    assert code == 0
    assert sorted(r["name"] for r in json.loads(out)) == ["apo_unpaired", "bco", "kto"]


def test_list_unknown_family_is_a_user_error(capsys):
    code, _, err = run(capsys, "algorithms", "list", "--family", "paired")
    assert code == 2 and "paired-offline" in err and err.count("\n") == 1


def test_show_prints_formula_params_and_citation(capsys):
    code, out, _ = run(capsys, "algorithms", "show", "slic")
    assert code == 0
    assert out.startswith("hinge (via alias slic)")
    assert "max(0, 1 − βΔ)" in out
    assert "beta = 0.1  (0, inf]" in out
    assert "arXiv:2305.10425" in out


def test_show_unknown_name_suggests(capsys):
    code, _, err = run(capsys, "algorithms", "show", "simpoo")
    assert code == 2
    assert "did you mean simpo" in err
