"""Accounting (`GET /_emulator/stats`): what a bill would show, and the evidence that nothing
was billed twice. Computed from the batches themselves, so it survives a restart with
`--state` and can never drift from what the emulator actually answered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.emulator.state import Batch


def compute(batches: Sequence[Batch], now: float) -> dict[str, Any]:
    """`batches` in creation order, deleted ones included (they were billed all the same)."""
    kinds = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    seen: dict[str, list[Batch]] = {}
    succeeded: dict[str, list[str]] = {}
    concurrent: dict[str, set[str]] = {}
    cost = 0.0
    for batch in batches:
        for i, custom_id in enumerate(batch.custom_ids):
            earlier = seen.setdefault(custom_id, [])
            for other in earlier:
                if other.ended_at is None or other.ended_at > batch.created_at:
                    concurrent.setdefault(custom_id, set()).update((other.id, batch.id))
            earlier.append(batch)
            if batch.outcomes is None:
                continue
            outcome = batch.outcomes[i]
            kinds[outcome.kind] += 1
            cost += outcome.cost_usd
            if outcome.kind == "succeeded":
                succeeded.setdefault(custom_id, []).append(batch.id)
    return {
        "batches_created": len(batches),
        "batches_deleted": sum(1 for b in batches if b.deleted),
        "requests_received": sum(len(b.custom_ids) for b in batches),
        "requests_processing": sum(len(b.custom_ids) for b in batches if b.outcomes is None),
        "results_succeeded": kinds["succeeded"],
        "results_errored": kinds["errored"],
        "results_canceled": kinds["canceled"],
        "results_expired": kinds["expired"],
        "resubmitted_custom_ids": {
            cid: [b.id for b in bs] for cid, bs in seen.items() if len(bs) > 1
        },
        "concurrent_duplicate_custom_ids": {cid: sorted(ids) for cid, ids in concurrent.items()},
        "double_billed_custom_ids": {cid: ids for cid, ids in succeeded.items() if len(ids) > 1},
        "cost_usd": round(cost, 9),
        "emulated_now": now,
    }
