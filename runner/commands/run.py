"""`batchrun run`: drive each job until every input has a final outcome (or one pass)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import orjson

from runner import executor, log
from runner.commands import notify, outcomes, run_report, scratch
from runner.commands.display import Display, NoDisplay, for_terminal
from runner.commands.wiring import (
    Remote,
    StateWatch,
    api_errors,
    backend,
    open_job,
    patient,
    state_dir,
)
from runner.errors import BatchrunError
from runner.executor import Context, RunSummary
from runner.spec import JobSpec, load_job, siblings
from runner.spec.hints import no_inputs


def run_jobs(
    paths: tuple[Path, ...],
    no_wait: bool,
    root: Path | None,
    remote: Remote,
    *,
    as_json: bool = False,
    log_format: str = "auto",
) -> int:
    """`batchrun run`: print each job's outcome (or, with `as_json`, the run report); the
    worst exit code wins. A job another run holds is reported first, as it is found before
    the others start."""
    try:
        jobs = [load_job(p) for p in paths]
        siblings.refuse_shared((j.path, j.name, j.output.where) for j in jobs)
        results = run_results(jobs, no_wait, root, remote, display=for_terminal(log_format))
    except BatchrunError as exc:
        if as_json:  # cron still gets a document to read; the message goes to stderr too
            failed = {"exit_code": exc.exit_code, "error": log.mask(str(exc)), "jobs": []}
            print(orjson.dumps(failed, option=orjson.OPT_INDENT_2).decode())
        raise
    if as_json:
        print(orjson.dumps(run_report.report(results), option=orjson.OPT_INDENT_2).decode())
    else:
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
    display: Display | None = None,
    planned: Sequence[frozenset[str]] | None = None,
) -> list[outcomes.RunResult]:
    """Run jobs together, each at its own pace; one result per job, in order. Prints
    nothing but what `display` shows (nothing by default).

    With --emulate each job runs on a fresh scratch copy of its state and outputs
    (`runner.commands.scratch`): the emulator's canned answers never reach the real sink,
    and the real state never points at the emulator's vanished batches.
    `planned` (apply): per job, the custom_ids of its saved plan, the only ones submitted
    besides retries."""
    roots = [scratch.root(job, root) if remote.emulate else root for job in jobs]
    emulated = roots if remote.emulate else [None] * len(jobs)  # what each result names
    if remote.emulate:
        jobs = [scratch.scratch_job(job, root) for job in jobs]
    wheres = [state_dir(job, r) for job, r in zip(jobs, roots, strict=True)]
    shown: Display = display or NoDisplay()
    with api_errors(), backend(remote) as connected, contextlib.ExitStack() as stack:
        api = patient(connected, remote, no_wait)
        opened = [
            open_job(stack, job, api, where, remote.emulate, show_progress=False)
            for job, where in zip(jobs, wheres, strict=True)
        ]
        ctxs = [c for c in opened if c is not None]
        stack.enter_context(shown)
        for ctx in ctxs:
            _show(ctx, shown)
        narrowed = None
        if planned is not None:  # `apply`: each opened job submits its saved plan's requests
            narrowed = [ids for ids, c in zip(planned, opened, strict=True) if c is not None]
        watch = StateWatch((c.store.state_dir, c.job.path) for c in ctxs)  # all, not the first
        summaries = executor.run_many(ctxs, watch, no_wait, narrowed) if ctxs else []
        ended = iter(summaries)  # in the order of the opened jobs
        results = [
            _result(job, where, c, next(ended) if c else None, no_wait, scratch_root)
            for job, where, c, scratch_root in zip(jobs, wheres, opened, emulated, strict=True)
        ]
        return [_notify(r, c, remote.emulate) for r, c in zip(results, opened, strict=True)]


def _show(ctx: Context, display: Display) -> None:
    """Point the job's progress and pass hooks at the display."""
    name = ctx.job.name
    ctx.progress = lambda text: display.activity(name, text)
    ctx.on_pass = lambda wait: display.passed(name, ctx.store, wait)


def _result(
    job: JobSpec,
    where: Path,
    ctx: Context | None,
    summary: RunSummary | None,
    no_wait: bool,
    emulated: Path | None,
) -> outcomes.RunResult:
    """One job's outcome; no context means another run held its lock."""
    output = job.output.path or job.output.where
    if ctx is None or summary is None:
        return outcomes.RunResult(job.name, job.path, output, where, no_wait=no_wait)
    cost = outcomes.cost_report(ctx.store)
    first = zip(range(run_report.MAX_DEAD), ctx.store.iter_dead(), strict=False)
    dead = [outcomes.dead_letter_dict(d) for _, d in first]
    return outcomes.RunResult(
        job.name, job.path, output, where, summary, no_wait, cost,
        emulated=emulated,
        dead=tuple(dead),
        no_inputs=no_inputs(job) if not any(summary.counts.values()) else None,
    )  # fmt: skip


def _notify(r: outcomes.RunResult, ctx: Context | None, emulated: bool) -> outcomes.RunResult:
    """Send the job's due notifications (never for an emulated run: its results are not the
    job's); the result records what was sent."""
    spec = ctx.job.notify if ctx is not None else None
    if spec is None or ctx is None or emulated:
        return r
    store = ctx.store
    newest = max(store.batches(), key=lambda b: (b.created_at, b.id), default=None)
    dead_ids = [d.custom_id for d in store.iter_dead()]
    marks = notify.event_marks(r.finished, newest.id if newest else None, dead_ids)
    sent = notify.send(spec, ctx.job.base_dir, run_report.job_report(r), marks, store)
    return dataclasses.replace(r, notified=tuple(sent)) if sent else r
