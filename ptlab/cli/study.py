"""`ptlab study plan|run|report|sync`: plan and run a ComparisonStudy on this machine."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ptlab.api.load import load_study
from ptlab.cli.common import console, error_line
from ptlab.errors import UserError
from ptlab.study.executor import (
    ExecutorConfig,
    StudyFailed,
    StudyOutcome,
    analyze_study,
    default_parallel,
    finalize_tables,
    load_output_study,
    replan_from_disk,
    run_dir,
    run_study,
    write_study_report,
)
from ptlab.study.plan import StudyPlan, plan_study
from ptlab.study.results import atomic_write, read_outcome
from ptlab.study.tracking import StudyTracker, is_remote, sync_runs

app = typer.Typer(help="Plan, run, report and sync comparison studies.", no_args_is_help=True)

StudyFile = Annotated[Path, typer.Argument(help="ComparisonStudy YAML/JSON file.")]
OutDir = Annotated[Path, typer.Argument(help="Study output directory (of `ptlab study run`).")]


def print_plan(plan: StudyPlan) -> None:
    """Runs per phase and algorithm, cost, and the fairness decisions."""
    table = Table(title=f"study {plan.study}")
    for column in ("phase", "algorithm", "runs"):
        table.add_column(column)
    counts: dict[tuple[str, str], int] = {}
    for run in plan.runs:
        counts[(run.phase, run.algorithm)] = counts.get((run.phase, run.algorithm), 0) + 1
    for (phase, algorithm), n in sorted(counts.items()):
        table.add_row(phase, algorithm, str(n))
    console.print(table)
    cost = plan.cost
    flops = f"{cost.flops:.3g}" if cost.flops is not None else "unknown (scale labels give no size)"
    console.print(
        f"runs: {cost.runs} now ({cost.tune_runs} tuning, {cost.final_runs} final), "
        f"at most {cost.max_runs}; train tokens ≤ {cost.train_tokens:.3g}; FLOPs ≈ {flops}",
        markup=False,
    )
    if plan.waiting:
        console.print(f"final runs of {len(plan.waiting)} group(s) follow their tuning trials",
                      markup=False)
    for d in plan.decisions:
        console.print(f"- [{d.kind}] {d.subject}: {d.detail}", markup=False)


def print_recommendations(analysis: Any) -> None:
    """The recommendation per (scale, domain)."""
    table = Table(title=f"recommendation ({analysis.metric})")
    for column in ("scale", "domain", "best", "p_best", "min detectable effect"):
        table.add_column(column)
    for rec in analysis.to_json()["recommendations"]:
        p_best, mde = rec.get("p_best"), rec.get("min_detectable_effect")
        table.add_row(
            str(rec["scale"]), str(rec["domain"]), ", ".join(rec.get("best") or []),
            "-" if p_best is None else f"{p_best:.2f}", "-" if mde is None else f"{mde:.3g}",
        )
    console.print(table)


def mlflow_hint(uri: str) -> str:
    """How to look at the study in MLflow."""
    return f"open {uri}" if is_remote(uri) else f"mlflow ui --backend-store-uri {uri}"


@app.command("plan")
def plan_cmd(
    file: StudyFile,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Print the runs, budget, fairness decisions and estimated cost, without running."""
    plan = plan_study(load_study(file))
    if as_json:
        typer.echo(json.dumps(plan.to_json(), indent=1, sort_keys=True))
    else:
        print_plan(plan)


@app.command("run")
def run_cmd(
    file: StudyFile,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory [ptlab-out/NAME].")] = None,
    parallel: Annotated[int, typer.Option("--parallel", "-j", help="Runs at a time [CPU cores].")] = 0,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed run.")] = False,
    mlflow_uri: Annotated[str | None, typer.Option("--mlflow-uri", help="MLflow tracking URI.")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not track in MLflow.")] = False,
    entrypoint: Annotated[str | None, typer.Option("--entrypoint", hidden=True)] = None,
) -> None:
    """Run every run of the study (resumable), then write results.csv, analysis and report."""
    study = load_study(file)
    cfg = ExecutorConfig(
        out=out or Path("ptlab-out") / study.metadata.name,
        parallel=parallel or default_parallel(),
        fail_fast=fail_fast,
        mlflow_uri="" if no_mlflow else mlflow_uri,
        entrypoint=shlex.split(entrypoint) if entrypoint else None,
    )
    try:
        done = run_study(study, cfg, console)
    except StudyFailed as err:
        error_line(f"{err}; finished results are kept, rerun to resume")
        raise typer.Exit(1) from None
    summarize(done)
    if done.failed:
        raise typer.Exit(1)


def summarize(done: StudyOutcome) -> None:
    """Counts, recommendation table, report path and the MLflow line."""
    console.print(f"{len(done.succeeded)} run(s) succeeded, {len(done.failed)} failed; "
                  f"results: {done.out / 'results.csv'}", markup=False)
    for name, error in sorted(done.failed.items()):
        console.print(f"failed: {name}: {error}", markup=False)
    if done.analysis is not None:
        print_recommendations(done.analysis)
    elif done.analysis_note:
        console.print(done.analysis_note, markup=False)
    if done.report is not None:
        console.print(f"report: {done.report}", markup=False)
    if done.mlflow_uri:
        if done.mlflow_error:
            console.print(f"MLflow unreachable ({done.mlflow_error}); upload later with "
                          f"`ptlab study sync {done.out}`", markup=False)
        console.print(mlflow_hint(done.mlflow_uri), markup=False)


@app.command("report")
def report_cmd(directory: OutDir) -> None:
    """Re-analyse a study directory: analysis.json, report.html and PNGs."""
    study = load_output_study(directory)
    plan = replan_from_disk(study, directory)
    done = StudyOutcome(directory, plan, [], [], {}, [])
    finalize_tables(done, plan, directory)
    assert done.tables is not None
    analysis, note = analyze_study(study, directory, done.tables)
    if analysis is None:
        raise UserError(f"{directory}: {note}")
    atomic_write(directory / "analysis.json", json.dumps(analysis.to_json(), indent=1, sort_keys=True))
    report = write_study_report(analysis, directory / "report")
    print_recommendations(analysis)
    console.print(f"report: {report}", markup=False)


@app.command("sync")
def sync_cmd(
    directory: OutDir,
    mlflow_uri: Annotated[str | None, typer.Option("--mlflow-uri", help="MLflow tracking URI.")] = None,
) -> None:
    """Upload a study directory to MLflow; runs already there are not uploaded again."""
    study = load_output_study(directory)
    plan = replan_from_disk(study, directory)
    uri = mlflow_uri or study.spec.template.tracking.mlflow_uri
    uri = uri or f"sqlite:///{(directory / 'mlflow.db').resolve()}"
    tracker = StudyTracker(uri, study.spec.template.tracking.experiment)
    if not tracker.online:
        raise UserError(f"MLflow at {uri} is unreachable: {tracker.error}", "start it or pass --mlflow-uri")
    finished = {}
    for run in plan.runs:
        outcome = read_outcome(run_dir(directory, run))
        if outcome is not None:
            finished[run.name] = (run, outcome, run_dir(directory, run))
    artifacts = [directory / "analysis.json", directory / "plan.json", directory / "results.csv",
                 directory / "report"]
    parent, logged = sync_runs(tracker, plan, finished, artifacts)
    if parent is None:
        raise UserError(f"MLflow sync failed: {tracker.error}", "rerun `ptlab study sync` later")
    console.print(f"synced {logged} run(s) of {plan.study} to {uri} (parent run {parent})", markup=False)
    console.print(mlflow_hint(uri), markup=False)
