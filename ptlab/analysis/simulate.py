"""Simulated studies with known ground truth, to check the analysis (docs/validity/).

Score model for algorithm a, seed s, item i in one (scale, domain) cell:
    y = μ[a, scale, domain] + u[a, s] + w[s] + v[i] + x[a, i] + e[a, s, i]
u: the algorithm's seed-to-seed noise; w: a seed effect shared by all algorithms run with that
seed (same data order); v: item difficulty (shared); x: algorithm × item interaction;
e: residual. All Gaussian with the design's standard deviations. Without items (n_items = 0)
each (a, s) gets one value μ + u + w + e. The truth μ is the mean over the populations of seeds
and items, which is what the CIs must cover.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps


@dataclass(frozen=True)
class Design:
    """Size and noise of a simulated study. Defaults: 3 algorithms × 3 scales × 2 domains."""

    algorithms: tuple[str, ...] = ("alpha", "beta", "gamma")
    scales: tuple[str, ...] = ("0.5B", "1.5B", "7B")
    domains: tuple[str, ...] = ("math", "chat")
    n_seeds: int = 5
    n_items: int = 0  # 0: one value per (algorithm, seed), no item file
    seed_sd: float = 0.02  # u: algorithm-specific seed noise
    shared_seed_sd: float = 0.01  # w: seed effect shared across algorithms
    item_sd: float = 0.15  # v: item difficulty
    algo_item_sd: float = 0.05  # x: algorithm × item interaction
    resid_sd: float = 0.1  # e: residual (per value without items, per score with items)


@dataclass(frozen=True)
class SimulatedStudy:
    """A drawn study: the results table, optional item scores, the truth and planted inversions."""

    table: pd.DataFrame
    items: pd.DataFrame | None
    truth: pd.DataFrame  # algorithm, scale, domain, mean
    planted: tuple[tuple[str, str, str, str, str], ...]  # (domain, a, b, scale_a, scale_b)


def diff_se(design: Design) -> tuple[float, float]:
    """True standard error and df of a paired difference of two algorithms' cell means."""
    s = design.n_seeds
    if design.n_items:
        var = 2 * (design.seed_sd**2 / s + design.algo_item_sd**2 / design.n_items
                   + design.resid_sd**2 / (s * design.n_items))
    else:
        var = 2 * (design.seed_sd**2 + design.resid_sd**2) / s
    return float(np.sqrt(var)), float(max(s - 1, 1))


def designed_effect(design: Design, alpha: float = 0.05, power: float = 0.975) -> float:
    """Effect giving `power` per cell for a two-sided paired t test at the Bonferroni level
    α/m (m pairs in a cell), by the noncentral t; two cells at 0.975 give ≥ 0.95 jointly."""
    se, df = diff_se(design)
    m = len(design.algorithms) * (len(design.algorithms) - 1) // 2
    crit = float(sps.t.ppf(1 - alpha / (2 * m), df))

    def gap(delta: float) -> float:
        nc = delta / se
        lower = np.nan_to_num(sps.nct.cdf(-crit, df, nc))  # underflows to NaN for large nc
        return float(sps.nct.sf(crit, df, nc) + lower) - power

    return float(optimize.brentq(gap, 1e-9, se * (crit + 1) * 20))


def true_means(design: Design, effect: float, planted: bool) -> pd.DataFrame:
    """μ per (algorithm, scale, domain). Null: a consistent order at every scale (the first two
    algorithms tied, the third `effect` above); planted: in the first domain the first two
    differ by +effect at the smallest scale and −effect at the largest (an inversion)."""
    rows = []
    n_scales = len(design.scales)
    for (d_i, domain), (s_i, scale) in itertools.product(
        enumerate(design.domains), enumerate(design.scales)
    ):
        base = 0.4 + 0.1 * s_i / max(n_scales - 1, 1) + 0.02 * d_i
        for a_i, algo in enumerate(design.algorithms):
            mu = base + (effect if a_i == 2 else 0.0) + 0.5 * effect * (a_i > 2) * (a_i - 2)
            if planted and d_i == 0 and a_i < 2:
                sign = 1.0 - 2.0 * (s_i / max(n_scales - 1, 1))  # +1 → −1 across scales
                mu += (0.5 if a_i == 0 else -0.5) * effect * sign
            rows.append({"algorithm": algo, "scale": scale, "domain": domain, "mean": mu})
    return pd.DataFrame(rows)


def _draw_cell(design: Design, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[K, S, I] scores (I = 1 without items) for one cell with true means mu [K]."""
    k, s, i = len(mu), design.n_seeds, max(design.n_items, 1)
    y = mu[:, None, None] + rng.normal(0, design.seed_sd, (k, s, 1))
    y = y + rng.normal(0, design.shared_seed_sd, (1, s, 1))
    if design.n_items:
        y = y + rng.normal(0, design.item_sd, (1, 1, i))
        y = y + rng.normal(0, design.algo_item_sd, (k, 1, i))
    return y + rng.normal(0, design.resid_sd, (k, s, i))


def simulate_study(
    design: Design, *, effect: float, planted: bool, seed: int, metric: str = "accuracy"
) -> SimulatedStudy:
    """Draw one study; deterministic given `seed`."""
    rng = np.random.default_rng(seed)
    truth = true_means(design, effect, planted)
    rows, item_rows = [], []
    for (scale, domain), grp in truth.groupby(["scale", "domain"], sort=False):
        y = _draw_cell(design, grp["mean"].to_numpy(), rng)
        for (k, algo), s in itertools.product(enumerate(grp["algorithm"]), range(y.shape[1])):
            rows.append({"algorithm": algo, "scale": scale, "domain": domain, "seed": s,
                         "metric": metric, "value": float(y[k, s].mean()),
                         "n_items": design.n_items})
            if design.n_items:
                item_rows.extend(
                    {"algorithm": algo, "scale": scale, "domain": domain, "seed": s,
                     "item_id": f"q{i}", "score": float(v)}
                    for i, v in enumerate(y[k, s])
                )
    planted_list = ()
    if planted:
        a, b = design.algorithms[:2]
        planted_list = ((design.domains[0], a, b, design.scales[0], design.scales[-1]),)
    return SimulatedStudy(
        table=pd.DataFrame(rows),
        items=pd.DataFrame(item_rows) if design.n_items else None,
        truth=truth,
        planted=planted_list,
    )


def _covered(result_json: dict, truth: pd.DataFrame) -> tuple[int, int, int, int]:
    """(mean CIs covering μ, mean CIs, difference CIs covering the true diff, difference CIs)."""
    mu = {(r.algorithm, r.scale, r.domain): r.mean for r in truth.itertuples()}
    hit = tot = dhit = dtot = 0
    for ranking in result_json["rankings"]:
        for r in ranking["algorithms"]:
            if r["ci_low"] is not None:
                tot += 1
                hit += r["ci_low"] <= mu[(r["algorithm"], ranking["scale"], ranking["domain"])] <= r["ci_high"]
    for c in result_json["comparisons"]:
        if c["ci_low"] is not None:
            true = mu[(c["a"], c["scale"], c["domain"])] - mu[(c["b"], c["scale"], c["domain"])]
            dtot += 1
            dhit += c["ci_low"] <= true <= c["ci_high"]
    return hit, tot, dhit, dtot


def evaluate(
    design: Design,
    *,
    n_studies: int,
    seed: int = 0,
    n_boot: int = 2000,
    alpha: float = 0.05,
    effect_scale: float = 1.0,
) -> dict[str, float | int]:
    """Run `n_studies` null and `n_studies` planted studies through `analyze`.

    Returns recovery (planted significant inversion found), false_positive_rate (null studies
    with any significant inversion), and 1 − α CI coverage of means and of differences.
    """
    from ptlab.analysis.engine import analyze  # local: engine does not depend on the simulator

    effect = designed_effect(design, alpha) * effect_scale
    found = fp = hit = tot = dhit = dtot = 0
    for k in range(n_studies):
        for planted in (False, True):
            study = simulate_study(design, effect=effect, planted=planted, seed=seed + 2 * k + planted)
            res = analyze(study.table, items=study.items, n_boot=n_boot, alpha=alpha,
                          seed=seed + k).to_json()
            sig = {(i["domain"], i["a"], i["b"], i["scale_a"], i["scale_b"])
                   for i in res["inversions"] if i["significant"]}
            if planted:
                found += set(study.planted) <= sig
            else:
                fp += bool(sig)
            h, t, dh, dt = _covered(res, study.truth)
            hit, tot, dhit, dtot = hit + h, tot + t, dhit + dh, dtot + dt
    return {
        "n_studies": n_studies, "effect": effect, "recovery": found / n_studies,
        "false_positive_rate": fp / n_studies, "ci_coverage": hit / tot if tot else float("nan"),
        "diff_ci_coverage": dhit / dtot if dtot else float("nan"), "n_cis": tot, "n_diff_cis": dtot,
    }
