"""`analyze` end to end on small tables with known answers, JSON contract, reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ptlab.analysis import JSON_KEYS, analyze
from ptlab.analysis.simulate import Design, designed_effect, simulate_study

ROW_KEYS = {
    "rankings": {"scale", "domain", "algorithms"},
    "comparisons": {"scale", "domain", "a", "b", "diff", "ci_low", "ci_high", "p_value",
                    "p_adjusted", "significant", "equivalent"},
    "rank_correlations": {"domain", "scale_a", "scale_b", "kendall_tau", "ci_low", "ci_high"},
    "inversions": {"domain", "a", "b", "scale_a", "scale_b", "significant"},
    "recommendations": {"scale", "domain", "best", "p_best", "min_detectable_effect"},
}


def _study(n_seeds: int = 5, n_items: int = 0, planted: bool = True, seed: int = 11):
    d = Design(n_seeds=n_seeds, n_items=n_items)
    return simulate_study(d, effect=designed_effect(Design()), planted=planted, seed=seed)


def test_json_has_exactly_the_stable_keys() -> None:
    js = analyze(_study().table, n_boot=300).to_json()
    assert tuple(js) == JSON_KEYS
    for key, rows in js.items():
        assert rows, key
        for row in rows:
            assert set(row) == ROW_KEYS[key], key
    for algo in js["rankings"][0]["algorithms"]:
        assert set(algo) == {"algorithm", "mean", "ci_low", "ci_high", "n", "rank", "p_best"}
    json.dumps(js, allow_nan=False)


def test_seeded_reproducibility() -> None:
    table = _study(n_seeds=3, n_items=20).table
    items = _study(n_seeds=3, n_items=20).items
    a = analyze(table, items=items, n_boot=300, seed=5).to_json()
    b = analyze(table, items=items, n_boot=300, seed=5).to_json()
    c = analyze(table, items=items, n_boot=300, seed=6).to_json()
    assert a == b
    assert a["rankings"] != c["rankings"]  # bootstrap CIs move with the seed
    assert a["comparisons"] == c["comparisons"]  # t tests do not use the bootstrap


def test_two_algorithm_cell_matches_paired_t_test_and_ranks() -> None:
    x = [0.70, 0.72, 0.69, 0.74]
    y = [0.60, 0.65, 0.61, 0.62]
    rows = [{"algorithm": n, "scale": "1B", "domain": "d", "seed": s, "metric": "m", "value": v}
            for n, vals in (("x", x), ("y", y)) for s, v in enumerate(vals)]
    res = analyze(pd.DataFrame(rows), n_boot=2000, margin=0.01).to_json()
    comp = res["comparisons"][0]
    ref = sps.ttest_rel(x, y)
    assert comp["diff"] == pytest.approx(np.mean(x) - np.mean(y))
    assert comp["p_value"] == pytest.approx(ref.pvalue) == comp["p_adjusted"]
    assert comp["significant"] and not comp["equivalent"]
    ranking = res["rankings"][0]["algorithms"]
    assert [(r["algorithm"], r["rank"], r["n"]) for r in ranking] == [("x", 1, 4), ("y", 2, 4)]
    assert ranking[0]["p_best"] == 1.0
    assert res["recommendations"][0]["best"] == ["x"]
    ci = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    assert ranking[0]["ci_low"] == pytest.approx(ci.low, abs=0.01)
    assert ranking[0]["ci_high"] == pytest.approx(ci.high, abs=0.01)


def test_one_seed_never_claims_significance() -> None:
    study = _study(n_seeds=1, n_items=30)
    for items in (None, study.items):
        js = analyze(study.table, items=items, n_boot=200).to_json()
        assert not any(c["significant"] for c in js["comparisons"])
        assert all(c["p_value"] is None for c in js["comparisons"])
        assert not any(i["significant"] for i in js["inversions"])
        for rec in js["recommendations"]:
            assert sorted(rec["best"]) == ["alpha", "beta", "gamma"]
            assert rec["p_best"] is None and rec["min_detectable_effect"] is None


def test_planted_inversion_found_and_flips_not_called_significant() -> None:
    study = _study(n_seeds=5, planted=True)
    js = analyze(study.table, n_boot=500).to_json()
    sig = {(i["domain"], i["a"], i["b"], i["scale_a"], i["scale_b"])
           for i in js["inversions"] if i["significant"]}
    assert set(study.planted) == sig
    # every reported flip really has opposite signs; significant ones are significant twice
    comp = {(c["domain"], c["scale"], c["a"], c["b"]): c for c in js["comparisons"]}
    for inv in js["inversions"]:
        ca = comp[(inv["domain"], inv["scale_a"], inv["a"], inv["b"])]
        cb = comp[(inv["domain"], inv["scale_b"], inv["a"], inv["b"])]
        assert ca["diff"] * cb["diff"] < 0
        assert inv["significant"] == (ca["significant"] and cb["significant"])


def test_rank_correlation_point_value_is_scipy_tau_b() -> None:
    res = analyze(_study().table, n_boot=300)
    means = {(r["scale"], r["domain"]): {a["algorithm"]: a["mean"] for a in r["algorithms"]}
             for r in res.rankings}
    for rc in res.rank_correlations:
        a, b = means[(rc["scale_a"], rc["domain"])], means[(rc["scale_b"], rc["domain"])]
        names = sorted(a)
        want = sps.kendalltau([a[n] for n in names], [b[n] for n in names]).statistic
        assert rc["kendall_tau"] == pytest.approx(want)
        assert rc["ci_low"] <= rc["kendall_tau"] + 1e-12 and rc["ci_high"] >= -1


def test_ties_where_not_separable() -> None:
    # alpha and beta have identical truth at the middle scale: they must share rank there
    # unless the data separate them (they do not at this seed), and p_best of the set is summed.
    js = analyze(_study(planted=False).table, n_boot=500).to_json()
    for ranking, rec in zip(js["rankings"], js["recommendations"], strict=True):
        ranks = {a["algorithm"]: a["rank"] for a in ranking["algorithms"]}
        assert ranks["gamma"] == 1 and ranks["alpha"] == ranks["beta"] == 2
        assert rec["best"] == ["gamma"]
