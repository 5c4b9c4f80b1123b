"""What every command is built from: where the API is, the job's state folder and lock, the
executor's context (sink, compiler, pricer, progress line)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from runner import faults, log
from runner.backend import Lazy, Retryable, require_api_key
from runner.errors import BatchrunError
from runner.executor.context import Compiler, Context, Pricer, SystemClock
from runner.sinks import drift, open_sink, output_holds_results
from runner.sinks.guarded import open_guarded
from runner.spec import JobRef, JobSpec, containment, load_ref
from runner.store import LockHeld, Store, default_state_dir

if TYPE_CHECKING:
    from runner.backend.sdk import Backend


@dataclass(frozen=True)
class Remote:
    """Where the API is: the usual environment, an explicit URL and key (the Python API),
    or an emulator for this command only. The key is kept out of repr: a Remote may show up
    in a traceback's locals."""

    emulate: bool = False
    emulator_config: Path | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    unreachable_timeout: float | None = None  # seconds; None: BATCHRUN_UNREACHABLE_TIMEOUT


def state_dir(job: JobSpec | JobRef, root: Path | None) -> Path:
    """`.batchrun/<job>/` beside the job file, or `<root>/<job>/` with --state-dir."""
    return root / job.name if root else default_state_dir(job.path, job.name)


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
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


def patient(api: Backend, remote: Remote, no_wait: bool) -> Backend:
    """`api` giving up, with a clear error, on an API it cannot reach for too long
    (backend/reach.py); an in-process emulator is always reachable."""
    if remote.emulate:
        return api
    from runner.backend import reach

    patience = reach.patience(remote.unreachable_timeout, no_wait)
    url = reach.api_url(remote.base_url)
    return cast("Backend", reach.Reach(api, url, patience, time.monotonic))


def _connect(base_url: str | None, **how: Any) -> Backend:
    from runner.backend.sdk import Backend  # the SDK: imported only when the API is called

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
    """runner.compile as the executor sees it. Imported when a command that compiles builds
    its context: status, export and validate never load the render stack."""
    from runner import compile as compile_
    from runner.compile import index
    from runner.plan import diff

    return Compiler(
        compile_.iter_requests,
        compile_.make_chunks,
        source=diff.incremental_source,
        requests_for=index.requests_for,
    )


def pricer(job: JobSpec) -> Pricer:
    from runner import pricing

    def price(model: str, usage: Mapping[str, Any]) -> tuple[float | None, float | None]:
        prices = pricing.price_for(model, job.pricing)
        if prices is None:
            return None, None
        return pricing.costs(usage, prices, model=model)

    return price


def progress_line() -> Callable[[str], None]:
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


class StateWatch(SystemClock):
    """The system clock, which before and after each wait checks that the watched state
    databases are still there: a state folder removed under a live run stops it at its
    next wait (SQLite would go on writing to the deleted files, and the state would be
    lost at exit) with an error that says how to go on."""

    def __init__(self, states: Iterable[tuple[Path, Path]]) -> None:
        """`states`: (state folder, its job file) pairs."""
        self.states = {s / "state.db": (_inode(s / "state.db"), job) for s, job in states}

    def sleep(self, seconds: float) -> None:
        self.check()
        super().sleep(seconds)
        self.check()

    def check(self) -> None:
        for db, (inode, job) in self.states.items():
            if _inode(db) != inode:
                raise faults.state_removed(db.parent, job)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def make_context(job: JobSpec, store: Store, api: Backend, show_progress: bool = True) -> Context:
    return Context(
        job=job,
        store=store,
        backend=api,
        sink=open_guarded(job.output.where, lambda: open_sink(job)),
        compiler=compiler(),
        price=pricer(job),
        progress=progress_line() if show_progress else _no_progress,
        clock=StateWatch([(store.state_dir, job.path)]),
    )


def open_job(
    stack: contextlib.ExitStack,
    job: JobSpec,
    api: Backend,
    where: Path,
    emulated: bool,
    show_progress: bool = True,
) -> Context | None:
    """The job's locked state and open sink, closed by `stack`; None if another run holds
    the job (nothing is submitted twice)."""
    refuse_state_outside(job, where)
    store = Store.open(where)
    stack.callback(store.close)
    try:
        store.lock()
    except LockHeld:
        return None
    if not emulated:
        _refuse_lost_state(job, store)
    if not output_holds_results(job) and store.has_results():
        store.mark_all_unwritten()  # the output was removed: rebuild it from state
    elif drift.torn_tail(job):
        # A crash or a full disk cut the sink's last line: its input is restored from state
        # (the sink cuts the torn line off at its first write, and every row is fed again).
        log.get("batchrun").warning("the sink's last line was cut: restoring it from state")
        store.mark_all_unwritten()
    ctx = make_context(job, store, api, show_progress)
    stack.callback(ctx.sink.close)
    return ctx


def refuse_state_outside(job: JobSpec | JobRef, where: Path) -> None:
    """The state folder beside a job stays inside its project root (a `.batchrun` symlinked
    elsewhere by a pull request must not be written through); --state-dir is the
    operator's own choice."""
    if where == default_state_dir(job.path, job.name):
        why = containment.state_escape(job.path, where)
        if why is not None:
            raise BatchrunError(f"{job.path}: {why}")


def _refuse_lost_state(job: JobSpec, store: Store) -> None:
    """A new state beside an existing output means the state was lost: running now would
    pay for every result again. `recover` rebuilds it from the API instead."""
    out = job.output.where
    has_output = output_holds_results(job)
    if store.created and has_output:
        store.set_meta("lost_state", "1")
    if not has_output:  # removed meanwhile: starting over is what the user chose
        store.clear_meta("lost_state")
    if store.get_meta("lost_state"):
        raise BatchrunError(
            f"{job.name}: no state in {store.state_dir} but {out} exists: the state was "
            f"lost. Run `batchrun recover {job.path}` first (or remove the output to redo all)"
        )


@contextlib.contextmanager
def read_state(job: JobSpec, root: Path | None = None) -> Iterator[Store | None]:
    """The job's state to read (for `plan`; None if it never ran): no lock, no writes."""
    where = state_dir(job, root)
    if not Store.exists(where):
        yield None
        return
    store = Store.open(where)
    try:
        yield store
    finally:
        store.close()


def state_ref(path: Path) -> JobRef:
    """The job whose state to read; a job file with errors only gets a warning here."""
    ref, problem = load_ref(path)
    if problem is not None:
        print(
            f"warning: {path} has {len(problem.diagnostics)} error(s) (see `batchrun validate "
            f"{path}`); reading the state of job {ref.name!r} anyway",
            file=sys.stderr,
        )
    return ref
