"""Local executor: run a study's training runs as subprocesses, N at a time.

Each run is ``ptlab train <run_dir>/run.json --out <run_dir>`` — the command the cluster pod
runs — in ``<out>/runs/<name>/``. Resumable by construction: a run whose ``result.json``
exists is done and skipped; an unfinished one is started again and resumes from its
checkpoint. Ctrl-C terminates the children (they resume next time) and keeps every finished
result. Children die with the executor (``PR_SET_PDEATHSIG``), so a killed executor never
leaves a trainer writing into a run directory that the next invocation also starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ptlab.api.load import dump_json
from ptlab.api.models import ComparisonStudy, PostTrainingRun
from ptlab.errors import UserError
from ptlab.study.plan import Decision, Observations, PlannedRun, StudyPlan, extend_seeds, plan_study
from ptlab.study.results import (
    ERROR_FILE,
    RUN_FILE,
    RunOutcome,
    Tables,
    atomic_write,
    last_step,
    read_error,
    read_outcome,
    write_tables,
)
from ptlab.study.tracking import StudyTracker, trainer_uri

TERM_GRACE_S = 10.0
STUDY_FILE = "study.json"
PLAN_FILE = "plan.json"


def default_parallel() -> int:
    """CPU cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def train_command() -> list[str]:
    """The trainer entrypoint, as the pod runs it (``ptlab train``) with this interpreter."""
    return [sys.executable, "-m", "ptlab.cli.main", "train"]


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the executor dies (Linux prctl)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class StudyFailed(Exception):
    """A run failed under ``--fail-fast``."""


@dataclass
class ExecutorConfig:
    """How a study runs locally.

    Attributes:
        out: study output directory (run directories, tables, analysis, report).
        parallel: runs at a time.
        fail_fast: stop at the first failed run instead of recording it and carrying on.
        mlflow_uri: tracking URI; None = the study's ``template.tracking.mlflow_uri``, or a
            sqlite store in ``out``; "" disables MLflow.
        entrypoint: command prefix replacing ``ptlab train`` (tests only).
        poll_s: how often children and progress are checked.
    """

    out: Path
    parallel: int = field(default_factory=default_parallel)
    fail_fast: bool = False
    mlflow_uri: str | None = None
    entrypoint: Sequence[str] | None = None
    poll_s: float = 0.25


@dataclass
class StudyOutcome:
    """What :func:`run_study` did."""

    out: Path
    plan: StudyPlan
    decisions: list[Decision]
    succeeded: list[str]
    failed: dict[str, str]
    executed: list[str]
    tables: Tables | None = None
    analysis: Any = None
    analysis_note: str | None = None
    report: Path | None = None
    mlflow_uri: str | None = None
    mlflow_error: str | None = None
    parent_run_id: str | None = None


def run_dir(out: Path, run: PlannedRun) -> Path:
    return out / "runs" / run.name


def write_run_file(out: Path, study: str, run: PlannedRun) -> Path:
    """Write the run's PostTrainingRun to ``run.json`` (unchanged content → untouched)."""
    directory = run_dir(out, run)
    directory.mkdir(parents=True, exist_ok=True)
    text = dump_json(PostTrainingRun.model_validate(run.manifest(study)))
    path = directory / RUN_FILE
    if not path.is_file() or path.read_text() != text:
        atomic_write(path, text)
    return path


@dataclass
class _Running:
    run: PlannedRun
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float
    task: TaskID


class Pool:
    """Runs planned runs as subprocesses, at most ``parallel`` at once, with a progress bar."""

    def __init__(self, cfg: ExecutorConfig, study: str, console: Console, progress: Progress,
                 on_finish: Callable[[PlannedRun, RunOutcome], None]) -> None:
        self.cfg, self.study, self.console, self.progress = cfg, study, console, progress
        self.on_finish = on_finish
        self.running: dict[str, _Running] = {}
        self.overall = progress.add_task("runs", total=0)

    def launch(self, run: PlannedRun) -> None:
        directory = run_dir(self.cfg.out, run)
        spec_path = write_run_file(self.cfg.out, self.study, run)
        (directory / ERROR_FILE).unlink(missing_ok=True)
        prefix = list(self.cfg.entrypoint) if self.cfg.entrypoint else train_command()
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, default_parallel() // self.cfg.parallel)))
        env["PYTHONUNBUFFERED"] = "1"
        log = (directory / "log.txt").open("ab")
        proc = subprocess.Popen(
            [*prefix, str(spec_path), "--out", str(directory)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        total = run.spec.training.budget.steps
        task = self.progress.add_task(f"  {run.name}", total=total, start=True)
        self.running[run.name] = _Running(run, proc, log, time.monotonic(), task)

    def reap(self) -> None:
        """Collect finished children; update step progress of the others."""
        for name, item in list(self.running.items()):
            code = item.proc.poll()
            directory = run_dir(self.cfg.out, item.run)
            if code is None:
                step = last_step(directory)
                if step is not None:
                    self.progress.update(item.task, completed=step)
                continue
            item.log.close()
            self.progress.remove_task(item.task)
            del self.running[name]
            outcome = read_outcome(directory)
            if outcome is None:
                error = f"exit code {code}: {tail(directory / 'log.txt')}"
                atomic_write(directory / ERROR_FILE, json.dumps({"error": error, "exit_code": code}))
                outcome = RunOutcome("failed", error=error)
            self.progress.advance(self.overall)
            self.on_finish(item.run, outcome)

    def execute(self, runs: Sequence[PlannedRun], stop: Callable[[], bool]) -> None:
        """Run ``runs`` to completion (or until ``stop()``), ``parallel`` at a time."""
        queue = list(runs)
        self.progress.update(self.overall, total=(self.progress.tasks[0].total or 0) + len(queue))
        while queue or self.running:
            while queue and len(self.running) < self.cfg.parallel and not stop():
                self.launch(queue.pop(0))
            if stop() and not self.running:
                break
            time.sleep(self.cfg.poll_s)
            self.reap()

    def terminate(self) -> None:
        """SIGTERM every child's process group, SIGKILL after a grace period."""
        for item in self.running.values():
            _signal_group(item.proc, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        for item in self.running.values():
            try:
                item.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(item.proc, signal.SIGKILL)
                item.proc.wait()
            item.log.close()
        self.running.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def tail(path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log, joined on one line."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no output"
    return " | ".join(line.strip() for line in text[-lines:]) or "no output"


def study_metric(study: ComparisonStudy) -> str:
    return study.spec.analysis.metric


def finished_line(run: PlannedRun, outcome: RunOutcome, metric: str) -> str:
    """One console line for a finished run."""
    if outcome.status == "failed":
        return f"[red]✗[/red] {run.name} failed: {outcome.error}"
    value = outcome.metric(metric)
    split = "validation " if run.phase == "tune" else ""
    shown = f"{split}{metric}={value:.4f}" if value is not None else f"no {metric!r} in result.json"
    wall = outcome.accounting.get("wall_s")
    return f"[green]✓[/green] {run.name} {shown}" + (f" ({wall:.1f} s)" if wall else "")


def resolve_mlflow_uri(study: ComparisonStudy, cfg: ExecutorConfig) -> str | None:
    """The tracking URI (None = disabled): option, then the study's template, then sqlite."""
    if cfg.mlflow_uri == "":
        return None
    uri = cfg.mlflow_uri or study.spec.template.tracking.mlflow_uri
    return uri or f"sqlite:///{(cfg.out / 'mlflow.db').resolve()}"


def build_zoo_models(study: ComparisonStudy, console: Console) -> None:
    """Pretrain the study's ``zoo/<scale>`` models up front, one at a time on all cores (a cache
    hit is instant), so that runs never build a model while other runs train beside it."""
    zoo = [s.model.name for s in study.spec.scales if (s.model.name or "").startswith("zoo/")]
    if not zoo:
        return
    from ptlab.trainer.zoo import ensure_model

    for name in zoo:
        start = time.perf_counter()
        path = ensure_model(name.removeprefix("zoo/"))
        console.print(f"model {name}: {path} ({time.perf_counter() - start:.0f} s)")


def run_study(study: ComparisonStudy, cfg: ExecutorConfig, console: Console | None = None) -> StudyOutcome:
    """Plan and run every run of ``study``, then tabulate, analyse, report and track it."""
    console = console or Console()
    if cfg.parallel < 1:
        raise UserError(f"--parallel {cfg.parallel} must be >= 1")
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write(cfg.out / STUDY_FILE, dump_json(study))
    name, metric = study.metadata.name, study_metric(study)
    uri = resolve_mlflow_uri(study, cfg)
    tracker = StudyTracker(uri, study.spec.template.tracking.experiment) if uri else None
    if tracker and not tracker.online:
        console.print(f"[yellow]MLflow unreachable at {uri} ({tracker.error}): results stay on "
                      f"disk; upload later with `ptlab study sync {cfg.out}`[/yellow]")
    build_zoo_models(study, console)
    observed = Observations()
    plan = plan_study(study, observed)
    parent = tracker.parent(plan) if tracker else None
    done = StudyOutcome(cfg.out, plan, [], [], {}, [], mlflow_uri=uri)
    attempted: set[str] = set()
    failed_now: list[str] = []

    def on_finish(run: PlannedRun, outcome: RunOutcome) -> None:
        console.print(finished_line(run, outcome, metric))
        if outcome.status == "failed":
            failed_now.append(run.name)
        if tracker:
            tracker.log_run(parent, name, run, outcome, run_dir(cfg.out, run))

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        pool = Pool(cfg, name, console, progress, on_finish)
        try:
            while True:
                todo = [r for r in plan.runs if r.name not in attempted
                        and read_outcome(run_dir(cfg.out, r)) is None]
                progress.update(pool.overall, total=len(plan.runs),
                                completed=len(plan.runs) - len(todo))
                for run in todo:
                    attempted.add(run.name)
                    done.executed.append(run.name)
                    if tracker and parent and trainer_uri(run) == uri:
                        # the trainer logs to the same server: it streams into this child
                        tracker.start_child(parent, name, run, run_dir(cfg.out, run))
                pool.execute(todo, stop=lambda: cfg.fail_fast and bool(failed_now))
                if cfg.fail_fast and failed_now:
                    raise StudyFailed(f"run {failed_now[0]} failed (--fail-fast)")
                observed, more = next_observations(study, plan, observed, cfg.out, done.decisions)
                new_plan = plan_study(study, observed)
                grew = {r.name for r in new_plan.runs} - {r.name for r in plan.runs}
                plan = new_plan
                if not grew and not more:
                    break
        except (KeyboardInterrupt, StudyFailed):
            pool.terminate()
            finalize_tables(done, plan, cfg.out)
            raise
    done.plan = plan
    finalize(done, study, cfg.out, tracker, parent, console)
    return done


def validation_scores(plan: StudyPlan, out: Path, metric: str) -> dict[str, float | None]:
    """Validation metric of every finished tuning run (None when it failed)."""
    scores: dict[str, float | None] = {}
    for run in plan.phase("tune"):
        outcome = read_outcome(run_dir(out, run))
        if outcome is None:
            if read_error(run_dir(out, run)) is not None:
                scores[run.spec_hash] = None
            continue
        scores[run.spec_hash] = outcome.metric(metric) if outcome.status == "succeeded" else None
    return scores


def next_observations(
    study: ComparisonStudy, plan: StudyPlan, observed: Observations, out: Path,
    decisions: list[Decision],
) -> tuple[Observations, bool]:
    """Fold in tuning scores; once the plan is complete, one sequential-seed round.

    Returns the new observations and whether sequential seeds were added.
    """
    scores = validation_scores(plan, out, study_metric(study))
    if not plan.complete or study.spec.seeds.sequential is None:
        return Observations(scores, observed.seeds), False
    tables = write_tables(out, study.metadata.name, plan.runs, lambda r: run_dir(out, r))
    analysis, _ = analyze_study(study, out, tables)
    if analysis is None:
        return Observations(scores, observed.seeds), False
    initial = len(study.spec.seeds.values())
    seeds, round_decisions = extend_seeds(study, analysis.recommendations, observed.seeds)
    decisions.extend(round_decisions)
    grew = any(count > observed.seeds.get(cell, initial) for cell, count in seeds.items())
    return Observations(scores, seeds), grew


def analyze_study(study: ComparisonStudy, out: Path, tables: Tables) -> tuple[Any, str | None]:
    """Analyse results.csv (+ items.jsonl): (result, None) or (None, why it was skipped)."""
    import pandas as pd

    from ptlab.analysis import analyze

    if tables.results == 0:
        return None, "no finished final run: nothing to analyse"
    table = pd.read_csv(out / "results.csv")
    items = pd.read_json(out / "items.jsonl", lines=True) if tables.items else None
    a = study.spec.analysis
    try:
        result = analyze(table, metric=a.metric, alpha=a.alpha, margin=a.equivalence_margin,
                         n_boot=a.bootstrap, seed=0, items=items)
    except UserError as err:
        return None, f"analysis skipped: {err}"
    return result, None


def finalize_tables(done: StudyOutcome, plan: StudyPlan, out: Path) -> None:
    """Write results.csv / tuning.csv / items.jsonl and plan.json with run statuses."""
    done.tables = write_tables(out, plan.study, plan.runs, lambda r: run_dir(out, r))
    statuses: dict[str, dict[str, Any]] = {}
    for run in plan.runs:
        directory = run_dir(out, run)
        outcome = read_outcome(directory)
        error = outcome.error if outcome else read_error(directory)
        status = outcome.status if outcome else ("failed" if error else "pending")
        statuses[run.name] = {"status": status, **({"error": error} if error else {})}
        if status == "succeeded":
            done.succeeded.append(run.name)
        elif status == "failed":
            done.failed[run.name] = str(error)
    document = plan.to_json()
    document["decisions"] += [d.to_json() for d in done.decisions]
    for record in document["runs"]:
        record.update(statuses[record["name"]])
    atomic_write(out / PLAN_FILE, json.dumps(document, indent=1, sort_keys=True))


def finalize(done: StudyOutcome, study: ComparisonStudy, out: Path, tracker: StudyTracker | None,
             parent: str | None, console: Console) -> None:
    """Tables, analysis + report, MLflow parent artifacts."""
    finalize_tables(done, done.plan, out)
    done.analysis_note = write_analysis(done, study, out)
    if tracker:
        artifacts = [out / "analysis.json", out / PLAN_FILE, out / "results.csv"]
        if done.report is not None:
            artifacts.append(done.report.parent)
        tracker.finish_parent(parent, artifacts, failed=bool(done.failed))
        done.parent_run_id, done.mlflow_error = parent, tracker.error


def write_analysis(done: StudyOutcome, study: ComparisonStudy, out: Path) -> str | None:
    """analysis.json and the report; returns why it was skipped (None when written)."""
    assert done.tables is not None
    result, note = analyze_study(study, out, done.tables)
    if result is None:
        return note
    done.analysis = result
    atomic_write(out / "analysis.json", json.dumps(result.to_json(), indent=1, sort_keys=True))
    done.report = write_study_report(result, out / "report")
    return None


def write_study_report(result: Any, directory: Path) -> Path:
    """The analysis report (report.html + PNGs) in ``directory``."""
    from ptlab.analysis import write_report

    return Path(write_report(result, directory))


def load_output_study(out: Path) -> ComparisonStudy:
    """The study a ``ptlab study run`` output directory was made from."""
    from ptlab.api.load import load_study

    path = out / STUDY_FILE
    if not path.is_file():
        raise UserError(f"{out} is not a study directory (no {STUDY_FILE})",
                        "pass the --out directory of `ptlab study run`")
    return load_study(path)


def recorded_seeds(out: Path) -> dict[tuple[str, str], int]:
    """Seeds per (scale, domain) cell recorded in ``plan.json`` (sequential extensions)."""
    try:
        runs = json.loads((out / PLAN_FILE).read_text())["runs"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}
    seeds: dict[tuple[str, str], set[int]] = {}
    for run in runs:
        if run.get("phase") == "final":
            seeds.setdefault((run["scale"], run["domain"]), set()).add(int(run["seed"]))
    return {cell: len(values) for cell, values in seeds.items()}


def replan_from_disk(study: ComparisonStudy, out: Path) -> StudyPlan:
    """The plan as far as the run directories in ``out`` got (tuning choices, seeds)."""
    seeds = recorded_seeds(out)
    plan = plan_study(study, Observations({}, seeds))
    while True:
        scores = validation_scores(plan, out, study_metric(study))
        again = plan_study(study, Observations(scores, seeds))
        if {r.name for r in again.runs} == {r.name for r in plan.runs}:
            return again
        plan = again
