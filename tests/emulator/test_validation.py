"""Create-time validation, HTTP errors (section 6) and asynchronous params validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import Anthropic, Omit
from anthropic.types.messages import MessageBatch

from runner.emulator import Emulator
from tests.emulator.conftest import request, requests, sdk


def _only(client: Anthropic, params: dict[str, Any], **kwargs: Any) -> Any:
    """Create a one-request batch and return its single result."""
    batch = client.messages.batches.create(
        requests=[{"custom_id": "x", "params": params}], **kwargs
    )
    (line,) = client.messages.batches.results(batch.id)
    return line.result


def _params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_auth_bearer_or_x_api_key(emulator_factory: Callable[..., Emulator]) -> None:
    """Either header authenticates; with --api-key only that key does; none is a 401."""
    emu = emulator_factory(api_key="secret")
    with sdk(emu, max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            client.messages.batches.list()
        assert info.value.type == "authentication_error"
        ok = client.messages.batches.list(extra_headers={"Authorization": "Bearer secret"})
        assert ok.data == []
        headers = {"Authorization": Omit(), "x-api-key": "secret"}
        assert client.messages.batches.list(extra_headers=headers).data == []
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.batches.list(extra_headers={"Authorization": Omit()})


def test_missing_version_header(client: Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        client.messages.batches.list(extra_headers={"anthropic-version": Omit()})


@pytest.mark.parametrize(
    ("reqs", "message"),
    [
        ([], "at least 1 item"),
        ([request("a" * 65)], "at most 64 characters"),
        ([request("bad id!")], "should match pattern"),
        ([request("")], "at least 1 character"),
        ([request("dup"), request("dup")], "Duplicate custom_id"),
        ([{"custom_id": "a"}], "params: Field required"),
    ],
)
def test_create_rejects_bad_requests(client: Anthropic, reqs: list[Any], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message) as info:
        client.messages.batches.create(requests=reqs)
    assert info.value.type == "invalid_request_error"
    assert client.messages.batches.list().data == []


def test_create_count_limit(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory({"max_requests_per_batch": 3})
    with sdk(emu, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError, match="at most 3 items"):
            client.messages.batches.create(requests=requests(4))
        assert client.messages.batches.create(requests=requests(3)).request_counts.processing == 3


def test_body_too_large_is_413(emulator_factory: Callable[..., Emulator]) -> None:
    """Bodies above max_body_bytes get 413 request_too_large (ContentTooLargeError)."""
    emu = emulator_factory({"max_body_bytes": 2000})
    with sdk(emu, max_retries=0) as client:
        with pytest.raises(anthropic.ContentTooLargeError) as info:
            client.messages.batches.create(requests=requests(40))
        assert info.value.status_code == 413
        assert str(info.value.type) == "request_too_large"
        assert "maximum allowed number of bytes" in str(info.value)
        assert client.messages.batches.list().data == []  # the connection is still usable


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"requests": 5}', b'{"requests":[7]}'])
def test_malformed_body(client: Anthropic, raw: bytes) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.post("/v1/messages/batches", cast_to=MessageBatch, content=raw)


def test_unknown_path_is_404(client: Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.get("/v1/nothing/here", cast_to=httpx2.Response)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (_params(model="claude-unknown-9"), "model: claude-unknown-9"),
        (_params(model=None), "model: Field required"),
        (_params(max_tokens=0), "greater than or equal to 1"),
        (
            _params(model="claude-opus-4-8", max_tokens=200_000),
            "max_tokens: 200000 > 128000, which is the maximum allowed number of output "
            "tokens for claude-opus-4-8",
        ),
        (_params(temperature=0.5), "temperature"),
        (_params(top_k=5), "top_k"),
        (_params(stream=True), "stream"),
        (_params(speed="fast"), "fast mode"),
        (_params(messages="hi"), "messages"),
        (_params(messages=[]), "at least one message"),
        (_params(messages=[{"role": "robot", "content": "x"}]), "role"),
        (
            _params(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}}
                            for i in range(5)
                        ],
                    }
                ]
            ),
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
    ],
)
def test_params_errors_are_async(client: Anthropic, params: dict[str, Any], message: str) -> None:
    """Bad params do not fail the create: the request ends errored, invalid_request_error."""
    result = _only(client, params)
    assert result.type == "errored"
    assert result.error.error.type == "invalid_request_error"
    assert message in result.error.error.message


def test_sampling_params_allowed_on_old_version(client: Anthropic) -> None:
    """temperature is only removed from API version 2026-10-21 on."""
    result = _only(
        client, _params(temperature=0.5), extra_headers={"anthropic-version": "2023-06-01"}
    )
    assert result.type == "succeeded"


def test_output_300k_beta(client: Anthropic) -> None:
    """The beta lifts the cap to 300,000 on eligible models only."""
    big = _params(model="claude-opus-4-6", max_tokens=300_000)
    assert _only(client, big).type == "errored"
    ok = client.beta.messages.batches.create(
        requests=[{"custom_id": "x", "params": big}], betas=["output-300k-2026-03-24"]
    )
    (line,) = client.beta.messages.batches.results(ok.id)
    assert line.result.type == "succeeded"
    over = _params(model="claude-opus-4-6", max_tokens=300_001)
    beta = {"anthropic-beta": "context-1m-2025-08-07,output-300k-2026-03-24"}
    result = _only(client, over, extra_headers=beta)
    assert "max_tokens: 300001 > 300000" in result.error.error.message
    ineligible = _params(model="claude-opus-4-8", max_tokens=200_000)
    assert _only(client, ineligible, extra_headers=beta).type == "errored"


def test_count_tokens(client: Anthropic) -> None:
    """count_tokens uses the documented approximation: ceil(chars / 4) per text."""
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-5",
        system="x" * 40,
        messages=[{"role": "user", "content": "y" * 41}],
    )
    assert counted.input_tokens == 10 + 11
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="claude-sonnet-4-5", messages=[])


def test_chunked_request_body(client: Anthropic) -> None:
    """A generator body is sent chunked; the emulator reads it like any other."""
    parts = [
        b'{"requests":[',
        b'{"custom_id":"c","params":{"model":"claude-sonnet-4-5",',
        b'"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}}]}',
    ]
    batch = client.post("/v1/messages/batches", cast_to=MessageBatch, content=iter(parts))
    assert batch.request_counts.processing == 1
    assert client.messages.batches.retrieve(batch.id).id == batch.id
