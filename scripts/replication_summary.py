"""Findings of a finished study, as Markdown numbers (docs/replication/FINDINGS.md).

    .venv/bin/python scripts/replication_summary.py ptlab-out/paper-replication docs/replication

Reads ``analysis.json`` and ``results.csv`` of the study output folder; writes FINDINGS.md with
the recommendation per (scale, domain), the mean accuracy table, every rank inversion between
scales (significant or not), pairs shown equivalent within the margin, and Kendall's τ between
scales. Only numbers from the run; no interpretation beyond counting.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def mean_table(rankings: list[dict[str, Any]]) -> list[str]:
    """Rows: algorithm; columns: (domain, scale) cells; entries: mean [CI]."""
    cells = sorted({(r["domain"], r["scale"]) for r in rankings})
    algos = sorted({a["algorithm"] for r in rankings for a in r["algorithms"]})
    by = {(r["domain"], r["scale"], a["algorithm"]): a for r in rankings for a in r["algorithms"]}
    lines = ["| algorithm | " + " | ".join(f"{d} {s}" for d, s in cells) + " |",
             "|---|" + "---|" * len(cells)]
    for name in algos:
        row = [by.get((d, s, name)) for d, s in cells]
        lines.append(f"| {name} | " + " | ".join(
            "" if a is None else f"{a['mean']:.3f} (#{a['rank']})" for a in row) + " |")
    return lines


def summary(study_out: Path) -> str:
    js = json.loads((study_out / "analysis.json").read_text())
    with open(study_out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    recs, inv, comps = js["recommendations"], js["inversions"], js["comparisons"]
    sig_inv = [i for i in inv if i["significant"]]
    sig_cmp = [c for c in comps if c["significant"]]
    equiv = [c for c in comps if c["equivalent"]]
    runs = {r["run"]: r for r in rows}
    by_scale_domain: dict[tuple[str, str], int] = defaultdict(int)
    for r in runs.values():
        by_scale_domain[(r["scale"], r["domain"])] += 1
    out = [
        f"# Findings of `{study_out.name}` (numbers from the run)",
        "",
        f"- Runs in results.csv: {len(runs)} over {len(by_scale_domain)} (scale, domain) cells.",
        f"- Pairwise comparisons: {len(comps)}; significant after Holm (α per cell): {len(sig_cmp)}; "
        f"equivalent within the margin (TOST): {len(equiv)}.",
        f"- Rank inversions between scales (a pair's order flips): {len(inv)}; significant at both "
        f"scales: {len(sig_inv)}.",
        "",
        "## Recommendation per (scale, domain)",
        "",
        "| scale | domain | best (not separable from each other) | P(best) | min detectable diff |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(recs, key=lambda r: (r["domain"], r["scale"])):
        out.append(f"| {r['scale']} | {r['domain']} | {', '.join(r['best'])} | {_fmt(r['p_best'], 2)} | "
                   f"{_fmt(r['min_detectable_effect'])} |")
    out += ["", "## Mean accuracy (rank within the cell: 1 + number of algorithms significantly better)",
            "", *mean_table(js["rankings"]), "", "## Significant differences", ""]
    out += [f"- {c['domain']} {c['scale']}: {c['a']} − {c['b']} = {c['diff']:+.3f} "
            f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], p_adj {c['p_adjusted']:.3g}"
            for c in sorted(sig_cmp, key=lambda c: (c["domain"], c["scale"], c["a"], c["b"]))] or ["- none"]
    out += ["", "## Rank inversions across scales", ""]
    out += [f"- {i['domain']}: {i['a']} vs {i['b']} flips between {i['scale_a']} and {i['scale_b']}"
            f" — {'SIGNIFICANT at both scales' if i['significant'] else 'not significant'}"
            for i in sorted(inv, key=lambda i: (not i["significant"], i["domain"], i["a"], i["b"]))[:40]]
    if len(inv) > 40:
        out.append(f"- … {len(inv) - 40} more non-significant flips in analysis.json")
    if not inv:
        out.append("- none")
    out += ["", "## Equivalent within the margin", ""]
    out += [f"- {c['domain']} {c['scale']}: {c['a']} ≈ {c['b']} (diff {c['diff']:+.3f})"
            for c in sorted(equiv, key=lambda c: (c["domain"], c["scale"], c["a"], c["b"]))[:40]] or ["- none"]
    out += ["", "## Kendall τ of mean rankings between scales", "",
            "| domain | scales | τ | CI |", "|---|---|---|---|"]
    out += [f"| {t['domain']} | {t['scale_a']}→{t['scale_b']} | {_fmt(t['kendall_tau'], 2)} | "
            f"[{_fmt(t['ci_low'], 2)}, {_fmt(t['ci_high'], 2)}] |" for t in js["rank_correlations"]]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    study_out, dest = Path(argv[0]), Path(argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "FINDINGS.md").write_text(summary(study_out))
    print(f"wrote {dest / 'FINDINGS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
