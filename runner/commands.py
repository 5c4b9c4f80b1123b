"""The bodies of `run`, `status`, `cancel` and `recover`: build the pieces, call one
function, return an exit code. cli.py only parses options and calls these."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from runner import executor, log, outcomes, recover, report
from runner.context import BudgetCheck, Compiler, Context, Pricer
from runner.errors import BatchrunError
from runner.records import RequestState
from runner.remote import Lazy, Retryable, require_api_key
from runner.sinks import open_sink
from runner.spec import JobRef, JobSpec, load_job, load_ref
from runner.store import LockHeld, Store, default_state_dir

if TYPE_CHECKING:
    from runner.backend import Backend

EXIT_OK = outcomes.EXIT_OK


@dataclass(frozen=True)
class Remote:
    """Where the API is: the usual environment, an explicit URL and key (the Python API),
    or an emulator for this command only. The key is kept out of repr: a Remote may show up
    in a traceback's locals."""

    emulate: bool = False
    emulator_config: Path | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)


def state_dir(job: JobSpec | JobRef, root: Path | None) -> Path:
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
    """The API client, closed on the way out: a library caller (runner.api) is not left
    with open connections that only a GC pass would find. With --emulate, an in-process
    emulator that lives for this command only (its batches are gone afterwards: --emulate
    is for demos and dry runs). A real API's client connects on first use (`Lazy`): a run
    with nothing to do never imports the SDK."""
    if remote.emulate:
        from runner import emulator

        with (
            emulator.start(config=remote.emulator_config) as emu,
            contextlib.closing(_connect(emu.base_url, emulated=True)) as api,
        ):
            yield api
    elif remote.api_key is not None:
        if not remote.api_key:
            raise BatchrunError("api_key is empty: pass the key, or None to use ANTHROPIC_API_KEY")
        _check_key(remote.api_key, "api_key")
        with contextlib.closing(_lazy(remote.base_url, api_key=remote.api_key)) as api:
            yield api
    else:
        _check_key(os.environ.get("ANTHROPIC_API_KEY"), "ANTHROPIC_API_KEY")
        require_api_key()
        with contextlib.closing(_lazy(remote.base_url)) as api:
            yield api


def _connect(base_url: str | None, **how: Any) -> Backend:
    from runner.backend import Backend  # the SDK: imported only when the API is called

    return Backend.connect(base_url, **how)


def _lazy(base_url: str | None, **how: Any) -> Backend:
    return cast("Backend", Lazy(lambda: _connect(base_url, **how)))


def _check_key(key: str | None, name: str) -> None:
    """Refuse a key with whitespace in it (a key file's trailing newline, most often): the
    HTTP client would fail on every call with an error that quotes the header, key and all.
    The message names the problem, never the key."""
    log.add_secret(key)
    if key and any(c.isspace() or not c.isprintable() for c in key):
        raise BatchrunError(
            f"{name} contains whitespace or a line break (read from a file with a trailing "
            "newline?): remove it"
        )


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
        return pricing.costs(usage, prices, model=model)

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


def _no_progress(_text: str) -> None:
    """For the Python API: a library does not draw on its caller's terminal."""


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


def _context(job: JobSpec, store: Store, api: Backend, show_progress: bool = True) -> Context:
    return Context(
        job=job,
        store=store,
        backend=api,
        sink=open_sink(job),
        compiler=compiler(),
        price=pricer(job),
        check_budget=budget_check(store),
        progress=_progress() if show_progress else _no_progress,
    )


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
) -> list[outcomes.RunResult]:
    """Run jobs together, each at its own pace; one result per job, in order. Prints
    nothing (a progress line on a terminal's stderr if `show_progress`).
    With --emulate and no --state-dir the state is a temporary folder: the emulator's
    batches vanish with this command, so a kept state would point at batches no API knows."""
    with _api_errors(), backend(remote) as api, contextlib.ExitStack() as stack:
        if remote.emulate and root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchrun-")))
        opened = [
            _open_job(stack, job, api, state_dir(job, root), remote.emulate, show_progress)
            for job in jobs
        ]
        ctxs = [c for c in opened if c is not None]
        summaries = executor.run_many(ctxs, ctxs[0].clock, no_wait=no_wait) if ctxs else []
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
    summary: executor.RunSummary | None,
    no_wait: bool,
) -> outcomes.RunResult:
    """One job's outcome; no context means another run held its lock."""
    result = outcomes.RunResult(job.name, job.path, job.output.path, where, no_wait=no_wait)
    if ctx is None or summary is None:
        return dataclasses.replace(result, already_running=True)
    return dataclasses.replace(
        result,
        counts=dict(summary.counts),
        requests_submitted=summary.requests_submitted,
        batches_submitted=summary.batches_submitted,
        finished=summary.finished,
        cost=report.cost_report(ctx.store),
    )


def _open_job(
    stack: contextlib.ExitStack,
    job: JobSpec,
    api: Backend,
    where: Path,
    emulated: bool,
    show_progress: bool = True,
) -> Context | None:
    """The job's locked state and open sink, closed by `stack`; None if another run holds
    the job (nothing is submitted twice)."""
    store = Store.open(where)
    stack.callback(store.close)
    try:
        store.lock()
    except LockHeld:
        return None
    if not emulated:
        _refuse_lost_state(job, store)
    if not job.output.path.exists() and store.has_results():
        store.mark_all_unwritten()  # the output was removed: rebuild it from state
    ctx = _context(job, store, api, show_progress)
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
    reports = [status_report(_state_ref(p), root) for p in paths]
    if as_json:
        print(orjson.dumps([r.as_dict() for r in reports], option=orjson.OPT_INDENT_2).decode())
    else:
        for r in reports:
            print(outcomes.format_status(r))
    return EXIT_OK


def _state_ref(path: Path) -> JobRef:
    """The job whose state to read; a job file with errors only gets a warning here."""
    ref, problem = load_ref(path)
    if problem is not None:
        print(
            f"warning: {path} has {len(problem.diagnostics)} error(s) (see `batchrun validate "
            f"{path}`); reading the state of job {ref.name!r} anyway",
            file=sys.stderr,
        )
    return ref


def status_report(job: JobSpec | JobRef, root: Path | None) -> outcomes.StatusReport:
    """The job's state as `status` shows it; `never_run` if it has none."""
    where = state_dir(job, root)
    if not Store.exists(where):
        return outcomes.StatusReport(job.name, never_run=True)
    store = Store.open(where)
    try:
        return outcomes.StatusReport.from_report(report.status_report(job.name, store))
    finally:
        store.close()


def cancel_jobs(paths: tuple[Path, ...], root: Path | None, remote: Remote) -> int:
    """`batchrun cancel`: each job's line as soon as its batches are asked to cancel."""
    for result in iter_cancel([load_job(p) for p in paths], root, remote):
        print(outcomes.format_cancel(result))
    return EXIT_OK


def iter_cancel(
    jobs: Sequence[JobSpec], root: Path | None, remote: Remote
) -> Iterator[outcomes.CancelResult]:
    """Cancel each job's in-flight batches. No lock, so it works while a run is waiting."""
    with _api_errors(), backend(remote) as api:
        for job in jobs:
            if not Store.exists(state_dir(job, root)):
                yield outcomes.CancelResult(job.name, None)
                continue
            store = Store.open(state_dir(job, root))
            sink = open_sink(job)  # Context needs one; cancel never writes to it
            try:
                ctx = Context(job=job, store=store, backend=api, sink=sink, compiler=compiler())
                asked = recover.cancel_job(ctx)
            finally:
                sink.close()
                store.close()
            yield outcomes.CancelResult(job.name, tuple(asked))


def recover_jobs(paths: tuple[Path, ...], root: Path | None, remote: Remote) -> int:
    """`batchrun recover`: each job's line as soon as it is rebuilt."""
    for result in iter_recover([load_job(p) for p in paths], root, remote):
        print(outcomes.format_recover(result))
    return EXIT_OK


def iter_recover(
    jobs: Sequence[JobSpec], root: Path | None, remote: Remote
) -> Iterator[outcomes.RecoverResult]:
    """Rebuild each job's lost state from the workspace's batches, under the job's lock."""
    with _api_errors(), backend(remote) as api:
        for job in jobs:
            yield _recover_one(job, api, state_dir(job, root))


def _recover_one(job: JobSpec, api: Backend, where: Path) -> outcomes.RecoverResult:
    store = Store.open(where)
    try:
        try:
            store.lock()
        except LockHeld:
            return outcomes.RecoverResult(job.name, locked=True)
        ctx = _context(job, store, api)
        try:
            adopted = recover.recover(ctx)
            store.clear_meta("lost_state")
        finally:
            ctx.sink.close()
        return outcomes.RecoverResult(job.name, adopted, store.status_counts())
    finally:
        store.close()


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

    job = _state_ref(path)
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
