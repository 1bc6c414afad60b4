"""`analyze`: per-cell rankings, pairwise comparisons and recommendations, then rank
correlations and ranking inversions across scales (DESIGN.md §8).

Definitions (also in the report):
- rank: 1 + the number of algorithms significantly better (Holm-adjusted, within the cell);
  algorithms that cannot be separated share a rank.
- recommendation: the rank-1 set; its p_best is the bootstrap probability that the best
  algorithm is in that set.
- inversion: a pair whose order of means flips between two scales of a domain; "significant"
  only when it is significantly ordered (Holm-adjusted) one way at one scale and the other way
  at the other. With no variance estimate (one seed, no items) nothing is significant.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ptlab.analysis.bootstrap import bootstrap_means, calibrate, prob_best
from ptlab.analysis.stats import (
    MeanVar,
    crossed_mean_var,
    holm,
    kendall_tau_b,
    min_detectable_effect,
    t_test,
    tost_equivalent,
    welch_combine,
)
from ptlab.analysis.table import Cell, prepare
from ptlab.errors import UserError

JSON_KEYS = ("rankings", "comparisons", "rank_correlations", "inversions", "recommendations")
POWER = 0.8


@dataclass
class AnalysisResult:
    """Everything `analyze` found. ``to_json()`` holds exactly the stable keys (JSON_KEYS);
    the rest (settings, notes, bootstrap draws) serves the report and callers."""

    rankings: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    rank_correlations: list[dict[str, Any]]
    inversions: list[dict[str, Any]]
    recommendations: list[dict[str, Any]]
    metric: str
    alpha: float
    margin: float
    scales: tuple[str, ...]
    domains: tuple[str, ...]
    nan_dropped: int
    notes: tuple[str, ...]
    draws: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """The stable JSON document: NaN/inf become null."""
        return {k: _clean(getattr(self, k)) for k in JSON_KEYS}


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


@dataclass(frozen=True)
class _Pair:
    a: str
    b: str
    diff: MeanVar


def _pair_diff(cell: Cell, i: int, j: int) -> MeanVar:
    """a − b: paired on shared seeds (and items) when ≥ 2 seeds (or items) are shared, else Welch."""
    sa, sb = cell.seeds[i], cell.seeds[j]
    shared = [s for s in sa if s in set(sb)]
    if len(shared) >= 2 or (shared and cell.n_items > 1):
        ia = [sa.index(s) for s in shared]
        ib = [sb.index(s) for s in shared]
        return crossed_mean_var(cell.scores[i][ia] - cell.scores[j][ib])
    return welch_combine(crossed_mean_var(cell.scores[i]), crossed_mean_var(cell.scores[j]))


def _analyze_cell(
    cell: Cell, alpha: float, margin: float, n_boot: int, rng: np.random.Generator
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], np.ndarray]:
    """Ranking entry, comparison rows, recommendation and calibrated draws of one cell."""
    names = cell.algorithms
    est = [crossed_mean_var(y) for y in cell.scores]
    draws, lo, hi = calibrate(bootstrap_means(cell, n_boot, rng), est, alpha)
    testable = all(e.testable for e in est)
    p_best = prob_best(draws) if testable else np.full(len(names), np.nan)
    pairs = [_Pair(names[i], names[j], _pair_diff(cell, i, j)) for i, j in _index_pairs(names)]
    tests = [t_test(p.diff, alpha) for p in pairs]
    p_adj = holm(np.array([t.p_value for t in tests]))
    better = dict.fromkeys(names, 0)
    comparisons = []
    for p, t, pa in zip(pairs, tests, p_adj, strict=True):
        sig = bool(np.isfinite(pa) and pa < alpha)
        if sig:
            better[p.b if t.diff > 0 else p.a] += 1
        comparisons.append(
            {"scale": cell.scale, "domain": cell.domain, "a": p.a, "b": p.b, "diff": t.diff,
             "ci_low": t.ci_low, "ci_high": t.ci_high, "p_value": t.p_value,
             "p_adjusted": float(pa), "significant": sig,
             "equivalent": tost_equivalent(p.diff, margin, alpha)}
        )
    algos = [
        {"algorithm": n, "mean": e.mean, "ci_low": float(lo[k]), "ci_high": float(hi[k]),
         "n": int(cell.scores[k].shape[0]), "rank": 1 + better[n], "p_best": float(p_best[k])}
        for k, (n, e) in enumerate(zip(names, est, strict=True))
    ]
    algos.sort(key=lambda r: (r["rank"], -r["mean"], r["algorithm"]))
    best = [r["algorithm"] for r in algos if r["rank"] == 1]
    mde = _cell_mde([p.diff for p in pairs], alpha, len(pairs))
    recommendation = {
        "scale": cell.scale, "domain": cell.domain, "best": best,
        "p_best": float(sum(r["p_best"] for r in algos if r["rank"] == 1)),
        "min_detectable_effect": mde,
    }
    ranking = {"scale": cell.scale, "domain": cell.domain, "algorithms": algos}
    return ranking, comparisons, recommendation, draws


def _index_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(len(names)), 2))


def _cell_mde(diffs: list[MeanVar], alpha: float, m: int) -> float:
    """Minimum detectable difference at 80% power for the cell's seeds (and items): the median
    pairwise standard error, at the Bonferroni level α/m (the strictest step of Holm)."""
    ok = [d for d in diffs if d.testable]
    if not ok:
        return float("nan")
    se = float(np.median([d.se for d in ok]))
    df = float(np.median([d.df for d in ok]))
    return min_detectable_effect(se, df, alpha / max(m, 1), POWER)


def _rank_correlations(
    rankings: dict[tuple[str, str], dict[str, Any]],
    draws: dict[tuple[str, str], np.ndarray],
    order: dict[tuple[str, str], tuple[str, ...]],
    scales: Sequence[str],
    domain: str,
    alpha: float,
) -> list[dict[str, Any]]:
    """Kendall τ-b of mean rankings for every pair of scales in a domain, bootstrap CI."""
    out = []
    present = [s for s in scales if (s, domain) in rankings]
    for sa, sb in itertools.combinations(present, 2):
        ka, kb = (sa, domain), (sb, domain)
        common = [n for n in order[ka] if n in set(order[kb])]
        if len(common) < 2:
            continue
        ia = [order[ka].index(n) for n in common]
        ib = [order[kb].index(n) for n in common]
        means_a = {r["algorithm"]: r["mean"] for r in rankings[ka]["algorithms"]}
        means_b = {r["algorithm"]: r["mean"] for r in rankings[kb]["algorithms"]}
        tau = float(kendall_tau_b([means_a[n] for n in common], [means_b[n] for n in common]))
        lo = hi = float("nan")
        if _has_ci(rankings[ka]) and _has_ci(rankings[kb]):
            taus = kendall_tau_b(draws[ka][:, ia], draws[kb][:, ib])
            taus = taus[np.isfinite(taus)]
            if taus.size:
                lo, hi = (float(q) for q in np.quantile(taus, [alpha / 2, 1 - alpha / 2]))
        out.append({"domain": domain, "scale_a": sa, "scale_b": sb, "kendall_tau": tau,
                    "ci_low": lo, "ci_high": hi})
    return out


def _has_ci(ranking: dict[str, Any]) -> bool:
    return all(math.isfinite(r["ci_low"]) for r in ranking["algorithms"])


def _inversions(
    comparisons: list[dict[str, Any]], scales: Sequence[str], domain: str
) -> list[dict[str, Any]]:
    """Pairs whose order flips between two scales; significant iff significant at both."""
    by = {(c["scale"], c["a"], c["b"]): c for c in comparisons if c["domain"] == domain}
    pairs = sorted({(a, b) for _, a, b in by})
    out = []
    for a, b in pairs:
        for sa, sb in itertools.combinations(scales, 2):
            ca, cb = by.get((sa, a, b)), by.get((sb, a, b))
            if ca is None or cb is None or ca["diff"] * cb["diff"] >= 0:
                continue
            out.append({"domain": domain, "a": a, "b": b, "scale_a": sa, "scale_b": sb,
                        "significant": bool(ca["significant"] and cb["significant"])})
    return out


def _check_settings(alpha: float, margin: float, n_boot: int) -> None:
    if not 0 < alpha < 0.5:
        raise UserError(f"alpha={alpha} is out of range", "use a level in (0, 0.5), e.g. 0.05")
    if not (margin >= 0 and math.isfinite(margin)):
        raise UserError(f"margin={margin} must be ≥ 0", "0 disables the equivalence test")
    if n_boot < 100:
        raise UserError(f"n_boot={n_boot} is too small", "use at least 100 (default 2000)")


def analyze(
    table: pd.DataFrame,
    *,
    metric: str | None = None,
    alpha: float = 0.05,
    margin: float = 0.0,
    n_boot: int = 2000,
    seed: int = 0,
    items: pd.DataFrame | None = None,
    scale_order: Sequence[str] | None = None,
) -> AnalysisResult:
    """Analyse a results table (DESIGN.md §4 contract); deterministic given ``seed``.

    Args:
        table: rows with algorithm, scale, domain, seed, metric, value (extra columns ignored).
        metric: which metric to analyse (required when the table has several).
        alpha: family-wise level per cell (Holm) and CI level 1 − α.
        margin: TOST equivalence margin in metric units (0: no equivalence claims).
        n_boot: bootstrap resamples per cell.
        seed: random seed of the bootstrap.
        items: optional per-item scores (algorithm, scale, domain, seed, item_id, score).
        scale_order: explicit scale order (else a numeric parse of the names).
    """
    _check_settings(alpha, margin, n_boot)
    prep = prepare(table, metric=metric, items=items, scale_order=scale_order)
    rankings: dict[tuple[str, str], dict[str, Any]] = {}
    draws: dict[tuple[str, str], np.ndarray] = {}
    order: dict[tuple[str, str], tuple[str, ...]] = {}
    comparisons: list[dict[str, Any]] = []
    recommendations = []
    for index, cell in enumerate(prep.cells):
        rng = np.random.default_rng([seed, index])
        ranking, comps, rec, cell_draws = _analyze_cell(cell, alpha, margin, n_boot, rng)
        key = (cell.scale, cell.domain)
        rankings[key], draws[key], order[key] = ranking, cell_draws, cell.algorithms
        comparisons.extend(comps)
        recommendations.append(rec)
    correlations, inversions = [], []
    for domain in prep.domains:
        correlations += _rank_correlations(rankings, draws, order, prep.scales, domain, alpha)
        inversions += _inversions(comparisons, prep.scales, domain)
    return AnalysisResult(
        rankings=list(rankings.values()), comparisons=comparisons,
        rank_correlations=correlations, inversions=inversions, recommendations=recommendations,
        metric=prep.metric, alpha=alpha, margin=margin, scales=prep.scales,
        domains=prep.domains, nan_dropped=prep.nan_dropped, notes=prep.notes, draws=draws,
    )
