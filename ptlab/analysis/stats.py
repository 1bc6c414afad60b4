"""Pure statistics used by the analysis: variance of a crossed seeds × items mean, t tests,
TOST, Holm, Kendall τ-b (vectorised over bootstrap draws) and minimum detectable effect.

Every function takes plain numpy arrays and returns numbers; nothing here knows about tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class MeanVar:
    """A grand mean with an unbiased variance estimate and its (Satterthwaite) degrees of freedom.

    ``var`` is NaN and ``df`` 0 when the design gives no variance estimate (one seed, no items).
    """

    mean: float
    var: float
    df: float

    @property
    def se(self) -> float:
        """Standard error, NaN when not estimable."""
        return float(np.sqrt(self.var)) if self.var >= 0 else float("nan")

    @property
    def testable(self) -> bool:
        """True when a t-based inference is possible (a positive variance and df ≥ 1)."""
        return bool(_testable(np.asarray(self.var), np.asarray(self.df)))


def crossed_mean_var(y: np.ndarray) -> MeanVar:
    """Mean of a seeds × items score matrix and the variance of that mean under a crossed design.

    Seeds and items are both random samples (Clark 1973, "language-as-fixed-effect fallacy"):
    Var(ȳ) = σ²_seed/S + σ²_item/I + σ²_resid/(S·I), estimated by the ANOVA identity
    Var̂ = (MS_seed + MS_item − MS_resid)/(S·I) with Satterthwaite (1946) degrees of freedom.
    With one item column this is the ordinary s²/S (df S−1). With one seed the seed-to-seed
    variance is not estimable, so no variance is returned (NaN): an items-only interval would be
    about one trained model, not the algorithm (measured: 66–78% coverage, 20% false inversions).

    Note: when the seed term carries at least half of Var̂, df = S − 1 instead of Satterthwaite:
    with 2–3 seeds Satterthwaite's df (computed from the same noisy mean squares) undercovers
    (0.92 at 3 seeds × 100 items, measured); the rule gives 0.95–0.96 at 3–10 seeds.

    Args:
        y: scores, shape [S seeds, I items]; I = 1 when only per-seed values exist.
    """
    s, i = y.shape
    mean = float(y.mean())
    if s > 1 and i > 1:
        rows, cols = y.mean(axis=1), y.mean(axis=0)
        ms_seed = i * float(rows.var(ddof=1))
        ms_item = s * float(cols.var(ddof=1))
        resid = y - rows[:, None] - cols[None, :] + mean
        df_resid = (s - 1) * (i - 1)
        ms_resid = float((resid**2).sum()) / df_resid
        combo = ms_seed + ms_item - ms_resid
        if combo <= ms_resid:
            # Both variance components estimated ≤ 0: the residual term alone is the floor.
            return MeanVar(mean, ms_resid / (s * i), float(df_resid))
        if ms_seed >= 0.5 * combo:
            return MeanVar(mean, combo / (s * i), float(s - 1))
        df = combo**2 / (ms_seed**2 / (s - 1) + ms_item**2 / (i - 1) + ms_resid**2 / df_resid)
        return MeanVar(mean, combo / (s * i), float(df))
    if s > 1:
        return MeanVar(mean, float(y[:, 0].var(ddof=1)) / s, float(s - 1))
    return MeanVar(mean, float("nan"), 0.0)


def welch_combine(a: MeanVar, b: MeanVar) -> MeanVar:
    """Difference a − b of two independent means: Welch (1947) variance and Satterthwaite df."""
    var = a.var + b.var
    denom = a.var**2 / a.df + b.var**2 / b.df if a.df > 0 and b.df > 0 else float("nan")
    df = var**2 / denom if denom and np.isfinite(denom) and denom > 0 else 0.0
    return MeanVar(a.mean - b.mean, var, float(df))


@dataclass(frozen=True)
class TTest:
    """Two-sided t tests of differences against 0 with (1−α) CIs; NaN where untestable.
    Fields are arrays shaped like the input (0-d for a single test)."""

    diff: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray


def _testable(var: np.ndarray, df: np.ndarray) -> np.ndarray:
    return np.isfinite(var) & (var > 0) & (df >= 1)


def t_test(mean: np.ndarray, var: np.ndarray, df: np.ndarray, alpha: float) -> TTest:
    """t = mean/se with df degrees of freedom; CI = mean ± t_{1−α/2, df}·se (vectorised)."""
    mean, var, df = (np.asarray(a, dtype=float) for a in (mean, var, df))
    ok = _testable(var, df)
    se = np.sqrt(np.where(ok, var, 1.0))
    dfs = np.where(ok, df, 1.0)
    half = sps.t.ppf(1 - alpha / 2, dfs) * se
    p = 2.0 * sps.t.sf(np.abs(mean) / se, dfs)
    nan = np.nan
    return TTest(mean, np.where(ok, mean - half, nan), np.where(ok, mean + half, nan),
                 np.where(ok, p, nan))


def tost_equivalent(
    mean: np.ndarray, var: np.ndarray, df: np.ndarray, margin: float, alpha: float
) -> np.ndarray:
    """Two one-sided tests (Schuirmann 1987): the (1−2α) CI lies inside (−margin, margin)."""
    mean, var, df = (np.asarray(a, dtype=float) for a in (mean, var, df))
    if margin <= 0:
        return np.zeros(mean.shape, dtype=bool)
    ok = _testable(var, df)
    half = sps.t.ppf(1 - alpha, np.where(ok, df, 1.0)) * np.sqrt(np.where(ok, var, 1.0))
    return ok & (mean - half > -margin) & (mean + half < margin)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaN entries stay NaN and do not count.

    p_adj(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)) over the ascending order p_(1) ≤ … ≤ p_(m).
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def pair_signs(x: np.ndarray) -> np.ndarray:
    """sign(x_i − x_j) for all i < j on the last axis, as int8 (the input of τ-b)."""
    x = np.asarray(x, dtype=float)
    i, j = np.triu_indices(x.shape[-1], k=1)
    return np.sign(x[..., i] - x[..., j]).astype(np.int8)


def tau_b_from_signs(sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Kendall's τ-b from pair signs: (C − D) / sqrt((n0 − n1)(n0 − n2)), n0 = n(n−1)/2 and
    n1/n2 the pairs tied in x / y. NaN where one side is constant."""
    num = np.einsum("...p,...p->...", sx, sy, dtype=np.int64).astype(float)
    den = np.sqrt(np.count_nonzero(sx, axis=-1) * np.count_nonzero(sy, axis=-1).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b between the last axes of x and y (any leading batch shape), ties allowed."""
    return tau_b_from_signs(pair_signs(x), pair_signs(y))


def min_detectable_effect(se: float, df: float, alpha: float, power: float = 0.8) -> float:
    """Smallest true difference a two-sided t test at level α detects with the given power.

    MDE = (t_{1−α/2, df} + t_{power, df})·se (the usual normal-approximation power formula with
    Student quantiles). NaN when se/df give no test.
    """
    if not (np.isfinite(se) and se > 0 and df >= 1):
        return float("nan")
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * se)
