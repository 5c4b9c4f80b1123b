"""One batch and its state machine (contract section 5).

Time is virtual: request i of N finishes at created_at + latency * (i + 1) / N, so a cancel
or an expiry part-way through leaves the earlier requests with real outcomes and the rest
canceled or expired. Nothing moves on its own: whenever the service looks, it first
processes every request whose instant has passed, across all batches in emulated time order
(so the shared prompt cache sees them in the order they happened), then ends the batches
whose `end_time` has passed. Outcomes become visible only at the end.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.emulator import catalog
from runner.emulator.caching import PromptCache
from runner.emulator.faults import Faults
from runner.emulator.responder import Record
from runner.emulator.usage import Usage

DAY = 86_400.0
EXPIRY_S = 1 * DAY
ARCHIVE_S = 29 * DAY


@dataclass(slots=True)
class Outcome:
    """The final result of one request; `cost_usd` is what it bills (0 unless succeeded)."""

    kind: str
    usage: Usage | None = None
    error_type: str | None = None
    error_message: str | None = None
    cost_usd: float = 0.0

    def to_row(self) -> list[Any]:
        usage = list(self.usage) if self.usage is not None else None  # orjson: no NamedTuple
        return [self.kind, usage, self.error_type, self.error_message, self.cost_usd]


@dataclass
class Batch:
    id: str
    seq: int
    created_at: float
    latency: float
    custom_ids: list[str]
    attempts: list[int]
    # None while a large batch is still being summarised in the background: such a batch
    # cannot end yet, exactly as a real batch still being ingested cannot.
    records: list[Record] | None = field(default=None, repr=False)
    cancel_at: float | None = None
    ended_at: float | None = None
    outcomes: list[Outcome] | None = field(default=None, repr=False)
    deleted: bool = False
    # Outcomes of the requests processed so far, in index order, while the batch runs. Not
    # persisted: after a restart they are recomputed (the prompt cache starts empty anyway).
    done: list[Outcome] = field(default_factory=list, repr=False)

    @property
    def expires_at(self) -> float:
        return self.created_at + EXPIRY_S

    @property
    def archive_at(self) -> float:
        return self.created_at + ARCHIVE_S

    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_at is not None else "in_progress"

    def end_time(self, cancel_drain_s: float) -> float:
        """The emulated instant this batch ends, given what has happened to it so far."""
        end = self.created_at + self.latency
        if self.cancel_at is not None:
            end = min(end, self.cancel_at + cancel_drain_s)
        return min(end, self.expires_at)

    def done_at(self, index: int) -> float:
        return self.created_at + self.latency * (index + 1) / len(self.custom_ids)

    def unprocessed(self) -> int:
        """Requests not processed yet (as of the service's last settle)."""
        return len(self.custom_ids) - len(self.done)

    def counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.outcomes is None:
            counts["processing"] = len(self.custom_ids)
        else:
            for outcome in self.outcomes:
                counts[outcome.kind] += 1
        return counts


def process(
    batches: Sequence[Batch], until: float, drain: float, faults: Faults, cache: PromptCache
) -> None:
    """Process every not yet processed request of `batches` whose instant is at or before
    `until` (and before its batch's end), all batches merged in emulated time order."""
    streams = [_due(b, min(until, b.end_time(drain))) for b in batches if b.records is not None]
    for at, _, i, batch in heapq.merge(*streams):
        assert batch.records is not None
        batch.done.append(_outcome(batch.records[i], batch.attempts[i], at, faults, cache))


def _due(batch: Batch, limit: float) -> Iterator[tuple[float, int, int, Batch]]:
    for i in range(len(batch.done), len(batch.custom_ids)):
        at = batch.done_at(i)
        if at > limit:
            return
        yield at, batch.seq, i, batch


def finalize(batch: Batch, end: float) -> None:
    """End `batch` at `end` (its requests up to `end` already processed): the rest become
    expired or canceled, and every outcome becomes visible at once."""
    leftover = "expired" if end >= batch.expires_at else "canceled"
    missing = len(batch.custom_ids) - len(batch.done)
    batch.outcomes = batch.done + [Outcome(leftover) for _ in range(missing)]
    batch.done = []
    batch.ended_at = end


def _outcome(
    record: Record, attempt: int, at: float, faults: Faults, cache: PromptCache
) -> Outcome:
    if record.error_type is not None:
        return Outcome("errored", error_type=record.error_type, error_message=record.error_message)
    fate = faults.outcome(record.custom_id, attempt)
    if fate == "expired":
        return Outcome("expired")
    if fate != "succeeded":
        message = f"Emulated {fate} (injected by the emulator's outcomes.errored share)"
        return Outcome("errored", error_type=fate, error_message=message)
    usage = cache.usage(record, at)
    model = catalog.find(record.model)
    cost = catalog.batch_cost_usd(model, usage) if model else 0.0
    return Outcome("succeeded", usage=usage, cost_usd=cost)
