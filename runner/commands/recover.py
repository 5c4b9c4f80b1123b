"""`batchrun recover`: rebuild each job's lost state from the workspace's batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.commands import outcomes
from runner.commands.wiring import Remote, api_errors, backend, make_context, state_dir
from runner.errors import ExitCode
from runner.executor import recover
from runner.spec import JobSpec, load_job
from runner.store import LockHeld, Store

if TYPE_CHECKING:
    from runner.backend.sdk import Backend  # the SDK: imported only when the API is called


def recover_jobs(paths: tuple[Path, ...], root: Path | None, remote: Remote) -> int:
    """`batchrun recover`: each job's line as soon as it is rebuilt."""
    for result in iter_recover([load_job(p) for p in paths], root, remote):
        print(outcomes.format_recover(result))
    return ExitCode.OK


def iter_recover(
    jobs: Sequence[JobSpec], root: Path | None, remote: Remote
) -> Iterator[outcomes.RecoverResult]:
    """Rebuild each job's lost state from the workspace's batches, under the job's lock."""
    with api_errors(), backend(remote) as api:
        for job in jobs:
            yield _recover_one(job, api, state_dir(job, root))


def _recover_one(job: JobSpec, api: Backend, where: Path) -> outcomes.RecoverResult:
    store = Store.open(where)
    try:
        try:
            store.lock()
        except LockHeld:
            return outcomes.RecoverResult(job.name, locked=True)
        ctx = make_context(job, store, api)
        try:
            adopted = recover.recover(ctx)
            store.clear_meta("lost_state")
        finally:
            ctx.sink.close()
        return outcomes.RecoverResult(job.name, adopted, store.status_counts())
    finally:
        store.close()
