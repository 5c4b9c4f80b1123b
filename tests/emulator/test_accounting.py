"""GET /_emulator/stats: resubmitted vs concurrent duplicates vs double billed."""

from __future__ import annotations

from collections.abc import Callable

from runner.emulator import Emulator
from tests.emulator.conftest import requests, sdk


def test_retry_of_errored_is_resubmitted_not_double_billed(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """Resubmitting only what errored is normal: resubmitted, never billed twice."""
    emu = emulator_factory({"seed": 2, "outcomes": {"errored": 0.5}})
    with sdk(emu, max_retries=0) as client:
        first = client.messages.batches.create(requests=requests(20))
        failed = [
            line.custom_id
            for line in client.messages.batches.results(first.id)
            if line.result.type == "errored"
        ]
        retry = [r for r in requests(20) if r["custom_id"] in failed]
        second = client.messages.batches.create(requests=retry)
    stats = emu.stats()
    assert (
        failed and stats["batches_created"] == 2 and stats["requests_received"] == 20 + len(failed)
    )
    assert stats["resubmitted_custom_ids"] == {cid: [first.id, second.id] for cid in failed}
    assert stats["concurrent_duplicate_custom_ids"] == {}
    assert stats["double_billed_custom_ids"] == {}


def test_concurrent_duplicates_and_double_billing(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """Submitting again while the first is processing is a concurrent duplicate; both
    succeeding bills the id twice."""
    emu = emulator_factory({"latency": {"min_s": 60, "max_s": 60}})
    with sdk(emu, max_retries=0) as client:
        a = client.messages.batches.create(requests=requests(2))
        b = client.messages.batches.create(requests=requests(1))
        emu.advance(61)
        c = client.messages.batches.create(requests=requests(1, prefix="r1x"))
        emu.advance(61)
    stats = emu.stats()
    assert stats["concurrent_duplicate_custom_ids"] == {"r0": sorted([a.id, b.id])}
    assert stats["double_billed_custom_ids"] == {"r0": [a.id, b.id]}
    assert stats["resubmitted_custom_ids"] == {"r0": [a.id, b.id]}
    assert stats["results_succeeded"] == 4 and stats["cost_usd"] > 0
    assert c.id not in str(stats["resubmitted_custom_ids"])


def test_stats_count_deleted_batches(client: object, emu: Emulator) -> None:
    """Deleting a batch does not erase what it billed."""
    with sdk(emu, max_retries=0) as c:
        batch = c.messages.batches.create(requests=requests(3))
        before = emu.stats()["cost_usd"]
        c.messages.batches.delete(batch.id)
    stats = emu.stats()
    assert stats["batches_deleted"] == 1 and stats["results_succeeded"] == 3
    assert stats["cost_usd"] == before > 0
