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
    pair_signs,
    t_test,
    tau_b_from_signs,
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


def _pair_diff(cell: Cell, i: int, j: int) -> MeanVar:
    """a − b: paired on shared seeds (and items) when ≥ 2 seeds are shared, else Welch."""
    sa, sb = cell.seeds[i], cell.seeds[j]
    pos_b = {s: n for n, s in enumerate(sb)}
    shared = [(n, pos_b[s]) for n, s in enumerate(sa) if s in pos_b]
    if len(shared) >= 2:
        ia, ib = (list(x) for x in zip(*shared, strict=True))
        return crossed_mean_var(cell.scores[i][ia] - cell.scores[j][ib])
    return welch_combine(crossed_mean_var(cell.scores[i]), crossed_mean_var(cell.scores[j]))


def _pair_diffs(cell: Cell, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
    """(mean, var, df) arrays of a − b for all pairs; one vectorised pass when the cell has
    shared seeds and one value per seed (the paired t test), else per pair."""
    if cell.paired_seeds and cell.n_items == 1 and len(cell.seeds[0]) >= 2:
        y = np.stack([v[:, 0] for v in cell.scores])  # [K, S]
        ia, ib = (np.array(x) for x in zip(*pairs, strict=True))
        d = y[ia] - y[ib]
        s = d.shape[1]
        return d.mean(axis=1), d.var(axis=1, ddof=1) / s, np.full(len(pairs), s - 1.0)
    diffs = [_pair_diff(cell, i, j) for i, j in pairs]
    return tuple(np.array([getattr(d, f) for d in diffs]) for f in ("mean", "var", "df"))


def _analyze_cell(
    cell: Cell, alpha: float, margin: float, n_boot: int, rng: np.random.Generator
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], np.ndarray]:
    """Ranking entry, comparison rows, recommendation and calibrated draws of one cell."""
    names = cell.algorithms
    est = [crossed_mean_var(y) for y in cell.scores]
    draws, lo, hi = calibrate(bootstrap_means(cell, n_boot, rng), est, alpha)
    testable = all(e.testable for e in est)
    p_best = prob_best(draws) if testable else np.full(len(names), np.nan)
    pairs = _index_pairs(names)
    mean, var, df = _pair_diffs(cell, pairs)
    test = t_test(mean, var, df, alpha)
    p_adj = holm(test.p_value)
    sig = np.isfinite(p_adj) & (p_adj < alpha)
    equivalent = tost_equivalent(mean, var, df, margin, alpha)
    better = np.zeros(len(names), dtype=int)
    for (i, j), d, is_sig in zip(pairs, mean, sig, strict=True):
        better[j if d > 0 else i] += bool(is_sig)
    comparisons = [
        {"scale": cell.scale, "domain": cell.domain, "a": names[i], "b": names[j],
         "diff": float(mean[n]), "ci_low": float(test.ci_low[n]),
         "ci_high": float(test.ci_high[n]), "p_value": float(test.p_value[n]),
         "p_adjusted": float(p_adj[n]), "significant": bool(sig[n]),
         "equivalent": bool(equivalent[n])}
        for n, (i, j) in enumerate(pairs)
    ]
    algos = [
        {"algorithm": n, "mean": e.mean, "ci_low": float(lo[k]), "ci_high": float(hi[k]),
         "n": int(cell.scores[k].shape[0]), "rank": 1 + int(better[k]),
         "p_best": float(p_best[k])}
        for k, (n, e) in enumerate(zip(names, est, strict=True))
    ]
    algos.sort(key=lambda r: (r["rank"], -r["mean"], r["algorithm"]))
    best = [r["algorithm"] for r in algos if r["rank"] == 1]
    recommendation = {
        "scale": cell.scale, "domain": cell.domain, "best": best,
        "p_best": float(sum(r["p_best"] for r in algos if r["rank"] == 1)),
        "min_detectable_effect": _cell_mde(var, df, alpha, len(pairs)),
    }
    ranking = {"scale": cell.scale, "domain": cell.domain, "algorithms": algos}
    return ranking, comparisons, recommendation, draws


def _index_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(len(names)), 2))


def _cell_mde(var: np.ndarray, df: np.ndarray, alpha: float, m: int) -> float:
    """Minimum detectable difference at 80% power for the cell's seeds (and items): the median
    pairwise standard error, at the Bonferroni level α/m (the strictest step of Holm)."""
    ok = np.isfinite(var) & (var > 0) & (df >= 1)
    if not ok.any():
        return float("nan")
    se = float(np.median(np.sqrt(var[ok])))
    return min_detectable_effect(se, float(np.median(df[ok])), alpha / max(m, 1), POWER)


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
    signs: dict[tuple[str, str], np.ndarray] = {}
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
            taus = _draw_taus(draws, ka, kb, ia, ib, signs)
            taus = taus[np.isfinite(taus)]
            if taus.size:
                lo, hi = (float(q) for q in np.quantile(taus, [alpha / 2, 1 - alpha / 2]))
        out.append({"domain": domain, "scale_a": sa, "scale_b": sb, "kendall_tau": tau,
                    "ci_low": lo, "ci_high": hi})
    return out


def _draw_taus(
    draws: dict[tuple[str, str], np.ndarray],
    ka: tuple[str, str],
    kb: tuple[str, str],
    ia: list[int],
    ib: list[int],
    signs: dict[tuple[str, str], np.ndarray],
) -> np.ndarray:
    """τ-b per bootstrap draw between two cells; pair signs of a cell are computed once when
    both cells hold the same algorithms (the usual case)."""
    full_a, full_b = len(ia) == draws[ka].shape[1], len(ib) == draws[kb].shape[1]
    if not (full_a and full_b and ia == ib):
        return kendall_tau_b(draws[ka][:, ia], draws[kb][:, ib])
    for key in (ka, kb):
        if key not in signs:
            signs[key] = pair_signs(draws[key])
    return tau_b_from_signs(signs[ka], signs[kb])


def _has_ci(ranking: dict[str, Any]) -> bool:
    return all(math.isfinite(r["ci_low"]) for r in ranking["algorithms"])


def _inversions(
    comparisons: list[dict[str, Any]], scales: Sequence[str], domain: str
) -> list[dict[str, Any]]:
    """Pairs whose order flips between two scales; significant iff significant at both.

    Args:
        comparisons: the comparison rows of this domain.
    """
    by = {(c["scale"], c["a"], c["b"]): c for c in comparisons}
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


def _check_settings(alpha: float, margin: float, n_boot: int, seed: int) -> None:
    if not 0 < alpha < 0.5:
        raise UserError(f"alpha={alpha} is out of range", "use a level in (0, 0.5), e.g. 0.05")
    if not (margin >= 0 and math.isfinite(margin)):
        raise UserError(f"margin={margin} must be ≥ 0", "0 disables the equivalence test")
    if n_boot < 100:
        raise UserError(f"n_boot={n_boot} is too small", "use at least 100 (default 2000)")
    if seed < 0:
        raise UserError(f"seed={seed} must be ≥ 0", "use a non-negative random seed")


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
    _check_settings(alpha, margin, n_boot, seed)
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
    by_domain: dict[str, list[dict[str, Any]]] = {d: [] for d in prep.domains}
    for c in comparisons:
        by_domain[c["domain"]].append(c)
    for domain in prep.domains:
        correlations += _rank_correlations(rankings, draws, order, prep.scales, domain, alpha)
        inversions += _inversions(by_domain[domain], prep.scales, domain)
    return AnalysisResult(
        rankings=list(rankings.values()), comparisons=comparisons,
        rank_correlations=correlations, inversions=inversions, recommendations=recommendations,
        metric=prep.metric, alpha=alpha, margin=margin, scales=prep.scales,
        domains=prep.domains, nan_dropped=prep.nan_dropped, notes=prep.notes, draws=draws,
    )
