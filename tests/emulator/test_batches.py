"""Endpoints and shapes of contract sections 2 and 3, through the official SDK."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx2
import orjson
import pytest
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from runner.emulator import Emulator
from tests.emulator.conftest import SLOW, request, requests, sdk


def test_create_returns_in_progress_batch(slow_client: Anthropic) -> None:
    """A new batch is in_progress with every request processing and no end fields."""
    batch = slow_client.messages.batches.create(requests=requests(3))
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3
    assert batch.request_counts.succeeded == 0
    assert batch.ended_at is None and batch.results_url is None
    assert batch.cancel_initiated_at is None and batch.archived_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == 86_400


def test_request_id_header_on_success_and_error(client: Anthropic) -> None:
    """Every response carries `request-id`; the SDK exposes it on models and errors."""
    raw = client.messages.batches.with_raw_response.create(requests=requests(1))
    assert raw.headers["request-id"].startswith("req_")
    assert raw.parse()._request_id == raw.headers["request-id"]
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.batches.retrieve("msgbatch_missing")
    assert info.value.request_id and info.value.request_id.startswith("req_")
    assert info.value.body["request_id"] == info.value.request_id  # type: ignore[index]


def test_batch_ends_after_latency(slow_emu: Emulator, slow_client: Anthropic) -> None:
    """Counts stay in processing until the whole batch ends, then move at once."""
    batch = slow_client.messages.batches.create(requests=requests(4))
    slow_emu.advance(50)
    mid = slow_client.messages.batches.retrieve(batch.id)
    assert mid.processing_status == "in_progress" and mid.request_counts.processing == 4
    slow_emu.advance(51)
    done = slow_client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended"
    assert done.request_counts.processing == 0 and done.request_counts.succeeded == 4
    assert done.ended_at is not None and done.results_url
    assert done.results_url.startswith(slow_emu.base_url)


def test_results_map_to_inputs(client: Anthropic) -> None:
    """Each result echoes its own prompt, with batch usage and service tier."""
    batch = client.messages.batches.create(requests=requests(5))
    results = {r.custom_id: r for r in client.messages.batches.results(batch.id)}
    assert set(results) == {f"r{i}" for i in range(5)}
    for i in range(5):
        result = results[f"r{i}"].result
        assert result.type == "succeeded"
        text = result.message.content[0].text  # type: ignore[union-attr]
        assert f"question number {i} about" in text and "claude-sonnet-4-5" in text
        assert result.message.usage.service_tier == "batch"
        assert result.message.stop_reason == "end_turn"


def test_same_request_same_message(client: Anthropic) -> None:
    """Deterministic answers: the same params give the same message in another batch."""
    a = client.messages.batches.create(requests=[request("a", "same words")])
    b = client.messages.batches.create(requests=[request("b", "same words")])
    ma = next(iter(client.messages.batches.results(a.id))).result.message  # type: ignore[union-attr]
    mb = next(iter(client.messages.batches.results(b.id))).result.message  # type: ignore[union-attr]
    assert ma.id == mb.id and ma.content == mb.content


def test_results_before_end_raise_in_sdk(slow_client: Anthropic) -> None:
    """The SDK refuses results without results_url; a direct GET is a 400."""
    batch = slow_client.messages.batches.create(requests=requests(1))
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        slow_client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        slow_client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)


def test_beta_resource_works(client: Anthropic) -> None:
    """client.beta.messages.batches hits the same endpoints, with the beta header."""
    batch = client.beta.messages.batches.create(
        requests=requests(2), betas=["message-batches-2024-09-24"]
    )
    assert client.beta.messages.batches.retrieve(batch.id).id == batch.id
    lines = list(client.beta.messages.batches.results(batch.id, betas=["x-test"]))
    assert {line.custom_id for line in lines} == {"r0", "r1"}
    assert [b.id for b in client.beta.messages.batches.list()] == [batch.id]
    assert client.beta.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_raw_bytes_create(client: Anthropic) -> None:
    """The runner posts pre-serialised bytes with client.post(content=...)."""
    raw = (
        b'{"requests":[{"custom_id":"raw-1","params":{"model":"claude-opus-4-6",'
        b'"max_tokens":200000,"messages":[{"role":"user","content":"hi"}]}}]}'
    )
    batch = client.post(
        "/v1/messages/batches",
        cast_to=MessageBatch,
        content=raw,
        options={"headers": {"anthropic-beta": "output-300k-2026-03-24"}},
    )
    assert isinstance(batch, MessageBatch) and batch.request_counts.processing == 1
    (line,) = client.messages.batches.results(batch.id)
    assert line.custom_id == "raw-1" and line.result.type == "succeeded"


def test_delete_lifecycle(emulator_factory: Callable[..., Emulator]) -> None:
    """Delete is refused while processing, allowed once ended; then the batch is gone."""
    slow_emu = emulator_factory({**SLOW, "cancel_drain_s": 10.0})
    slow_client = sdk(slow_emu, max_retries=0)
    batch = slow_client.messages.batches.create(requests=requests(1))
    with pytest.raises(anthropic.BadRequestError):
        slow_client.messages.batches.delete(batch.id)
    slow_client.messages.batches.cancel(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        slow_client.messages.batches.delete(batch.id)
    slow_emu.advance(200)
    deleted = slow_client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        slow_client.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        slow_client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)
    with pytest.raises(anthropic.NotFoundError):
        slow_client.messages.batches.delete(batch.id)
    slow_client.close()


def test_every_result_kind_validates_strictly(emulator_factory: Callable[..., Emulator]) -> None:
    """The SDK builds result lines without validation, so validate each kind here."""
    emu = emulator_factory(
        {"latency": {"min_s": 100, "max_s": 100}, "outcomes": {"errored": 0.5}, "seed": 4}
    )
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(8))
        emu.advance(50)
        client.messages.batches.cancel(batch.id)
        emu.advance(1)
        response = client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)
        body = response.read()
    assert body.endswith(b"\n") and b"\r" not in body and b"\n\n" not in body
    kinds = set()
    for raw in body.splitlines():
        line = MessageBatchIndividualResponse.model_validate(orjson.loads(raw), strict=False)
        kinds.add(line.result.type)
        if line.result.type == "errored":
            assert line.result.error.error.type == "api_error"
            assert line.result.error.request_id is None
    assert kinds == {"succeeded", "errored", "canceled"}


def test_abandoned_results_stream_leaves_server_healthy(emu: Emulator) -> None:
    """A client that stops reading a large results stream does not upset the server."""
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=requests(1_500))
        with client.messages.batches.with_streaming_response.results(batch.id) as response:
            next(response.iter_bytes(1024))
    with sdk(emu, max_retries=0) as client:
        assert client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_results_order_is_not_request_order(client: Anthropic) -> None:
    """Like the API, results come in no particular order (stable per batch)."""
    batch = client.messages.batches.create(requests=requests(30))
    first = [line.custom_id for line in client.messages.batches.results(batch.id)]
    again = [line.custom_id for line in client.messages.batches.results(batch.id)]
    assert first == again and sorted(first) == sorted(f"r{i}" for i in range(30))
    assert first != [f"r{i}" for i in range(30)]
