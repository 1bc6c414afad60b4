"""Benchmark: `analyze` on 100k result rows with 2,000 bootstrap resamples per cell, vs
scipy.stats.bootstrap computing the same per-(scale, domain, algorithm) mean CIs.

Table: 10 algorithms × 4 scales × 50 domains × 50 seeds = 100,000 rows (200 cells of 10
algorithms). Entries written to benchmarks/results/analysis.json:
- analyze_100k_rows: the whole analysis (CIs, 9,000 paired tests, Holm, TOST, p_best, τ,
  inversions) vs the baseline doing only the mean CIs (target: ≤ 5 s; ratio reported).
- bootstrap_cis_100k_rows: our vectorised bootstrap of the same CIs vs the baseline
  (target ratio ≤ 0.1).
Runs are interleaved (ours, baseline, ...) and the best of REPEATS is kept: the machine is shared.

    .venv/bin/python benchmarks/bench_analysis.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ptlab.analysis import analyze
from ptlab.analysis.bootstrap import bootstrap_means, calibrate
from ptlab.analysis.stats import crossed_mean_var
from ptlab.analysis.table import prepare

N_BOOT, REPEATS = 2000, 3
SHAPE = {"algorithm": 10, "scale": 4, "domain": 50, "seed": 50}
OUT = Path(__file__).parent / "results" / "analysis.json"


def make_table(seed: int = 0) -> pd.DataFrame:
    """100k rows with per-algorithm/scale/domain means and seed noise."""
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product([range(n) for n in SHAPE.values()], names=list(SHAPE))
    frame = idx.to_frame(index=False)
    mu = rng.normal(0.5, 0.05, tuple(SHAPE.values())[:3])
    value = mu[frame["algorithm"], frame["scale"], frame["domain"]] + rng.normal(0, 0.03, len(frame))
    return pd.DataFrame({"algorithm": "algo" + frame["algorithm"].astype(str),
                         "scale": frame["scale"].map(lambda s: f"{[0.5, 1.5, 7, 14][s]}B"),
                         "domain": "d" + frame["domain"].astype(str), "seed": frame["seed"],
                         "metric": "accuracy", "value": value})


def ours_bootstrap(table: pd.DataFrame) -> int:
    """Our CIs only: prepare + vectorised bootstrap + calibration, every cell."""
    n = 0
    for i, cell in enumerate(prepare(table).cells):
        est = [crossed_mean_var(y) for y in cell.scores]
        _, lo, _ = calibrate(bootstrap_means(cell, N_BOOT, np.random.default_rng([0, i])), est, 0.05)
        n += lo.size
    return n


def baseline(table: pd.DataFrame) -> int:
    """scipy.stats.bootstrap (vectorised, percentile) of the mean for every cell × algorithm."""
    n = 0
    rng = np.random.default_rng(0)
    for _, grp in table.groupby(["scale", "domain", "algorithm"]):
        sps.bootstrap((grp["value"].to_numpy(),), np.mean, n_resamples=N_BOOT,
                      method="percentile", random_state=rng)
        n += 1
    return n


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    table = make_table()
    assert len(table) == 100_000
    best = {"full": np.inf, "boot": np.inf, "scipy": np.inf}
    for _ in range(REPEATS):
        t, result = timed(lambda: analyze(table, n_boot=N_BOOT, seed=0))
        best["full"] = min(best["full"], t)
        t, n_ours = timed(ours_bootstrap, table)
        best["boot"] = min(best["boot"], t)
        t, n_base = timed(baseline, table)
        best["scipy"] = min(best["scipy"], t)
    assert n_ours == n_base == 2000
    details = {"rows": len(table), "cells": 200, "cis": n_base, "n_boot": N_BOOT,
               "pairwise_tests": len(result.comparisons), "repeats_best_of": REPEATS,
               "threads": os.environ["OMP_NUM_THREADS"], "cpus": os.cpu_count()}
    base = "scipy.stats.bootstrap(method='percentile', vectorized) per cell x algorithm"
    rows = [
        {"name": "analyze_100k_rows", "ours_s": round(best["full"], 6), "baseline": base,
         "baseline_s": round(best["scipy"], 6), "ratio": round(best["full"] / best["scipy"], 6),
         "target": "ours_s <= 5 (whole analysis; the baseline only computes the mean CIs)",
         "details": details},
        {"name": "bootstrap_cis_100k_rows", "ours_s": round(best["boot"], 6), "baseline": base,
         "baseline_s": round(best["scipy"], 6), "ratio": round(best["boot"] / best["scipy"], 6),
         "target": "ratio <= 0.1", "details": details},
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
