"""The Python API, for Airflow, Dagster or plain scripts: the CLI's behaviour as functions.

Each function does what the command of the same name does (same state folder, lock, sink,
retries and exit-code meaning, through the same code in runner.commands) and returns a value
instead of printing. Failures a user can act on raise `BatchrunError` subclasses with the
message the CLI would print; anything else is a bug. Nothing is written to stdout; logs go
through structlog (to the stdlib `logging` logger `batchrun.*` unless the host application
configured structlog itself).

    from runner import api

    job = api.load("jobs/survey.yaml")
    print(api.plan(job).counts.to_submit)
    result = api.run(job)
    if result.exit_code:
        raise SystemExit(result.exit_code)

Concurrency: the job's lock is per state folder and held by the kernel, so two runs of one
job, from two threads or two processes, never both submit: the second returns a result with
`already_running=True` at once. Different jobs may run in parallel threads.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner import log
from runner import plan as plan_
from runner.commands import cancel as cancel_cmd
from runner.commands import recover as recover_cmd
from runner.commands import run as run_cmd
from runner.commands import status as status_cmd
from runner.commands import wiring
from runner.commands.outcomes import CancelResult, RecoverResult, RunResult, StatusReport
from runner.compile.files import ChunkFile, write_compiled
from runner.errors import (
    BatchrunError,
    BudgetExceeded,
    Diagnostic,
    InputError,
    RemoteError,
    SpecError,
)
from runner.plan import Plan
from runner.spec import JobSpec, load_job

__all__ = [
    "BatchrunError",
    "BudgetExceeded",
    "CancelResult",
    "ChunkFile",
    "Diagnostic",
    "InputError",
    "JobSpec",
    "Plan",
    "RecoverResult",
    "RemoteError",
    "RunResult",
    "SpecError",
    "StatusReport",
    "cancel",
    "compile",
    "export",
    "load",
    "plan",
    "recover",
    "run",
    "status",
    "validate",
]

JobLike = JobSpec | str | os.PathLike[str]
"""A loaded job, or the path of its YAML file."""


def load(path: str | os.PathLike[str]) -> JobSpec:
    """Read and validate a job file. Raises `SpecError` carrying every diagnostic
    (`.diagnostics`, each with file, line, col, JSON path and message)."""
    return load_job(Path(path))


def validate(path: str | os.PathLike[str]) -> list[Diagnostic]:
    """`batchrun validate`: every problem of one job file, warnings included, in file order
    (records of a jsonl/csv job checked too); an empty list means the job is clean. Never
    raises for a bad job: a missing or unreadable file is a diagnostic like any other."""
    from runner.commands import validate as validate_cmd

    return validate_cmd.diagnostics(Path(path).absolute())


def compile(job: JobLike, out_dir: str | os.PathLike[str]) -> list[ChunkFile]:
    """`batchrun compile`: write the exact batch bodies (`chunk-0001.json`, ...) and
    `manifest.json` into `out_dir`, submitting nothing. Returns one `ChunkFile` per chunk
    (`requests`, `size`, ...). Named after the command, as every function here is."""
    return write_compiled(_job(job), Path(out_dir))


def export(
    job: JobLike,
    out: str | os.PathLike[str],
    *,
    fmt: str = "jsonl",
    state_dir: str | os.PathLike[str] | None = None,
) -> int:
    """`batchrun export --out`: the job's current results from its state, whatever its sink,
    written atomically to `out` as `jsonl` or `csv`. Returns how many results were written.
    Raises `BatchrunError` when the job has no state yet."""
    from runner.commands import export as export_cmd

    spec = _job(job)
    return export_cmd.export_to(
        spec, "csv" if fmt == "csv" else "jsonl", Path(out), _root(state_dir)
    )


def _job(job: JobLike) -> JobSpec:
    return job if isinstance(job, JobSpec) else load(job)


def _root(state_dir: str | os.PathLike[str] | None) -> Path | None:
    return Path(state_dir) if state_dir is not None else None


def plan(job: JobLike, *, state_dir: str | os.PathLike[str] | None = None) -> Plan:
    """What a run would submit now, with token and cost estimates (no API call, no lock).

    `state_dir` is the CLI's `--state-dir`: the job's state is `state_dir/<job name>/`
    (default `.batchrun/<job name>/` beside the job file). Unlike `batchrun plan`, an
    estimate over `budget.max_usd` does not raise: see `Plan.over_budget` (`run` refuses).
    """
    spec = _job(job)
    with wiring.read_state(spec, _root(state_dir)) as state:
        return plan_.plan_job(spec, state)


def run(
    job: JobLike,
    *,
    wait: bool = True,
    state_dir: str | os.PathLike[str] | None = None,
    emulate: bool = False,
    emulator_config: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
) -> RunResult:
    """`batchrun run`: submit what is missing, collect what ended, retry what failed.

    With `wait=False`, one reconcile pass (the cron mode). `api_key` and `base_url` go to the
    API client only (never into os.environ or a log); when None, the SDK's usual environment
    (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`) applies. `emulate=True` uses an in-process
    emulator and a scratch copy of the job's state and outputs (a dry run that never touches
    the real ones; `RunResult.emulated` is the scratch `state_dir` to read it with).

    Returns the job's `RunResult`; `.exit_code` is what the CLI would exit with (0, 1 for
    requests left canceled, 4 for dead letters). Raises `SpecError`, `BudgetExceeded`,
    `InputError`, `RemoteError` or another `BatchrunError` (lost state, API unavailable).
    """
    log.configure_for_library()
    config = Path(emulator_config) if emulator_config is not None else None
    remote = wiring.Remote(emulate, config, base_url=base_url, api_key=api_key)
    spec = _job(job)
    results = run_cmd.run_results([spec], not wait, _root(state_dir), remote, show_progress=False)
    return results[0]


def status(job: JobLike, *, state_dir: str | os.PathLike[str] | None = None) -> StatusReport:
    """`batchrun status`: the job's batches, request counts, cost so far and dead letters,
    from its state only (no API call, no lock; safe while a run is going)."""
    return status_cmd.status_report(_job(job), _root(state_dir))


def cancel(
    job: JobLike,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
) -> CancelResult:
    """`batchrun cancel`: ask the API to cancel the job's in-flight batches (works while a
    run is waiting; the next run resubmits what was canceled)."""
    log.configure_for_library()
    remote = wiring.Remote(base_url=base_url, api_key=api_key)
    [result] = cancel_cmd.iter_cancel([_job(job)], _root(state_dir), remote)
    return result


def recover(
    job: JobLike,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
) -> RecoverResult:
    """`batchrun recover`: rebuild a lost state from the workspace's batches (waits for
    those still processing). `locked=True` if a run holds the job."""
    log.configure_for_library()
    remote = wiring.Remote(base_url=base_url, api_key=api_key)
    [result] = recover_cmd.iter_recover([_job(job)], _root(state_dir), remote)
    return result
