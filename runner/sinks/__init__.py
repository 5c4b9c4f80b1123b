"""Sinks: where each input's current result lands. One small protocol, three kinds.

Exactly-once comes from idempotence, not from two-phase commit: a sink is keyed by input
key, so writing the same record again after a crash changes nothing, and a record with a
new custom_id for a known key replaces the old one. The job's state (store.py) is the
source of truth; a sink is a projection of it that can always be rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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


def open_sink(job: JobSpec) -> Sink:
    """The sink a job's `output` names."""
    if job.output.type == "jsonl":
        from runner.sinks.jsonl import JsonlSink

        return JsonlSink(job.output.path)
    if job.output.type == "files":
        from runner.sinks.files import FilesSink

        return FilesSink(job.output)
    if job.output.type == "sqlite":
        from runner.sinks.columns import job_columns
        from runner.sinks.sqlite import SqliteSink

        return SqliteSink(job.output, job.name, columns=job_columns(job))
    raise BatchrunError(f"{job.path}: unknown output type {job.output.type!r}")
