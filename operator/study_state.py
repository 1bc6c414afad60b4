"""Pure: what a study's children say about the study (observations, results table, summary).

The planner (``ptlab.study.plan``, shared with the local executor) decides which runs exist;
this module only reads the children back: tuning scores by spec hash, the seed count per
(scale, domain) cell (sequential seeds are recorded by the children that exist, so no extra
state survives restarts), and the results table the analysis reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ptlab.api.models import ComparisonStudy
from ptlab.operator.reducers import Child
from ptlab.study.plan import Cell, Observations, PlannedRun, StudyPlan, label_value

Body = Mapping[str, Any]


def _labels(body: Body) -> Mapping[str, str]:
    labels: Mapping[str, str] = body.get("metadata", {}).get("labels") or {}
    return labels


def observations(study: ComparisonStudy, children: Iterable[Body]) -> Observations:
    """Tuning scores (by spec hash; failed or metric missing → None) and seeds per cell."""
    metric = study.spec.analysis.metric
    cells = {
        (label_value(s.name), label_value(d)): (s.name, d)
        for s in study.spec.scales
        for d in study.spec.domains
    }
    scores: dict[str, float | None] = {}
    seeds: dict[Cell, set[int]] = {}
    for body in children:
        labels, child = _labels(body), Child.from_body(body)
        if labels.get("ptlab.io/phase") == "tune" and child.phase in ("Succeeded", "Failed"):
            value = child.result.get(metric) if child.phase == "Succeeded" else None
            scores[labels["ptlab.io/spec-hash"]] = None if value is None else float(value)
        cell = cells.get((labels.get("ptlab.io/scale", ""), labels.get("ptlab.io/domain", "")))
        if labels.get("ptlab.io/phase") == "final" and cell is not None:
            seeds.setdefault(cell, set()).add(int(labels.get("ptlab.io/seed", "0")))
    initial = len(study.spec.seeds.values())
    return Observations(
        scores=scores, seeds={cell: max(initial, len(s)) for cell, s in seeds.items()}
    )


def result_rows(
    study: ComparisonStudy, plan: StudyPlan, children: Mapping[str, Child]
) -> list[dict[str, Any]]:
    """Results-table rows (DESIGN.md §4) of the final runs that succeeded with the metric."""
    metric = study.spec.analysis.metric
    rows: list[dict[str, Any]] = []
    for run in plan.phase("final"):
        child = children.get(run.name)
        if child is None or child.phase != "Succeeded" or metric not in child.result:
            continue
        rows.append(_row(study.metadata.name, run, metric, float(child.result[metric])))
    return rows


def _row(study: str, run: PlannedRun, metric: str, value: float) -> dict[str, Any]:
    return {
        "study": study,
        "run": run.name,
        "algorithm": run.algorithm,
        "params_hash": run.params_hash,
        "scale": run.scale,
        "domain": run.domain,
        "seed": run.seed,
        "metric": metric,
        "value": value,
    }


def best_summary(recommendations: Sequence[Mapping[str, Any]]) -> str | None:
    """Short printer-column text: the recommended set per cell ("s1/arith: dpo")."""
    parts = [
        f"{r['scale']}/{r['domain']}: {'≈'.join(map(str, r.get('best') or [])) or '-'}"
        for r in recommendations
    ]
    return "; ".join(parts)[:200] or None
