"""Input contract: scale ordering, validation errors (one line, naming the problem), NaNs."""

from __future__ import annotations

import pandas as pd
import pytest

from ptlab.analysis.table import order_scales, prepare, scale_key
from ptlab.errors import UserError


def _table(n_algos: int = 2, seeds: int = 3) -> pd.DataFrame:
    rows = [{"algorithm": f"a{k}", "scale": sc, "domain": "math", "seed": s, "metric": "acc",
             "value": 0.5 + 0.01 * k + 0.001 * s}
            for k in range(n_algos) for sc in ("7B", "0.5B") for s in range(seeds)]
    return pd.DataFrame(rows)


def test_scales_sort_by_numeric_parse() -> None:
    names = ["7B", "70B", "1.5B", "125M", "0.5B", "s10", "s2"]
    assert sorted(["7B", "70B", "1.5B", "0.5B", "125M"], key=scale_key) == [
        "125M", "0.5B", "1.5B", "7B", "70B"]
    assert sorted(["s10", "s2", "s1"], key=scale_key) == ["s1", "s2", "s10"]
    assert sorted(["big", "small", "3B"], key=scale_key) == ["3B", "big", "small"]
    assert order_scales(names, None)[:2] == ("s2", "s10")  # 2 and 10 as plain numbers


def test_explicit_scale_order_wins_and_must_cover_all() -> None:
    assert order_scales(["b", "a"], ["b", "a", "unused"]) == ("b", "a")
    with pytest.raises(UserError, match=r"does not list scale.*'a'"):
        order_scales(["b", "a"], ["b"])


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda t: t.drop(columns=["seed"]), "missing column.*'seed'"),
        (lambda t: t.assign(value=t["value"].astype(object).where(t.index != 3, "oops")),
         "non-numeric entry 'oops' \\(row 3\\)"),
        (lambda t: t[t["algorithm"] == "a0"], "only one algorithm \\('a0'\\)"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "duplicate rows"),
        (lambda t: pd.concat([t, t.assign(metric="loss")]), "several metrics \\(acc, loss\\)"),
        (lambda t: t.iloc[:0], "no rows"),
    ],
)
def test_bad_input_is_one_line_user_error(mutate, pattern) -> None:
    with pytest.raises(UserError, match=pattern) as err:
        prepare(mutate(_table()))
    assert "\n" not in str(err.value)


def test_unknown_metric_lists_available() -> None:
    with pytest.raises(UserError, match=r"metric 'f1' is not in the table.*found: acc"):
        prepare(_table(), metric="f1")


def test_nans_are_dropped_and_counted() -> None:
    t = _table()
    t.loc[[0, 4], "value"] = float("nan")
    t.loc[5, "value"] = None
    prep = prepare(t)
    assert prep.nan_dropped == 3
    assert prep.notes[0] == "3 NaN value row(s) dropped"
    assert sum(sum(y.shape[0] for y in c.scores) for c in prep.cells) == len(t) - 3
    assert prep.scales == ("0.5B", "7B")


def test_items_build_shared_item_matrices() -> None:
    t = _table(seeds=2)
    items = pd.DataFrame(
        [{"algorithm": r.algorithm, "scale": r.scale, "domain": r.domain, "seed": r.seed,
          "item_id": q, "score": float(q == "q1")} for r in t.itertuples()
         for q in ("q1", "q2", "q3") if not (q == "q3" and r.seed == 1 and r.algorithm == "a1")]
    )
    prep = prepare(t, items=items)
    cell = prep.cells[0]
    assert cell.n_items == 2  # q3 is missing for one (algorithm, seed) → left out
    assert cell.paired_seeds
    assert cell.scores[0].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert any("1 item(s) not scored" in n for n in prep.notes)
