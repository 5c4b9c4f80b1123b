"""Sinks: where each input's current result lands. One small protocol, three kinds.

Exactly-once comes from idempotence, not from two-phase commit: a sink is keyed by input
key, so writing the same record again after a crash changes nothing, and a record with a
new custom_id for a known key replaces the old one. The job's state (store.py) is the
source of truth; a sink is a projection of it that can always be rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from runner.errors import BatchrunError
from runner.records import DeadLetter, ResultRecord
from runner.spec import JobSpec


class Sink(Protocol):
    """What the executor writes results through."""

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        """Make each record the current result of its input key, replacing any older one
        (and removing any dead letter of that key). Idempotent: re-applying is a no-op."""

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Record dead letters beside the results, keyed by input key, idempotently."""

    def flush(self) -> None:
        """Make everything written so far durable (fsync / commit)."""

    def close(self) -> None:
        """Flush and release files or connections."""


@runtime_checkable
class RawLineSink(Sink, Protocol):
    """A sink that also takes results as the stored JSON bytes, saving a decode and
    re-encode per result (the JSONL sink, whose lines are those bytes)."""

    def upsert_lines(self, lines: Sequence[tuple[str, str, bytes]]) -> None:
        """(input_key, custom_id, line) per result; otherwise as `upsert`."""


class SinkRecordError(BatchrunError):
    """One input cannot be written by this sink; the others can.

    The executor turns it into a dead letter of that input with outcome "errored",
    error_type "sink_error" and `message` as error_message, and carries on.
    """

    def __init__(self, input_key: str, message: str) -> None:
        self.input_key = input_key
        self.message = message
        super().__init__(f"input {input_key!r}: {message}")


class SinkRecordErrors(BatchrunError):
    """Raised by `upsert` after writing every other record: the inputs it could not write."""

    def __init__(self, errors: Sequence[SinkRecordError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def open_sink(job: JobSpec) -> Sink:
    """The sink a job's `output` names: on a disk, in object storage, or in PostgreSQL."""
    from runner.sinks.columns import job_columns  # the table sinks' extra columns

    out = job.output
    if out.type == "postgres":
        from runner.sinks.postgres import PostgresSink  # psycopg: only for this sink

        return PostgresSink(out, job.path, columns=job_columns(job))
    if out.url is not None:
        from runner.sinks.objects import ObjectFilesSink, ObjectJsonlSink

        return ObjectJsonlSink(out.url) if out.type == "jsonl" else ObjectFilesSink(out, out.url)
    if out.type == "jsonl":
        from runner.sinks.jsonl import JsonlSink

        return JsonlSink(out.local)
    if out.type == "files":
        from runner.sinks.files import FilesSink

        return FilesSink(out)
    if out.type == "sqlite":
        from runner.sinks.sqlite import SqliteSink

        return SqliteSink(out, job.name, columns=job_columns(job))
    raise BatchrunError(f"{job.path}: unknown output type {out.type!r}")


def output_holds_results(job: JobSpec) -> bool:
    """Whether the job's output exists with something in it: a non-empty file, a folder, an
    object or prefix with content, a table with rows. A run asks before opening the sink:
    an output that is gone is rebuilt from state, and one present beside a new state means
    the state was lost."""
    out = job.output
    if out.type == "postgres":
        from runner.sinks.postgres import holds_results

        return holds_results(out, job.path)
    if out.url is not None:
        from runner.sinks.objects import holds_results as object_holds_results

        return object_holds_results(out, out.url)
    path = out.local
    return path.exists() and (path.is_dir() or path.stat().st_size > 0)
