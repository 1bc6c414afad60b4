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
        return bool(np.isfinite(self.var) and self.var > 0 and self.df >= 1)


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
    """Two-sided t test of a difference against 0, with a (1−α) CI; fields NaN if untestable."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def t_test(d: MeanVar, alpha: float) -> TTest:
    """t = d/se with d.df degrees of freedom; CI = d ± t_{1−α/2, df}·se."""
    if not d.testable:
        nan = float("nan")
        return TTest(d.mean, nan, nan, nan)
    half = float(sps.t.ppf(1 - alpha / 2, d.df)) * d.se
    p = 2.0 * float(sps.t.sf(abs(d.mean) / d.se, d.df))
    return TTest(d.mean, d.mean - half, d.mean + half, p)


def tost_equivalent(d: MeanVar, margin: float, alpha: float) -> bool:
    """Two one-sided tests (Schuirmann 1987): the (1−2α) CI of d lies inside (−margin, margin)."""
    if margin <= 0 or not d.testable:
        return False
    half = float(sps.t.ppf(1 - alpha, d.df)) * d.se
    return bool(d.mean - half > -margin and d.mean + half < margin)


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


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b between the last axes of x and y (any leading batch shape), ties allowed.

    τ_b = (C − D) / sqrt((n0 − n1)(n0 − n2)), n0 = n(n−1)/2, n1/n2 = pairs tied in x / y.
    NaN where one side is constant.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx = np.sign(x[..., i] - x[..., j])
    sy = np.sign(y[..., i] - y[..., j])
    num = (sx * sy).sum(axis=-1)
    den = np.sqrt((sx != 0).sum(axis=-1) * (sy != 0).sum(axis=-1).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def min_detectable_effect(se: float, df: float, alpha: float, power: float = 0.8) -> float:
    """Smallest true difference a two-sided t test at level α detects with the given power.

    MDE = (t_{1−α/2, df} + t_{power, df})·se (the usual normal-approximation power formula with
    Student quantiles). NaN when se/df give no test.
    """
    if not (np.isfinite(se) and se > 0 and df >= 1):
        return float("nan")
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * se)
