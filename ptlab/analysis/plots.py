"""The report's figures (matplotlib `Figure` objects, no pyplot state, Agg canvas).

Each function takes an AnalysisResult and returns {file name: Figure}.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ptlab.analysis.engine import AnalysisResult


def slug(*parts: str) -> str:
    """A file-name-safe join of parts."""
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p) for p in parts)


def _ranking(result: AnalysisResult, scale: str, domain: str) -> dict[str, Any] | None:
    return next(
        (r for r in result.rankings if r["scale"] == scale and r["domain"] == domain), None
    )


def _ranked_domains(result: AnalysisResult) -> list[str]:
    """Domains with at least one analysed cell (a domain whose cells all had a single
    algorithm has nothing to draw)."""
    return [d for d in result.domains if any(r["domain"] == d for r in result.rankings)]


def bump_charts(result: AnalysisResult) -> dict[str, Figure]:
    """Rank-vs-scale per domain: position by mean (1 = best); hollow markers where the
    algorithm shares its significance rank with another (not separable)."""
    out = {}
    for domain in _ranked_domains(result):
        fig = Figure(figsize=(6, 3.5), constrained_layout=True)
        ax = fig.add_subplot()
        scales = [s for s in result.scales if _ranking(result, s, domain)]
        positions: dict[str, list[float]] = {}
        for x, scale in enumerate(scales):
            algos = sorted(_ranking(result, scale, domain)["algorithms"], key=lambda r: -r["mean"])
            ranks = [r["rank"] for r in algos]
            for pos, r in enumerate(algos, 1):
                positions.setdefault(r["algorithm"], [math.nan] * len(scales))[x] = pos
                tied = ranks.count(r["rank"]) > 1
                ax.scatter(x, pos, s=60, zorder=3, color=_color(r["algorithm"], result),
                           facecolors="white" if tied else None)
        for algo, ys in positions.items():
            ax.plot(range(len(scales)), ys, color=_color(algo, result), label=algo, lw=2)
        ax.set_xticks(range(len(scales)), scales)
        ax.set_yticks(range(1, len(positions) + 1))
        ax.invert_yaxis()
        ax.set_xlabel("scale")
        ax.set_ylabel("position by mean (1 = best)")
        ax.set_title(f"{domain}: rank vs scale (hollow = not separable)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        out[f"bump_{slug(domain)}.png"] = fig
    return out


def _color(algo: str, result: AnalysisResult) -> str:
    """A stable colour per algorithm (same in every figure of the report)."""
    names = sorted({a["algorithm"] for r in result.rankings for a in r["algorithms"]})
    return _PALETTE[names.index(algo) % len(_PALETTE)]


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf"]


def forest_plots(result: AnalysisResult) -> dict[str, Figure]:
    """One CI forest plot per (scale, domain): mean and 1−α bootstrap CI per algorithm."""
    out = {}
    for ranking in result.rankings:
        algos = sorted(ranking["algorithms"], key=lambda r: r["mean"])
        fig = Figure(figsize=(5, 0.5 + 0.45 * len(algos)), constrained_layout=True)
        ax = fig.add_subplot()
        for y, r in enumerate(algos):
            if r["ci_low"] is not None and math.isfinite(r["ci_low"]):
                ax.plot([r["ci_low"], r["ci_high"]], [y, y], color="0.3", lw=2)
            ax.plot(r["mean"], y, "o", color=_color(r["algorithm"], result))
        ax.set_yticks(range(len(algos)), [f"{r['algorithm']} (rank {r['rank']})" for r in algos])
        ax.set_xlabel(f"{result.metric} (mean, {100 * (1 - result.alpha):.0f}% CI)")
        ax.set_title(f"{ranking['scale']} / {ranking['domain']}", fontsize=10)
        out[f"forest_{slug(ranking['scale'], ranking['domain'])}.png"] = fig
    return out


def significance_heatmaps(result: AnalysisResult) -> dict[str, Figure]:
    """Per domain, one panel per scale: signed −log10(Holm p) of row − column; * significant."""
    out = {}
    for domain in _ranked_domains(result):
        cells = [r for r in result.rankings if r["domain"] == domain]
        names = sorted({a["algorithm"] for r in cells for a in r["algorithms"]})
        fig = Figure(figsize=(3.2 * len(cells) + 1, 3.2), constrained_layout=True)
        axes = fig.subplots(1, len(cells), squeeze=False)[0]
        image = None
        for ax, ranking in zip(axes, cells, strict=True):
            grid = np.full((len(names), len(names)), np.nan)
            for c in result.comparisons:
                if c["scale"] != ranking["scale"] or c["domain"] != domain:
                    continue
                p = c["p_adjusted"]
                v = 0.0 if p is None or not math.isfinite(p) else -math.log10(max(p, 1e-12))
                i, j = names.index(c["a"]), names.index(c["b"])
                grid[i, j], grid[j, i] = math.copysign(v, c["diff"]), -math.copysign(v, c["diff"])
                if c["significant"]:
                    for r, q in ((i, j), (j, i)):
                        ax.text(q, r, "*", ha="center", va="center", fontsize=14)
            image = ax.imshow(grid, cmap="RdBu_r", vmin=-4, vmax=4)
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(names)), names, fontsize=8)
            ax.set_title(ranking["scale"], fontsize=10)
        if image is not None:
            fig.colorbar(image, ax=list(axes), label="signed −log10 p (Holm), row − column")
        fig.suptitle(f"{domain}: pairwise significance (* = significant)")
        out[f"heatmap_{slug(domain)}.png"] = fig
    return out


def inversion_diagram(result: AnalysisResult) -> dict[str, Figure]:
    """Per domain, the difference a − b across scales for every pair whose order flips:
    solid = significant inversion, dashed = order flip without significance."""
    domains = [d for d in result.domains if any(i["domain"] == d for i in result.inversions)]
    fig = Figure(figsize=(6, 0.5 + 3 * max(len(domains), 1)), constrained_layout=True)
    if not domains:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no order flips between scales", ha="center", va="center")
        ax.set_axis_off()
        return {"inversions.png": fig}
    axes = fig.subplots(len(domains), 1, squeeze=False)[:, 0]
    for ax, domain in zip(axes, domains, strict=True):
        flips = [i for i in result.inversions if i["domain"] == domain]
        for a, b in sorted({(i["a"], i["b"]) for i in flips}):
            sig = any(i["significant"] for i in flips if (i["a"], i["b"]) == (a, b))
            rows = {c["scale"]: c for c in result.comparisons
                    if c["domain"] == domain and (c["a"], c["b"]) == (a, b)}
            xs = [x for x, s in enumerate(result.scales) if s in rows]
            cs = [rows[result.scales[x]] for x in xs]
            ys = [c["diff"] for c in cs]
            lo = [c["diff"] - c["ci_low"] if _finite(c["ci_low"]) else 0.0 for c in cs]
            hi = [c["ci_high"] - c["diff"] if _finite(c["ci_high"]) else 0.0 for c in cs]
            ax.errorbar(xs, ys, yerr=[lo, hi], capsize=3, lw=2.5 if sig else 1,
                        ls="-" if sig else "--",
                        label=f"{a} − {b}" + (" (significant inversion)" if sig else
                                              " (flip, not significant)"))
        ax.axhline(0, color="0.5", lw=1)
        ax.set_xticks(range(len(result.scales)), result.scales)
        ax.set_ylabel(f"difference in {result.metric}")
        ax.set_title(f"{domain}: pairs whose order changes with scale", fontsize=10)
        ax.legend(fontsize=7)
    return {"inversions.png": fig}


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)
