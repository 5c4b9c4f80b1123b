"""`batchrun cancel`: ask the API to cancel each job's in-flight batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from runner.commands import outcomes
from runner.commands.wiring import Remote, api_errors, backend, compiler, state_dir
from runner.errors import ExitCode
from runner.executor import Context
from runner.executor.cancel import cancel_job
from runner.sinks import open_sink
from runner.spec import JobSpec, load_job
from runner.store import Store


def cancel_jobs(paths: tuple[Path, ...], root: Path | None, remote: Remote) -> int:
    """`batchrun cancel`: each job's line as soon as its batches are asked to cancel."""
    for result in iter_cancel([load_job(p) for p in paths], root, remote):
        print(outcomes.format_cancel(result))
    return ExitCode.OK


def iter_cancel(
    jobs: Sequence[JobSpec], root: Path | None, remote: Remote
) -> Iterator[outcomes.CancelResult]:
    """Cancel each job's in-flight batches. No lock, so it works while a run is waiting."""
    with api_errors(), backend(remote) as api:
        for job in jobs:
            if not Store.exists(state_dir(job, root)):
                yield outcomes.CancelResult(job.name, None)
                continue
            store = Store.open(state_dir(job, root))
            sink = open_sink(job)  # Context needs one; cancel never writes to it
            try:
                ctx = Context(job=job, store=store, backend=api, sink=sink, compiler=compiler())
                asked = cancel_job(ctx)
            finally:
                sink.close()
                store.close()
            yield outcomes.CancelResult(job.name, tuple(asked))
