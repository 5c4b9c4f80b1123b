"""`batchrun status`: each job's state, read without the lock and without any API call."""

from __future__ import annotations

from pathlib import Path

import orjson

from runner.commands import outcomes
from runner.commands.wiring import state_dir, state_ref
from runner.errors import ExitCode
from runner.spec import JobRef, JobSpec
from runner.store import Store


def status_jobs(paths: tuple[Path, ...], as_json: bool, root: Path | None) -> int:
    """`batchrun status`: read state only (no API call, no lock)."""
    reports = [status_report(state_ref(p), root) for p in paths]
    if as_json:
        print(orjson.dumps([r.as_dict() for r in reports], option=orjson.OPT_INDENT_2).decode())
    else:
        for r in reports:
            print(outcomes.format_status(r))
    return ExitCode.OK


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
