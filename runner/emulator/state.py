"""One batch and its state machine (contract section 5).

Time is virtual: request i of N finishes at created_at + latency * (i + 1) / N, so a cancel
or an expiry part-way through leaves the earlier requests with real outcomes and the rest
canceled or expired. Nothing moves on its own: `end_time` says when the batch ends and the
service finalizes it the first time it looks at the batch after that instant.
"""

from __future__ import annotations

import math
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

    def unprocessed(self, now: float) -> int:
        """Requests not yet processed at `now` (all of them while intake is still running)."""
        n = len(self.custom_ids)
        if self.records is None or now < self.created_at:
            return n
        if self.latency <= 0:
            return 0
        return n - min(n, math.floor((now - self.created_at) * n / self.latency))

    def counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.outcomes is None:
            counts["processing"] = len(self.custom_ids)
        else:
            for outcome in self.outcomes:
                counts[outcome.kind] += 1
        return counts


def finalize(batch: Batch, end: float, faults: Faults, cache: PromptCache) -> None:
    """End `batch` at `end`: every request gets its final outcome, counts move at once."""
    assert batch.records is not None
    leftover = "expired" if end >= batch.expires_at else "canceled"
    outcomes = []
    for i, record in enumerate(batch.records):
        at = batch.done_at(i)
        if at > end:
            outcomes.append(Outcome(leftover))
        else:
            outcomes.append(_outcome(record, batch.attempts[i], at, faults, cache))
    batch.outcomes = outcomes
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
