"""The bodies of `run`, `status`, `cancel` and `recover`: build the pieces, call one
function, return an exit code. cli.py only parses options and calls these."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runner import executor, recover, report
from runner.backend import Backend, Retryable
from runner.context import BudgetCheck, Compiler, Context, Pricer
from runner.errors import BatchrunError
from runner.records import RequestState
from runner.sinks import open_sink
from runner.spec import JobSpec, load_job
from runner.store import LockHeld, Store, default_state_dir

EXIT_OK, EXIT_ERROR, EXIT_DEAD_LETTERS = 0, 1, 4


@dataclass(frozen=True)
class Remote:
    """Where the API is: the usual environment, or an emulator for this command only."""

    emulate: bool = False
    emulator_config: Path | None = None


def state_dir(job: JobSpec, root: Path | None) -> Path:
    """`.batchrun/<job>/` beside the job file, or `<root>/<job>/` with --state-dir."""
    return root / job.name if root else default_state_dir(job.path, job.name)


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """The API stayed unavailable through every retry: a clean error, state is intact."""
    try:
        yield
    except Retryable as exc:
        raise BatchrunError(f"the API is unavailable ({exc}); state is saved: run again") from None


@contextlib.contextmanager
def backend(remote: Remote) -> Iterator[Backend]:
    """The API client; with --emulate an in-process emulator that lives for this command
    only (its batches are gone afterwards: --emulate is for demos and dry runs)."""
    if not remote.emulate:
        yield Backend.connect()
        return
    from runner import emulator

    with emulator.start(config=remote.emulator_config) as emu:
        yield Backend.connect(emu.base_url, emulated=True)


def compiler() -> Compiler:
    # Imported here, not at the top: status and cancel never need the compile stack.
    from runner import compile as compile_

    return compile_


def pricer(job: JobSpec) -> Pricer:
    from runner import pricing

    def price(model: str, usage: Mapping[str, Any]) -> tuple[float | None, float | None]:
        prices = pricing.price_for(model, job.pricing)
        if prices is None:
            return None, None
        batch = pricing.cost_usd(usage, prices, batch=True, model=model)
        return batch, pricing.cost_usd(usage, prices, batch=False, model=model)

    return price


def _progress() -> Callable[[str], None]:
    """A one-line status on a terminal (compile, submit, poll counts, collect). The cursor
    goes back to the line start, so the next log line simply writes over it."""
    if not sys.stderr.isatty():
        return lambda _text: None
    width = shutil.get_terminal_size().columns - 1

    def show(text: str) -> None:
        sys.stderr.write(f"\033[K{text[:width]}\r")
        sys.stderr.flush()

    return show


def budget_check(store: Store) -> BudgetCheck:
    """The job's budget, checked once per command against the plan of what is to submit."""
    checked = False

    def check(job: JobSpec, custom_ids: set[str]) -> None:
        nonlocal checked
        if checked or job.budget_usd is None:
            return
        from runner import plan

        states = {s.custom_id: s for s in store.iter_states()}
        plan.check_budget(plan.make_plan(job, states))
        checked = True

    return check


def _context(job: JobSpec, store: Store, api: Backend) -> Context:
    return Context(
        job=job,
        store=store,
        backend=api,
        sink=open_sink(job),
        compiler=compiler(),
        price=pricer(job),
        check_budget=budget_check(store),
        progress=_progress(),
    )


def run_jobs(paths: tuple[Path, ...], no_wait: bool, root: Path | None, remote: Remote) -> int:
    """`batchrun run`: all jobs at once, each at its own pace; the worst exit code wins.
    With --emulate and no --state-dir the state is a temporary folder: the emulator's
    batches vanish with this command, so a kept state would point at batches no API knows."""
    jobs = [load_job(p) for p in paths]
    with _api_errors(), backend(remote) as api, contextlib.ExitStack() as stack:
        if remote.emulate and root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchrun-")))
        ctxs = [
            ctx
            for job in jobs
            if (ctx := _open_job(stack, job, api, state_dir(job, root), remote.emulate))
        ]
        if not ctxs:
            return EXIT_OK
        summaries = executor.run_many(ctxs, ctxs[0].clock, no_wait=no_wait)
        ctxs[0].progress("")
        codes = [
            _summarize(c.job, c.store, s, no_wait) for c, s in zip(ctxs, summaries, strict=True)
        ]
    return max(codes)


def _open_job(
    stack: contextlib.ExitStack, job: JobSpec, api: Backend, where: Path, emulated: bool
) -> Context | None:
    """The job's locked state and open sink, closed by `stack`; None if another run holds
    the job (it says so: nothing is submitted twice)."""
    store = Store.open(where)
    stack.callback(store.close)
    try:
        store.lock()
    except LockHeld:
        print(f"{job.name}: already running (lock held in {where}); nothing submitted")
        return None
    if not emulated:
        _refuse_lost_state(job, store)
    if not job.output.path.exists() and store.has_results():
        store.mark_all_unwritten()  # the output was removed: rebuild it from state
    ctx = _context(job, store, api)
    stack.callback(ctx.sink.close)
    return ctx


def _refuse_lost_state(job: JobSpec, store: Store) -> None:
    """A new state beside an existing output means the state was lost: running now would
    pay for every result again. `recover` rebuilds it from the API instead."""
    out = job.output.path
    has_output = out.exists() and (out.is_dir() or out.stat().st_size > 0)
    if store.created and has_output:
        store.set_meta("lost_state", "1")
    if not has_output:  # removed meanwhile: starting over is what the user chose
        store.clear_meta("lost_state")
    if store.get_meta("lost_state"):
        raise BatchrunError(
            f"{job.name}: no state in {store.state_dir} but {out} exists: the state was "
            f"lost. Run `batchrun recover {job.path}` first (or remove the output to redo all)"
        )


def _summarize(job: JobSpec, store: Store, summary: executor.RunSummary, no_wait: bool) -> int:
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.counts.items()) if v)
    print(f"{job.name}: {counts or 'no requests'}")
    n = summary.batches_submitted
    print(f"  submitted {summary.requests_submitted} requests in {n} batch{'es' * (n != 1)} "
          f"this run; results in {job.output.path}")  # fmt: skip
    for line in report.format_cost(report.cost_report(store)):
        print(f"  {line}")
    if not summary.finished:
        print("  not finished: run again to continue" if no_wait else "  not finished")
        return EXIT_OK
    if summary.dead:
        print(f"  {summary.dead} dead letters (see `batchrun status {job.path}`)")
        return EXIT_DEAD_LETTERS
    if summary.canceled:
        print(f"  {summary.canceled} requests canceled: the next run resubmits them")
        return EXIT_ERROR
    return EXIT_OK


def stored_states(job: JobSpec, root: Path | None = None) -> dict[str, RequestState] | None:
    """Every request the job's state knows (for `plan`), or None if it never ran."""
    where = state_dir(job, root)
    if not Store.exists(where):
        return None
    store = Store.open(where)
    try:
        return {s.custom_id: s for s in store.iter_states(current_only=False)}
    finally:
        store.close()


def status_jobs(paths: tuple[Path, ...], as_json: bool, root: Path | None) -> int:
    """`batchrun status`: read state only (no API call, no lock)."""
    reports = []
    for job in (load_job(p) for p in paths):
        where = state_dir(job, root)
        if not Store.exists(where):
            reports.append({"job": job.name, "requests": {}, "batches": [], "never_run": True})
            continue
        store = Store.open(where)
        try:
            reports.append(report.status_report(job.name, store))
        finally:
            store.close()
    if as_json:
        print(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode())
    else:
        for r in reports:
            print(f"{r['job']}: never run" if r.get("never_run") else report.format_status(r))
    return EXIT_OK


def cancel_jobs(paths: tuple[Path, ...], root: Path | None, remote: Remote) -> int:
    """`batchrun cancel`: no lock, so it works while a run of the job is waiting."""
    with _api_errors(), backend(remote) as api:
        for job in (load_job(p) for p in paths):
            if not Store.exists(state_dir(job, root)):
                print(f"{job.name}: never run, nothing to cancel")
                continue
            store = Store.open(state_dir(job, root))
            try:
                ctx = Context(job=job, store=store, backend=api, sink=open_sink(job),
                              compiler=compiler())  # fmt: skip
                asked = recover.cancel_job(ctx)
                print(f"{job.name}: cancel requested for {len(asked)} batch(es)")
            finally:
                store.close()
    return EXIT_OK


def recover_jobs(paths: tuple[Path, ...], root: Path | None, remote: Remote) -> int:
    """`batchrun recover`: rebuild lost state from the workspace's batches."""
    with _api_errors(), backend(remote) as api:
        for job in (load_job(p) for p in paths):
            store = Store.open(state_dir(job, root))
            try:
                try:
                    store.lock()
                except LockHeld:
                    print(f"{job.name}: a run holds the lock; nothing to recover now")
                    continue
                ctx = _context(job, store, api)
                try:
                    adopted = recover.recover(ctx)
                    store.clear_meta("lost_state")
                finally:
                    ctx.sink.close()
                counts = store.status_counts()
                print(f"{job.name}: re-attached {adopted} batch(es); requests: {counts}")
            finally:
                store.close()
    return EXIT_OK


def make_plans(
    paths: tuple[Path, ...], count_tokens: bool, root: Path | None, remote: Remote
) -> list[Any]:
    """`batchrun plan`: each job's plan against its stored state; with `count_tokens`,
    exact input counts from the API's count_tokens endpoint (or the emulator's)."""
    from runner import plan  # the compile stack: see compiler()

    jobs = [load_job(p) for p in paths]
    with contextlib.ExitStack() as stack:
        counter = None
        if count_tokens:
            stack.enter_context(_api_errors())
            counter = stack.enter_context(backend(remote)).count_tokens
        return [plan.make_plan(j, stored_states(j, root), count_tokens=counter) for j in jobs]


def export_job(path: Path, fmt: str, out: Path | None, root: Path | None) -> int:
    """`batchrun export`: the job's current results from its state, whatever the sink, as
    JSONL or CSV, to a file (written atomically) or to stdout."""
    from runner import export

    job = load_job(path)
    where = state_dir(job, root)
    if not Store.exists(where):
        raise BatchrunError(f"{job.name}: no state in {where}: run the job first")
    store = Store.open(where)
    try:
        records = store.iter_results()
        kind: export.Format = "csv" if fmt == "csv" else "jsonl"
        if out is not None:
            count = export.export_file(records, kind, out)
        else:
            count = export.export(records, kind, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    finally:
        store.close()
    print(f"{job.name}: exported {count} results", file=sys.stderr)
    return EXIT_OK
