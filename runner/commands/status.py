"""`batchrun status`: each job's state, read without the lock and without any API call."""

from __future__ import annotations

from pathlib import Path

import orjson

from runner.commands import outcomes, scratch
from runner.commands.wiring import state_dir, state_ref
from runner.errors import ExitCode
from runner.spec import JobRef, JobSpec
from runner.spec.hints import shown
from runner.store import Store


def status_jobs(paths: tuple[Path, ...], as_json: bool, root: Path | None) -> int:
    """`batchrun status`: read state only (no API call, no lock)."""
    jobs = [state_ref(p) for p in paths]
    reports = [status_report(job, root) for job in jobs]
    if as_json:
        print(orjson.dumps([r.as_dict() for r in reports], option=orjson.OPT_INDENT_2).decode())
    else:
        for job, r in zip(jobs, reports, strict=True):
            print(outcomes.format_status(r))
            if r.never_run:
                _emulated_hint(job, root)
    return ExitCode.OK


def _emulated_hint(job: JobRef, root: Path | None) -> None:
    """A job that only ran emulated has its state in the scratch copy: say where."""
    where = scratch.root(job, root)
    if Store.exists(where / job.name):
        print(
            f"  (an emulated run left its scratch copy: `batchrun status --state-dir "
            f"{shown(where)} {shown(job.path)}`)"
        )


def status_report(job: JobSpec | JobRef, root: Path | None) -> outcomes.StatusReport:
    """The job's state as `status` shows it; `never_run` if it has none."""
    where = state_dir(job, root)
    if not Store.exists(where):
        return outcomes.StatusReport(job.name, never_run=True)
    store = Store.open(where)
    try:
        return outcomes.status_report(job.name, store)
    finally:
        store.close()
