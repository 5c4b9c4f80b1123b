"""Fault injection from the config: seeded, reproducible, and visible to the SDK exactly as
real failures would be (including its own retry honouring retry-after)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import Anthropic

from runner.emulator import Emulator
from tests.emulator.conftest import requests, sdk


def _fault(endpoint: str, status: int, **extra: Any) -> dict[str, Any]:
    return {"http_faults": [{"endpoint": endpoint, "status": status, "rate": 1.0, **extra}]}


def test_sdk_retry_honours_retry_after(emulator_factory: Callable[..., Emulator]) -> None:
    """A 529 with retry-after 0.01 is retried after ~10 ms, not the SDK's 0.4 s backoff."""
    emu = emulator_factory(_fault("create", 529, retry_after=0.01))
    with sdk(emu, max_retries=2) as client:
        started = time.monotonic()
        with pytest.raises(anthropic.OverloadedError) as info:
            client.messages.batches.create(requests=requests(1))
        assert time.monotonic() - started < 0.3
    assert info.value.response.headers["retry-after"] == "0.01"
    stats = emu.stats()
    assert stats["http_calls"]["create"] == 3 and stats["http_faults_injected"]["create"] == 3
    assert stats["batches_created"] == 0


def test_retry_after_ms_and_should_retry(emulator_factory: Callable[..., Emulator]) -> None:
    """retry-after-ms is sent; x-should-retry: false stops the SDK from retrying a 529."""
    emu = emulator_factory(_fault("retrieve", 529, retry_after_ms=5, should_retry=False))
    with sdk(emu, max_retries=3) as client, pytest.raises(anthropic.OverloadedError) as info:
        client.messages.batches.retrieve("msgbatch_00000001x")
    assert info.value.response.headers["retry-after-ms"] == "5"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert emu.stats()["http_calls"]["retrieve"] == 1


def test_partial_rate_recovers_through_sdk_retry(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """With a 50% fault rate the SDK's retries get through; the draw is seeded."""
    config = {"seed": 3, **_fault("list", 500, retry_after=0.001)}
    config["http_faults"][0]["rate"] = 0.5
    calls = []
    for _ in range(2):
        emu = emulator_factory(config)
        with sdk(emu, max_retries=5) as client:
            for _ in range(10):
                client.messages.batches.list()
        calls.append(emu.stats()["http_faults_injected"].get("list", 0))
    assert calls[0] == calls[1] and 0 < calls[0] < 50


@pytest.mark.parametrize(
    ("endpoint", "call"),
    [
        ("retrieve", lambda c, b: c.messages.batches.retrieve(b)),
        ("list", lambda c, b: c.messages.batches.list()),
        ("cancel", lambda c, b: c.messages.batches.cancel(b)),
        ("delete", lambda c, b: c.messages.batches.delete(b)),
        ("results", lambda c, b: list(c.messages.batches.results(b))),
        (
            "count_tokens",
            lambda c, b: c.messages.count_tokens(
                model="claude-sonnet-4-5", messages=[{"role": "user", "content": "a"}]
            ),
        ),
        ("models", lambda c, b: c.models.list()),
    ],
)
def test_each_endpoint_can_fail(
    emulator_factory: Callable[..., Emulator],
    endpoint: str,
    call: Callable[[Anthropic, str], object],
) -> None:
    emu = emulator_factory(_fault(endpoint, 503))
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(1))
        with pytest.raises(anthropic.ServiceUnavailableError) as info:
            call(client, batch.id)
        assert info.value.request_id


def test_create_commit_then_fail(emulator_factory: Callable[..., Emulator]) -> None:
    """The SDK sees a 500, yet the batch exists; a blind retry creates a duplicate."""
    emu = emulator_factory({"create_commit_then_fail": 1.0})
    with sdk(emu, max_retries=0) as client:
        with pytest.raises(anthropic.InternalServerError):
            client.messages.batches.create(requests=requests(2))
        (batch,) = client.messages.batches.list()
        assert batch.request_counts.processing + batch.request_counts.succeeded == 2
    with sdk(emu, max_retries=1) as client, pytest.raises(anthropic.InternalServerError):
        client.messages.batches.create(requests=requests(2, prefix="s"))
    stats = emu.stats()
    assert stats["batches_created"] == 3
    assert set(stats["resubmitted_custom_ids"]) == {"s0", "s1"}
    assert set(stats["double_billed_custom_ids"]) == {"s0", "s1"}


def test_results_truncated_mid_line(emulator_factory: Callable[..., Emulator]) -> None:
    """A truncated stream surfaces as httpx2.RemoteProtocolError, not retried."""
    emu = emulator_factory({"results_truncate": 1.0})
    with sdk(emu, max_retries=2) as client:
        batch = client.messages.batches.create(requests=requests(6))
        seen = []
        with pytest.raises(httpx2.RemoteProtocolError):
            for line in client.messages.batches.results(batch.id):
                seen.append(line.custom_id)
        assert len(seen) == 3 and set(seen) < {f"r{i}" for i in range(6)}
    assert emu.stats()["http_calls"]["results"] == 1


def test_outcome_shares_are_seeded(emulator_factory: Callable[..., Emulator]) -> None:
    """errored/expired shares and errored_types weights; the same seed, the same fates."""
    config = {
        "seed": 7,
        "outcomes": {"errored": 0.3, "expired": 0.2},
        "errored_types": {"overloaded_error": 1, "api_error": 1},
    }
    fates = []
    for _ in range(2):
        emu = emulator_factory(config)
        with sdk(emu, max_retries=0) as client:
            batch = client.messages.batches.create(requests=requests(200))
            lines = list(client.messages.batches.results(batch.id))
        fates.append({line.custom_id: _fate(line.result) for line in lines})
    assert fates[0] == fates[1]
    values = list(fates[0].values())
    assert 20 < values.count("expired") < 60
    assert 30 < values.count("overloaded_error") + values.count("api_error") < 90
    assert values.count("overloaded_error") > 10 and values.count("api_error") > 10


def _fate(result: Any) -> str:
    return str(result.error.error.type) if result.type == "errored" else str(result.type)


def test_latency_is_seeded_within_bounds(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory({"seed": 1, "latency": {"min_s": 10, "max_s": 20}})
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(1))
        emu.advance(9.9)
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        emu.advance(10.2)
        done = client.messages.batches.retrieve(batch.id)
    assert done.ended_at is not None
    assert 10 <= (done.ended_at - done.created_at).total_seconds() <= 20


def test_queue_limit_is_429(emulator_factory: Callable[..., Emulator]) -> None:
    """Requests processing at once above queue_limit: rate_limit_error with retry-after."""
    emu = emulator_factory({"queue_limit": 5, "latency": {"min_s": 30, "max_s": 30}})
    with sdk(emu, max_retries=0) as client:
        client.messages.batches.create(requests=requests(3))
        with pytest.raises(anthropic.RateLimitError) as info:
            client.messages.batches.create(requests=requests(3, prefix="q"))
        assert info.value.type == "rate_limit_error"
        assert 1 <= float(info.value.response.headers["retry-after"]) <= 30
        emu.advance(31)
        assert client.messages.batches.create(requests=requests(3, prefix="q")).id


def test_fault_error_code_maps_to_sdk_class(emulator_factory: Callable[..., Emulator]) -> None:
    """error_code lands in error.details; the SDK picks its dedicated exception class."""
    fault = _fault("create", 429, should_retry=False, error_code="enforced_spend_limit_reached")
    emu = emulator_factory(fault)
    client = sdk(emu, max_retries=2)
    with client, pytest.raises(anthropic.EnforcedSpendLimitReachedError) as info:
        client.messages.batches.create(requests=requests(1))
    assert info.value.error_code == "enforced_spend_limit_reached"
    assert emu.stats()["http_calls"]["create"] == 1
