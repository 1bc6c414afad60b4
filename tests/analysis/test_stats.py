"""Pure statistics: golden values derived by hand, and agreement with scipy / statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from ptlab.analysis.bootstrap import calibrate, multinomial_counts, prob_best
from ptlab.analysis.stats import (
    crossed_mean_var,
    holm,
    kendall_tau_b,
    min_detectable_effect,
    t_test,
    tost_equivalent,
    welch_combine,
)


def test_holm_golden_values() -> None:
    # p sorted = .01, .02, .03, .04 (m = 4): 4·.01 = .04, 3·.02 = .06, 2·.03 = .06, 1·.04 = .04
    # → running max: .04, .06, .06, .06 (Holm 1979); NaN is ignored and stays NaN.
    got = holm(np.array([0.03, np.nan, 0.01, 0.04, 0.02]))
    np.testing.assert_allclose(got, [0.06, np.nan, 0.04, 0.06, 0.06])


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 13):
        p = rng.uniform(0, 0.2, m) ** 2
        p[0] = p[-1]  # a tie
        want = multitest.multipletests(p, method="holm")[1]
        np.testing.assert_allclose(holm(p), want, rtol=0, atol=1e-15)


def test_kendall_tau_b_matches_scipy_with_ties_and_batches() -> None:
    cases = [([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), ([1, 1, 2, 3], [4, 3, 3, 1]),
             ([0.1, 0.4, 0.3], [3, 2, 1]), ([1, 2], [2, 1])]
    for x, y in cases:
        assert kendall_tau_b(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)
    x = np.random.default_rng(0).normal(size=(50, 6)).round(1)
    y = np.random.default_rng(1).normal(size=(50, 6)).round(1)
    want = [sps.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(kendall_tau_b(x, y), want, atol=1e-12)
    assert np.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_seed_only_variance_is_textbook_s2_over_n() -> None:
    # values 1, 2, 3, 6: mean 3, s² = (4 + 1 + 0 + 9)/3 = 14/3, var of mean = 14/12, df = 3
    mv = crossed_mean_var(np.array([[1.0], [2.0], [3.0], [6.0]]))
    assert (mv.mean, mv.var, mv.df) == (3.0, pytest.approx(14 / 12), 3.0)


def test_one_seed_has_no_variance_even_with_items() -> None:
    assert not crossed_mean_var(np.array([[0.1, 0.5, 0.9]])).testable
    assert not crossed_mean_var(np.array([[0.7]])).testable


def test_crossed_variance_golden_value() -> None:
    # y = [[1, 2, 6], [3, 5, 7]]: mean 4; row means 3, 5 → MS_seed = 3·2 = 6;
    # col means 2, 3.5, 6.5 → var 5.25 → MS_item = 2·5.25 = 10.5; residuals ±0.5, ±0.5, 0
    # → SS 1.0 over (1·2) df → MS_resid 0.5. Var̂ = (6 + 10.5 − 0.5)/6 = 16/6.
    # The seed term (6) is < half of 16 → Satterthwaite df = 16²/(36/1 + 110.25/2 + 0.25/2).
    mv = crossed_mean_var(np.array([[1.0, 2.0, 6.0], [3.0, 5.0, 7.0]]))
    assert mv.mean == 4.0
    assert mv.var == pytest.approx(16 / 6)
    assert mv.df == pytest.approx(256 / (36 + 55.125 + 0.125))


def test_paired_t_matches_scipy_ttest_rel() -> None:
    a = np.array([0.61, 0.58, 0.66, 0.63, 0.60])
    b = np.array([0.55, 0.57, 0.60, 0.58, 0.59])
    d = crossed_mean_var((a - b)[:, None])
    res = t_test(d.mean, d.var, d.df, alpha=0.05)
    ref = sps.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (res.ci_low, res.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_welch_matches_scipy() -> None:
    a = np.array([0.61, 0.58, 0.66, 0.63, 0.60, 0.70])
    b = np.array([0.55, 0.57, 0.60])
    d = welch_combine(crossed_mean_var(a[:, None]), crossed_mean_var(b[:, None]))
    res = t_test(d.mean, d.var, d.df, 0.05)
    assert res.p_value == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-10)


def test_tost_golden() -> None:
    # d = 0.01, se = 0.01, df = 10: t_{.95,10} = 1.8125 → 90% CI (-0.0081, 0.0281)
    d = (0.01, 0.01**2, 10.0)
    assert tost_equivalent(*d, margin=0.03, alpha=0.05)
    assert not tost_equivalent(*d, margin=0.028, alpha=0.05)
    assert not tost_equivalent(*d, margin=0.0, alpha=0.05)
    # vectorised: one row per test, NaN variance → never equivalent
    got = tost_equivalent([0.01, 0.0], [1e-4, np.nan], [10.0, 3.0], margin=0.03, alpha=0.05)
    assert got.tolist() == [True, False]


def test_mde_golden() -> None:
    # se 0.01, df 9, α .05, power .8: (t_.975,9 = 2.2622 + t_.8,9 = 0.8834)·0.01
    assert min_detectable_effect(0.01, 9, 0.05) == pytest.approx(0.031456, abs=1e-5)
    assert np.isnan(min_detectable_effect(float("nan"), 0, 0.05))


def test_multinomial_counts_rows_sum_and_are_uniform() -> None:
    c = multinomial_counts(np.random.default_rng(0), 7, 20_000)
    assert c.shape == (20_000, 7)
    assert (c.sum(axis=1) == 7).all()
    np.testing.assert_allclose(c.mean(axis=0), 1.0, atol=0.03)
    np.testing.assert_allclose(c.var(axis=0), 6 / 7, atol=0.05)  # binomial(7, 1/7) variance


def test_calibrated_interval_has_student_t_width() -> None:
    # For a mean over S seeds, the calibrated interval ≈ mean ± t_{S−1}·s/√S (ttest CI).
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 0.05, 6)
    mv = crossed_mean_var(x[:, None])
    boot = (multinomial_counts(rng, 6, 20_000) @ x / 6)[:, None]
    _, lo, hi = calibrate(boot, [mv], 0.05)
    ci = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    assert lo[0] == pytest.approx(ci.low, abs=0.15 * (ci.high - ci.low))
    assert hi[0] == pytest.approx(ci.high, abs=0.15 * (ci.high - ci.low))


def test_prob_best_splits_ties() -> None:
    draws = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_allclose(prob_best(draws), [2.5 / 4, 1.5 / 4])
