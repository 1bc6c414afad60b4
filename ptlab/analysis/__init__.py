"""Statistics on a results table: per-cell rankings with bootstrap CIs, paired comparisons
(Holm, TOST), probability of best, rank correlations and inversions across scales,
recommendations, and the HTML/PNG report (DESIGN.md §8).

    from ptlab.analysis import analyze, write_report
    result = analyze(table, metric="accuracy", alpha=0.05, margin=0.01, seed=0)
    result.to_json()            # stable keys: rankings, comparisons, rank_correlations, ...
    write_report(result, "out/")  # report.html + PNGs
"""

from ptlab.analysis.engine import JSON_KEYS, AnalysisResult, analyze
from ptlab.analysis.report import print_summary, write_report
from ptlab.analysis.table import read_items, read_results, scale_key

__all__ = [
    "JSON_KEYS",
    "AnalysisResult",
    "analyze",
    "print_summary",
    "read_items",
    "read_results",
    "scale_key",
    "write_report",
]
