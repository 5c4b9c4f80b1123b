"""The state machine of contract section 5, driven through the SDK with the virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from runner.emulator import Emulator
from tests.emulator.conftest import requests, sdk

DAY = 86_400


def _slow(factory: Callable[..., Emulator], **extra: object) -> Emulator:
    return factory({"latency": {"min_s": 100.0, "max_s": 100.0}, **extra})


def test_cancel_mid_batch_keeps_finished_requests(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """Requests done before the cancel keep their outcome; the rest end canceled."""
    emu = _slow(emulator_factory)
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(4))
        emu.advance(30)  # requests finish at 25, 50, 75 and 100 s
        canceling = client.messages.batches.cancel(batch.id)
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at is not None
        assert canceling.request_counts.processing == 4  # counts move only at the end
        emu.advance(1)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.results_url
        assert ended.request_counts.succeeded == 1 and ended.request_counts.canceled == 3
        kinds = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
        assert kinds == {"r0": "succeeded", "r1": "canceled", "r2": "canceled", "r3": "canceled"}


def test_repeated_cancel_while_canceling_returns_batch(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """A second cancel while canceling is harmless; cancel of an ended batch is a 400."""
    emu = _slow(emulator_factory, cancel_drain_s=10.0)
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(2))
        first = client.messages.batches.cancel(batch.id)
        again = client.messages.batches.cancel(batch.id)
        assert again.processing_status == "canceling"
        assert again.cancel_initiated_at == first.cancel_initiated_at
        emu.advance(11)
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.batches.cancel(batch.id)
        assert info.value.type == "invalid_request_error"


def test_cancel_racing_natural_end_ends_with_no_canceled(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """In-flight work drains: if the batch finishes while canceling, nothing is canceled."""
    emu = _slow(emulator_factory, cancel_drain_s=60.0)
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(3))
        emu.advance(90)
        client.messages.batches.cancel(batch.id)
        emu.advance(20)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.cancel_initiated_at is not None
        assert ended.request_counts.succeeded == 3 and ended.request_counts.canceled == 0


def test_expiry_at_24h_leaves_leftovers_expired(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """A batch not finished 24 h after creation ends with the rest expired."""
    emu = emulator_factory({"latency": {"min_s": 2 * DAY, "max_s": 2 * DAY}})
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(4))
        emu.advance(DAY - 1)
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        emu.advance(2)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.ended_at == ended.expires_at
        assert ended.request_counts.succeeded == 2 and ended.request_counts.expired == 2
        kinds = sorted(r.result.type for r in client.messages.batches.results(batch.id))
        assert kinds == ["expired", "expired", "succeeded", "succeeded"]


def test_archive_after_29_days(client: anthropic.Anthropic, emu: Emulator) -> None:
    """Results vanish 29 days after creation; the batch stays retrievable and listable."""
    batch = client.messages.batches.create(requests=requests(1))
    emu.advance(29 * DAY - 10)
    assert client.messages.batches.retrieve(batch.id).archived_at is None
    assert len(list(client.messages.batches.results(batch.id))) == 1
    emu.advance(20)
    archived = client.messages.batches.retrieve(batch.id)
    assert archived.archived_at is not None and archived.processing_status == "ended"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.results(batch.id)
    assert [b.id for b in client.messages.batches.list()] == [batch.id]


def test_clock_advance_over_http(client: anthropic.Anthropic, slow_emu: Emulator) -> None:
    """POST /_emulator/clock/advance moves the clock for out-of-process tests."""
    with sdk(slow_emu, max_retries=0) as slow:
        batch = slow.messages.batches.create(requests=requests(1))
        slow.post("/_emulator/clock/advance", cast_to=object, body={"seconds": 101})
        assert slow.messages.batches.retrieve(batch.id).processing_status == "ended"
        stats = slow.get("/_emulator/stats", cast_to=object)
        assert isinstance(stats, dict) and stats["results_succeeded"] == 1


def test_concurrent_cancels_agree(emulator_factory: Callable[..., Emulator]) -> None:
    """Cancels racing each other from several threads all see one cancel time."""
    emu = _slow(emulator_factory, cancel_drain_s=30.0)
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(3))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.messages.batches.cancel(batch.id), range(16)))
        assert {a.processing_status for a in answers} == {"canceling"}
        assert len({a.cancel_initiated_at for a in answers}) == 1
        emu.advance(31)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.request_counts.canceled == 3 and ended.request_counts.processing == 0
