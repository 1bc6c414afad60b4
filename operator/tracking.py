"""MLflow for a study the operator ran: its parent run and the analysis report.

Reuses :class:`ptlab.study.tracking.StudyTracker`, so a study looks the same in MLflow whether
the local executor or the operator ran it (parent found again by its tags: re-logging is
idempotent). Blocking: the caller runs it in a thread. An unreachable MLflow never fails a
study: the caller records a ``Tracked=False`` condition and retries later.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ptlab.api.models import ComparisonStudy
from ptlab.study.plan import StudyPlan
from ptlab.study.tracking import StudyTracker


def tracking_uri(study: ComparisonStudy, default: str) -> str | None:
    """The study's MLflow URI (its template's, else the operator's); None = no tracking."""
    return study.spec.template.tracking.mlflow_uri or default or None


def log_study(
    uri: str, study: ComparisonStudy, plan: StudyPlan, result: Any, failed: bool
) -> tuple[str | None, str | None]:
    """Create (or find) the parent run, upload the report of ``result`` (an AnalysisResult or
    None) and finish the run; returns (parent run id or None, why MLflow failed or None)."""
    from ptlab.analysis import write_report

    tracker = StudyTracker(uri, study.spec.template.tracking.experiment)
    parent = tracker.parent(plan)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = []
        if parent is not None and result is not None:
            artifacts.append(Path(write_report(result, Path(tmp) / "report")).parent)
        tracker.finish_parent(parent, artifacts, failed)
    return (parent if tracker.online else None), tracker.error
