"""A sink whose resource faults (a full disk, a read-only or forbidden folder, a damaged
output database) are errors naming the output and the fix, not tracebacks.

Nothing is lost when a write fails: the executor marks rows written only after the sink
has them durably, so the next run feeds the sink again from state (a JSONL line cut by
the failed write is restored from state too: see `drift.torn_tail`).
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from runner.errors import BatchrunError
from runner.faults import WRITE_ERRNOS, os_error, sqlite_error
from runner.records import DeadLetter, ResultRecord
from runner.sinks import RawLineSink, Sink

_WHAT = "the job's output"
_RESOURCE_CODES = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
_FIX = "output.path"


@contextlib.contextmanager
def output_faults(output: str) -> Iterator[None]:
    """Word the resource faults of what runs inside as errors naming `output`."""
    try:
        yield
    except BatchrunError as exc:
        # A sink that words its own errors (the SQLite sink's "cannot use ..."): a full disk
        # or a read-only file under it still gets the fault's fix.
        cause = exc.__cause__
        name = str(getattr(cause, "sqlite_errorname", ""))
        if isinstance(cause, sqlite3.Error) and name.startswith(_RESOURCE_CODES):
            raise sqlite_error(cause, Path(output), _WHAT, _FIX) from exc
        raise
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else Path(output)
        if exc.errno in WRITE_ERRNOS:
            raise os_error(exc, where, _WHAT, _FIX) from exc
        if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
            raise BatchrunError(
                f"cannot write the job's output at {where}: {exc.strerror} (a folder where a "
                "file should be, or a file where a folder should be): move it, or change "
                "output.path"
            ) from exc
        raise
    except sqlite3.DatabaseError as exc:
        if "malformed" in str(exc) or "not a database" in str(exc):
            raise BatchrunError(
                f"the output database {output} is damaged ({exc}): move it aside, then run "
                "again: the output is rebuilt from the job's state"
            ) from exc
        raise sqlite_error(exc, Path(output), _WHAT, _FIX) from exc


def open_guarded(output: str, open_sink: Callable[[], Sink]) -> Sink:
    """`open_sink()` with its faults, and those of every later call, worded."""
    with output_faults(output):
        sink = open_sink()
    if isinstance(sink, RawLineSink):
        return GuardedLineSink(sink, output)
    return GuardedSink(sink, output)


class GuardedSink:
    """A sink whose calls word their resource faults (see the module docstring)."""

    def __init__(self, sink: Sink, output: str) -> None:
        self.sink, self.output = sink, output

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        with output_faults(self.output):
            self.sink.upsert(records)

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        with output_faults(self.output):
            self.sink.upsert_dead(letters)

    def flush(self) -> None:
        with output_faults(self.output):
            self.sink.flush()

    def close(self) -> None:
        with output_faults(self.output):
            self.sink.close()


class GuardedLineSink(GuardedSink):
    """For a sink that takes stored lines as they are (the JSONL sink's fast path), so
    that it stays a `RawLineSink`."""

    def __init__(self, sink: RawLineSink, output: str) -> None:
        super().__init__(sink, output)
        self.line_sink = sink

    def upsert_lines(self, lines: Sequence[tuple[str, str, bytes]]) -> None:
        with output_faults(self.output):
            self.line_sink.upsert_lines(lines)
