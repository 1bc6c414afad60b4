"""Run outputs → the study's results table (DESIGN.md §4) and per-item scores.

Reads each run directory's ``result.json`` and ``eval/items.jsonl``; writes ``results.csv``
(final runs), ``tuning.csv`` (validation scores of tuning trials) and ``items.jsonl``
(the per-item file ``ptlab analyze --items`` and :func:`ptlab.analysis.analyze` accept).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ptlab.study.plan import PlannedRun

RESULT_COLUMNS = (
    "study", "run", "algorithm", "params_hash", "scale", "domain", "seed",
    "metric", "value", "n_items", "train_tokens", "flops", "wall_s",
)
ACCOUNTING = ("n_items", "train_tokens", "flops", "wall_s")
"""result.json fields that are run accounting, not metrics."""

NON_METRICS = frozenset({*ACCOUNTING, "step", "steps", "seed", "generated_tokens", "status"})
RESULT_FILE = "result.json"
RUN_FILE = "run.json"
"""The PostTrainingRun the executor hands to ``ptlab train`` (the trainer writes spec.json)."""
ITEMS_FILE = Path("eval") / "items.jsonl"
METRICS_FILE = "metrics.jsonl"
ERROR_FILE = "error.json"


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run reported (``result.json``), or why it failed."""

    status: Literal["succeeded", "failed"]
    metrics: Mapping[str, float] = field(default_factory=dict)
    accounting: Mapping[str, float | None] = field(default_factory=dict)
    error: str | None = None

    def metric(self, name: str) -> float | None:
        """A finite metric value, or None when absent/non-finite."""
        value = self.metrics.get(name)
        return value if value is not None and math.isfinite(value) else None


def _number(value: Any) -> float | None:
    """A JSON number as it is (ints stay ints in the CSV), anything else → None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def parse_result(data: Mapping[str, Any]) -> RunOutcome:
    """Interpret a result.json document (metrics under ``metrics`` or at the top level)."""
    status = str(data.get("status", "succeeded")).lower()
    failed = status in {"failed", "error"}
    nested = data.get("metrics")
    source = nested if isinstance(nested, Mapping) else data
    metrics = {
        k: v for k, raw in source.items() if k not in NON_METRICS and (v := _number(raw)) is not None
    }
    accounting = {}
    for key in ACCOUNTING:
        raw = data.get(key, source.get(key) if isinstance(source, Mapping) else None)
        accounting[key] = _number(raw)
    error = data.get("error") or data.get("reason") or data.get("message")
    return RunOutcome(
        "failed" if failed else "succeeded", metrics, accounting,
        str(error) if failed and error else ("failed" if failed else None),
    )


def read_outcome(run_dir: Path) -> RunOutcome | None:
    """The outcome of a finished run; None while ``result.json`` is absent (not done)."""
    path = run_dir / RESULT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return RunOutcome("failed", error=f"unreadable {RESULT_FILE}: {err}")
    if not isinstance(data, Mapping):
        return RunOutcome("failed", error=f"{RESULT_FILE} is not a JSON object")
    return parse_result(data)


def read_error(run_dir: Path) -> str | None:
    """The recorded error of a run that exited without a result (None if none)."""
    try:
        return str(json.loads((run_dir / ERROR_FILE).read_text()).get("error"))
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None


def last_step(run_dir: Path) -> int | None:
    """Step of the last complete line of ``metrics.jsonl`` (reads only the file's tail)."""
    path = run_dir / METRICS_FILE
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            step = json.loads(line).get("step")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            continue
        if isinstance(step, int):
            return step
    return None


def result_rows(
    study: str, run: PlannedRun, outcome: RunOutcome, n_items: int | None = None
) -> list[dict[str, Any]]:
    """One results-table row per metric of a succeeded run (none for a failed one).

    ``n_items`` fills the column when result.json does not report it.
    """
    if outcome.status != "succeeded":
        return []
    base = {
        "study": study, "run": run.name, "algorithm": run.algorithm,
        "params_hash": run.params_hash, "scale": run.scale, "domain": run.domain,
        "seed": run.seed,
    }
    extra = {key: outcome.accounting.get(key) for key in ACCOUNTING}
    if extra["n_items"] is None:
        extra["n_items"] = n_items
    return [
        {**base, "metric": metric, "value": value, **extra}
        for metric, value in sorted(outcome.metrics.items())
    ]


def item_rows(study: str, run: PlannedRun, run_dir: Path) -> Iterator[dict[str, Any]]:
    """Per-item scores of a run on its own domain, keyed like the analysis' item file."""
    path = run_dir / ITEMS_FILE
    if not path.is_file():
        return
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("domain", run.domain) != run.domain:
                continue  # scored on another eval domain: not part of this cell
            yield {
                **item, "study": study, "run": run.name, "algorithm": run.algorithm,
                "scale": run.scale, "domain": run.domain, "seed": run.seed,
                "item_id": item.get("item_id", item.get("id")),
                "score": item.get("score", item.get("reward")),
            }


def atomic_write(path: Path, text: str) -> None:
    """Write-then-rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> int:
    """Write ``rows`` as CSV with ``columns`` (atomically); returns the row count."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
            count += 1
    os.replace(tmp, path)
    return count


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write JSON lines (atomically); returns the line count."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


@dataclass(frozen=True)
class Tables:
    """Counts of what :func:`write_tables` wrote."""

    results: int
    tuning: int
    items: int


def write_tables(out: Path, study: str, runs: Sequence[PlannedRun], run_dir: Any) -> Tables:
    """Write results.csv, tuning.csv and items.jsonl from the run directories.

    Args:
        out: the study output directory.
        study: study name (first column of the table).
        runs: every planned run; unfinished ones are skipped.
        run_dir: function PlannedRun → its run directory.
    """
    final_rows: list[dict[str, Any]] = []
    tuning_rows: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for run in runs:
        outcome = read_outcome(run_dir(run))
        if outcome is None:
            continue
        scored = list(item_rows(study, run, run_dir(run))) if outcome.status == "succeeded" else []
        rows = result_rows(study, run, outcome, len(scored) or None)
        if run.phase == "tune":
            tuning_rows.extend(rows)
        else:
            final_rows.extend(rows)
            items.extend(scored)
    return Tables(
        write_csv(out / "results.csv", final_rows, RESULT_COLUMNS),
        write_csv(out / "tuning.csv", tuning_rows, RESULT_COLUMNS),
        write_jsonl(out / "items.jsonl", items),
    )
