"""Fidelity audit, behaviour (contract sections 4, 5, 7, 9, 10): validation bounds, state
machine edges, messages, the queue, accounting and determinism. Tests that found a
divergence say so in their docstring."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch

from runner.emulator import Emulator
from tests.emulator.conftest import request, requests, results_of, sdk

DAY = 86_400


def test_custom_id_of_64_is_accepted(client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=[request("a" * 64), request("-_aZ9")])
    assert batch.request_counts.processing == 2


def test_non_string_custom_id_message(client: Anthropic) -> None:
    """A number as custom_id is a type error, not a missing field."""
    raw = b'{"requests":[{"custom_id":5,"params":{}}]}'
    with pytest.raises(
        anthropic.BadRequestError, match="custom_id: Input should be a valid string"
    ):
        client.post("/v1/messages/batches", cast_to=MessageBatch, content=raw)


def test_default_count_limit_is_100000(client: Anthropic) -> None:
    """100,001 requests are refused at create with the default limit (raw body: fast)."""
    one = b'{"custom_id":"r%d","params":{}}'
    raw = b'{"requests":[' + b",".join(one % i for i in range(100_001)) + b"]}"
    with pytest.raises(anthropic.BadRequestError, match="at most 100000 items"):
        client.post("/v1/messages/batches", cast_to=MessageBatch, content=raw)


def test_300k_beta_does_not_lift_64k_models(client: Anthropic) -> None:
    """10: Sonnet 4.5 keeps its 64k cap even with the beta, with the API's message."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64_001,
        "messages": [{"role": "user", "content": "hi"}],
    }
    results = results_of(
        client,
        [{"custom_id": "x", "params": params}],
        extra_headers={"anthropic-beta": "output-300k-2026-03-24"},
    )
    assert results["x"].error.error.message == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens "
        "for claude-sonnet-4-5"
    )


def test_count_tokens_accepts_thinking_and_speed(client: Anthropic) -> None:
    """2.7: count_tokens takes `thinking` and `speed` (no max_tokens, not a batch). Found:
    the batch-only checks refused both."""
    counted = client.messages.count_tokens(
        model="claude-opus-4-8",
        messages=[{"role": "user", "content": "y" * 8}],
        thinking={"type": "enabled", "budget_tokens": 4000},
        speed="fast",
    )
    assert counted.input_tokens == 2


def test_queue_frees_requests_as_they_finish(emulator_factory: Callable[..., Emulator]) -> None:
    """9: a request counts against the queue only until it is processed (found: a running
    batch held its whole size until it ended)."""
    emu = emulator_factory({"queue_limit": 5, "latency": {"min_s": 40, "max_s": 40}})
    with sdk(emu, max_retries=0) as client:
        client.messages.batches.create(requests=requests(4))  # done at 10, 20, 30, 40 s
        with pytest.raises(anthropic.RateLimitError):
            client.messages.batches.create(requests=requests(3, prefix="q"))
        emu.advance(21)
        assert client.messages.batches.create(requests=requests(3, prefix="q")).id


def test_commit_then_fail_shows_in_stats(emulator_factory: Callable[..., Emulator]) -> None:
    """Exactly one batch exists after a failed create, and stats name it."""
    emu = emulator_factory({"create_commit_then_fail": 1.0})
    with sdk(emu, max_retries=0) as client:
        with pytest.raises(anthropic.InternalServerError):
            client.messages.batches.create(requests=requests(2))
        (batch,) = client.messages.batches.list()
    stats = emu.stats()
    assert stats["batches_created"] == 1
    assert stats["committed_then_failed_batch_ids"] == [batch.id]


def test_output_never_exceeds_max_tokens_with_thinking(client: Anthropic) -> None:
    """7: output_tokens (thinking included) stays within max_tokens. Found: adaptive
    thinking with a small max_tokens billed more output than allowed, with an empty text."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 3,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    message = results_of(client, [{"custom_id": "t", "params": params}])["t"].message
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens <= 3
    assert message.usage.output_tokens_details.thinking_tokens <= message.usage.output_tokens
    assert [block.type for block in message.content] == ["thinking"]


def test_scripted_text_obeys_max_tokens(emulator_factory: Callable[..., Emulator]) -> None:
    """A `responses` rule's text is cut at max_tokens like any answer (found: a scripted
    stop_reason let output_tokens exceed max_tokens)."""
    rule = {"custom_id": "^s$", "text": "word " * 100, "stop_reason": "stop_sequence"}
    emu = emulator_factory({"responses": [rule]})
    with sdk(emu, max_retries=0) as client:
        message = results_of(client, [request("s", max_tokens=5)])["s"].message
    assert message.usage.output_tokens == 5 and message.stop_reason == "max_tokens"


def test_results_archive_counts_from_created_not_ended(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """5 / 2.6: an expired batch ends at 24 h but its results still go 29 d after creation."""
    emu = emulator_factory({"latency": {"min_s": 2 * DAY, "max_s": 2 * DAY}})
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(2))
        emu.advance(29 * DAY - 5)
        assert client.messages.batches.retrieve(batch.id).ended_at is not None
        assert len(list(client.messages.batches.results(batch.id))) == 2
        emu.advance(10)
        assert client.messages.batches.retrieve(batch.id).archived_at is not None
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.results(batch.id)


def test_direct_results_get_before_end_is_400(slow_client: Anthropic) -> None:
    batch = slow_client.messages.batches.create(requests=requests(1))
    with pytest.raises(anthropic.BadRequestError):
        slow_client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)


def test_delete_while_canceling_is_400_then_404_after_delete(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory({"latency": {"min_s": 100, "max_s": 100}, "cancel_drain_s": 10})
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(2))
        client.messages.batches.cancel(batch.id)
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.delete(batch.id)
        emu.advance(11)
        client.messages.batches.delete(batch.id)
        for call in (client.messages.batches.retrieve, client.messages.batches.delete):
            with pytest.raises(anthropic.NotFoundError):
                call(batch.id)
        with pytest.raises(anthropic.NotFoundError):
            client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)


def test_resubmitted_after_lazy_end_is_not_concurrent(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """An id resubmitted after its first batch ended (nobody polled in between, so the end
    is only noticed at the second create) is resubmitted, not a concurrent duplicate."""
    emu = emulator_factory({"latency": {"min_s": 60, "max_s": 60}})
    with sdk(emu, max_retries=0) as client:
        first = client.messages.batches.create(requests=requests(1))
        emu.advance(61)
        second = client.messages.batches.create(requests=requests(1))
        emu.advance(61)
    stats = emu.stats()
    assert stats["resubmitted_custom_ids"] == {"r0": [first.id, second.id]}
    assert stats["concurrent_duplicate_custom_ids"] == {}
    assert stats["double_billed_custom_ids"] == {"r0": [first.id, second.id]}


def test_same_seed_same_calls_same_everything(emulator_factory: Callable[..., Emulator]) -> None:
    """Faults of every kind are reproducible given the seed and the call sequence."""
    config = {
        "seed": 11,
        "latency": {"min_s": 1, "max_s": 50},
        "outcomes": {"errored": 0.2, "expired": 0.1},
        "http_faults": [{"endpoint": "retrieve", "status": 500, "rate": 0.4}],
        "create_commit_then_fail": 0.3,
    }
    runs = []
    for _ in range(2):
        emu = emulator_factory(config)
        seen: list[Any] = []
        with sdk(emu, max_retries=0) as client:
            for n in range(6):
                try:
                    client.messages.batches.create(requests=requests(5, prefix=f"b{n}-"))
                    seen.append("created")
                except anthropic.InternalServerError:
                    seen.append("commit-then-fail")
            emu.advance(60)
            for batch in client.messages.batches.list():
                try:
                    got = client.messages.batches.retrieve(batch.id)
                    assert got.ended_at is not None
                    took = round((got.ended_at - got.created_at).total_seconds(), 3)
                    seen.append((got.request_counts.to_dict(), took))
                except anthropic.InternalServerError:
                    seen.append("retrieve-500")
        runs.append(seen)
    assert runs[0] == runs[1]
    assert "commit-then-fail" in runs[0] and "retrieve-500" in runs[0]


def test_create_parse_leaves_the_gc_as_it_found_it(client: Anthropic) -> None:
    """The parse pauses the cyclic GC for speed; it must come back on (and stay off in a
    host that had turned it off)."""
    client.messages.batches.create(requests=requests(3))
    assert gc.isenabled()
    with pytest.raises(anthropic.BadRequestError, match="Duplicate"):
        client.messages.batches.create(requests=requests(3) + requests(1))
    assert gc.isenabled()
    gc.disable()
    try:
        client.messages.batches.create(requests=requests(3, prefix="s"))
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        (5, "tools: Input should be a valid list"),
        ([7], "tools.0: Input should be a valid dictionary"),
    ],
)
def test_malformed_tools_are_an_errored_result_not_a_crash(
    client: Anthropic, tools: Any, message: str
) -> None:
    """A request with a malformed `tools` errors on its own; the batch still ends (intake
    used to crash on it, leaving a committed batch in_progress for ever)."""
    reqs = [request("ok"), request("bad", tools=tools)]
    results = results_of(client, reqs)
    assert results["ok"].type == "succeeded"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"
    assert results["bad"].error.error.message == message
