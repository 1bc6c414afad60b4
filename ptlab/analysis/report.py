"""Report: PNG figures + a self-contained report.html (images embedded as base64) and a rich
terminal summary. Prose never calls a non-significant order flip an "inversion"."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from ptlab.analysis.engine import AnalysisResult
from ptlab.analysis.plots import (
    bump_charts,
    forest_plots,
    inversion_diagram,
    significance_heatmaps,
)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a label the font cannot draw shows as a box, silently
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _sections(result: AnalysisResult) -> list[tuple[str, str]]:
    """(title, html) of the tables, in reading order."""
    js = result.to_json()
    recs = [[r["scale"], r["domain"], ", ".join(r["best"]), r["p_best"],
             r["min_detectable_effect"]] for r in js["recommendations"]]
    ranks = [[g["scale"], g["domain"], a["algorithm"], a["mean"], a["ci_low"], a["ci_high"],
              a["n"], a["rank"], a["p_best"]] for g in js["rankings"] for a in g["algorithms"]]
    comps = [[c["scale"], c["domain"], f"{c['a']} − {c['b']}", c["diff"], c["ci_low"],
              c["ci_high"], c["p_value"], c["p_adjusted"], "yes" if c["significant"] else "no",
              "yes" if c["equivalent"] else "no"] for c in js["comparisons"]]
    sig = [i for i in js["inversions"] if i["significant"]]
    flips = [i for i in js["inversions"] if not i["significant"]]
    inv_rows = [[i["domain"], f"{i['a']} vs {i['b']}", i["scale_a"], i["scale_b"]] for i in sig]
    flip_rows = [[i["domain"], f"{i['a']} vs {i['b']}", i["scale_a"], i["scale_b"]] for i in flips]
    taus = [[t["domain"], t["scale_a"], t["scale_b"], t["kendall_tau"], t["ci_low"],
             t["ci_high"]] for t in js["rank_correlations"]]
    inv_text = (
        f"<p>{len(sig)} significant ranking inversion(s): the pair is significantly ordered one "
        "way at one scale and the other way at another (Holm-adjusted within each cell).</p>"
        + (_table_html(["domain", "pair", "scale", "scale"], inv_rows) if sig else "")
        + f"<p>{len(flips)} order flip(s) without significance at both scales: reported, not "
        "evidence of a change in ranking.</p>"
        + (_table_html(["domain", "pair", "scale", "scale"], flip_rows) if flips else "")
    )
    return [
        ("Recommendations", _table_html(
            ["scale", "domain", "best (not separable)", "p_best", "min. detectable effect"], recs)),
        ("Ranking inversions across scales", inv_text),
        ("Rank correlation between scales (Kendall τ-b)", _table_html(
            ["domain", "scale a", "scale b", "τ", "CI low", "CI high"], taus)),
        ("Rankings", _table_html(
            ["scale", "domain", "algorithm", "mean", "CI low", "CI high", "seeds", "rank",
             "p_best"], ranks)),
        ("Pairwise comparisons", _table_html(
            ["scale", "domain", "a − b", "diff", "CI low", "CI high", "p", "p (Holm)",
             "significant", f"equivalent (±{result.margin:g})"], comps)),
    ]


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f0f0f0}img{max-width:100%;margin:.5em 0}")


def write_report(result: AnalysisResult, out_dir: Path | str) -> Path:
    """Write PNGs, analysis.json and a self-contained report.html into out_dir → its path."""
    out = Path(out_dir)
    figures = {**bump_charts(result), **forest_plots(result),
               **significance_heatmaps(result), **inversion_diagram(result)}
    out.mkdir(parents=True, exist_ok=True)  # after the figures: a failure leaves nothing
    images = []
    for name, fig in figures.items():
        data = _png(fig)
        (out / name).write_bytes(data)
        images.append((name, base64.b64encode(data).decode("ascii")))
    (out / "analysis.json").write_text(json.dumps(result.to_json(), indent=2))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) or "<li>none</li>"
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, h in _sections(result))
    imgs = "".join(
        f'<h3>{html.escape(n)}</h3><img alt="{html.escape(n)}" src="data:image/png;base64,{b}">'
        for n, b in images
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>ptlab analysis: "
        f"{html.escape(result.metric)}</title><style>{_CSS}</style></head><body>"
        f"<h1>ptlab analysis — {html.escape(result.metric)}</h1>"
        f"<p>α = {result.alpha:g} (Holm within each scale × domain cell), equivalence margin "
        f"{result.margin:g}, scales in order: {html.escape(', '.join(result.scales))}. Rank = 1 + "
        "number of algorithms significantly better; equal ranks cannot be separated.</p>"
        f"<h2>Input notes</h2><ul>{notes}</ul>{body}<h2>Figures</h2>{imgs}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def print_summary(result: AnalysisResult, console: Console) -> None:
    """Recommendations and inversions as rich tables, plus the input notes."""
    js = result.to_json()
    rec = Table(title=f"Recommendations ({result.metric}, α={result.alpha:g})")
    for col in ("scale", "domain", "best (not separable)", "p_best", "MDE"):
        rec.add_column(col)
    for r in js["recommendations"]:
        rec.add_row(r["scale"], r["domain"], ", ".join(r["best"]), _fmt(r["p_best"]),
                    _fmt(r["min_detectable_effect"]))
    console.print(rec)
    inv = Table(title="Order changes across scales")
    for col in ("domain", "pair", "scales", "verdict"):
        inv.add_column(col)
    for i in js["inversions"]:
        verdict = "significant inversion" if i["significant"] else "flip, not significant"
        inv.add_row(i["domain"], f"{i['a']} vs {i['b']}", f"{i['scale_a']} → {i['scale_b']}",
                    verdict)
    console.print(inv if js["inversions"] else "No order changes between scales.")
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
