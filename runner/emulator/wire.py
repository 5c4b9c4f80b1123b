"""The JSON shapes of contract section 3, built from emulator state."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from runner.emulator import responder
from runner.emulator.clock import rfc3339
from runner.emulator.state import Batch, Outcome


def batch_json(batch: Batch, origin: str, now: float) -> dict[str, Any]:
    """A MessageBatch (3.1); `results_url` is absolute on the emulator's own origin."""
    ended = batch.ended_at is not None
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status(),
        "request_counts": batch.counts(),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.expires_at),
        "ended_at": rfc3339(batch.ended_at) if batch.ended_at is not None else None,
        "cancel_initiated_at": rfc3339(batch.cancel_at) if batch.cancel_at is not None else None,
        "archived_at": rfc3339(batch.archive_at) if now >= batch.archive_at else None,
        "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def page(items: Sequence[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """The list envelope (3.4)."""
    return {
        "data": list(items),
        "has_more": has_more,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
    }


def result_lines(batch: Batch) -> Iterator[bytes]:
    """One serialised MessageBatchIndividualResponse per request (3.5), generated lazily.

    The API does not keep request order, so neither does the emulator: lines come in an
    order shuffled per batch (the same on every download), and a runner that matches on
    position instead of custom_id fails here rather than in production.
    """
    records, outcomes = batch.records, batch.outcomes
    assert outcomes is not None and records is not None
    order = list(range(len(records)))
    random.Random(batch.id).shuffle(order)  # noqa: S311 (an order, not a secret)
    for i in order:
        yield orjson.dumps(
            {"custom_id": records[i].custom_id, "result": _result(records[i], outcomes[i])}
        )


def _result(record: responder.Record, outcome: Outcome) -> dict[str, Any]:
    if outcome.kind == "succeeded":
        assert outcome.usage is not None
        return {"type": "succeeded", "message": responder.message(record, outcome.usage.as_json())}
    if outcome.kind == "errored":
        error = {"type": outcome.error_type, "message": outcome.error_message}
        return {"type": "errored", "error": {"type": "error", "error": error, "request_id": None}}
    return {"type": outcome.kind}
