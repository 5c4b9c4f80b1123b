"""`batchrun run`: drive each job until every input has a final outcome (or one pass)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner import executor
from runner.commands import outcomes
from runner.commands.wiring import Remote, api_errors, backend, open_job, state_dir
from runner.executor import Context, RunSummary
from runner.spec import JobSpec, load_job

if TYPE_CHECKING:
    pass  # the SDK: imported only when the API is called


def run_jobs(paths: tuple[Path, ...], no_wait: bool, root: Path | None, remote: Remote) -> int:
    """`batchrun run`: print each job's outcome; the worst exit code wins. A job another run
    holds is reported first, as it is found before the others start."""
    results = run_results([load_job(p) for p in paths], no_wait, root, remote)
    for r in sorted(results, key=lambda r: not r.already_running):
        print("\n".join(outcomes.format_run(r)))
    return max(r.exit_code for r in results)


def run_results(
    jobs: Sequence[JobSpec],
    no_wait: bool,
    root: Path | None,
    remote: Remote,
    *,
    show_progress: bool = True,
    planned: Sequence[frozenset[str]] | None = None,
) -> list[outcomes.RunResult]:
    """Run jobs together, each at its own pace; one result per job, in order. Prints
    nothing (a progress line on a terminal's stderr if `show_progress`).
    With --emulate and no --state-dir the state is a temporary folder: the emulator's
    batches vanish with this command, so a kept state would point at batches no API knows.
    `planned` (apply): per job, the custom_ids of its saved plan, the only ones submitted
    besides retries."""
    with api_errors(), backend(remote) as api, contextlib.ExitStack() as stack:
        if remote.emulate and root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchrun-")))
        opened = [
            open_job(stack, job, api, state_dir(job, root), remote.emulate, show_progress)
            for job in jobs
        ]
        ctxs = [c for c in opened if c is not None]
        narrowed = None
        if planned is not None:  # `apply`: each opened job submits its saved plan's requests
            narrowed = [ids for ids, c in zip(planned, opened, strict=True) if c is not None]
        summaries = executor.run_many(ctxs, ctxs[0].clock, no_wait, narrowed) if ctxs else []
        if ctxs:
            ctxs[0].progress("")
        ended = iter(summaries)  # in the order of the opened jobs
        return [
            _result(job, state_dir(job, root), c, next(ended) if c else None, no_wait)
            for job, c in zip(jobs, opened, strict=True)
        ]


def _result(
    job: JobSpec,
    where: Path,
    ctx: Context | None,
    summary: RunSummary | None,
    no_wait: bool,
) -> outcomes.RunResult:
    """One job's outcome; no context means another run held its lock."""
    output = job.output.path or job.output.where
    if ctx is None or summary is None:
        return outcomes.RunResult(job.name, job.path, output, where, no_wait=no_wait)
    cost = outcomes.cost_report(ctx.store)
    return outcomes.RunResult(job.name, job.path, output, where, summary, no_wait, cost)
