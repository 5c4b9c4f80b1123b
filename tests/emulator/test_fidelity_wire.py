"""Fidelity audit, wire level (contract sections 1, 2, 3, 6): exact shapes, headers on
every response, error types and SDK exception classes, body limits. Tests that found a
divergence say so in their docstring."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

import anthropic
import httpx2
import orjson
import pytest
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch

from runner.emulator import Emulator
from tests.emulator.conftest import request, requests, sdk

RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
HEADERS = {"x-api-key": "k", "anthropic-version": "2026-10-21"}


def test_message_batch_wire_shape(slow_client: Anthropic, slow_emu: Emulator) -> None:
    """3.1: every field present, nulls explicit, datetimes RFC 3339 with Z, results_url on
    the emulator's own origin and only once ended."""
    created = slow_client.messages.batches.with_raw_response.create(requests=requests(2))
    raw = orjson.loads(created.http_response.content)
    assert list(raw) == [
        "id",
        "type",
        "processing_status",
        "request_counts",
        "created_at",
        "expires_at",
        "ended_at",
        "cancel_initiated_at",
        "archived_at",
        "results_url",
    ]
    assert raw["ended_at"] is None and raw["archived_at"] is None and raw["results_url"] is None
    assert RFC3339_Z.fullmatch(raw["created_at"]) and RFC3339_Z.fullmatch(raw["expires_at"])
    assert created.headers["content-type"] == "application/json"
    slow_emu.advance(101)
    ended = orjson.loads(
        slow_client.messages.batches.with_raw_response.retrieve(raw["id"]).http_response.content
    )
    assert RFC3339_Z.fullmatch(ended["ended_at"])
    assert ended["results_url"] == f"{slow_emu.base_url}/v1/messages/batches/{raw['id']}/results"
    assert sum(ended["request_counts"].values()) == 2


def test_results_body_is_exact_jsonl(client: Anthropic) -> None:
    """3.5 / 11.2: `\\n` only, no blank line, a trailing newline, errored envelope with
    request_id null, succeeded usage with service_tier batch and a consistent split."""
    reqs = [request("ok"), request("bad", model="claude-nope")]
    batch = client.messages.batches.create(requests=reqs)
    url = f"/v1/messages/batches/{batch.id}/results"
    body = client.get(url, cast_to=httpx2.Response).content
    assert b"\r" not in body and b"\n\n" not in body and body.endswith(b"\n")
    lines = {line["custom_id"]: line["result"] for line in map(orjson.loads, body.splitlines())}
    assert lines["bad"] == {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "model: claude-nope"},
            "request_id": None,
        },
    }
    usage = lines["ok"]["message"]["usage"]
    split = usage["cache_creation"]
    assert usage["service_tier"] == "batch"
    assert (
        split["ephemeral_5m_input_tokens"] + split["ephemeral_1h_input_tokens"]
        == (usage["cache_creation_input_tokens"])
    )


def test_empty_page_and_deleted_shapes(client: Anthropic) -> None:
    """3.3 / 3.4: nulls on an empty page; DeletedMessageBatch exactly."""
    page = client.get("/v1/messages/batches", cast_to=httpx2.Response).json()
    assert page == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    batch = client.messages.batches.create(requests=requests(1))
    deleted = client.messages.batches.with_raw_response.delete(batch.id)
    assert orjson.loads(deleted.http_response.content) == {
        "id": batch.id,
        "type": "message_batch_deleted",
    }


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE"])
def test_unsupported_methods_keep_request_id(emu: Emulator, method: str) -> None:
    """1.3 / 6: request-id on every response. Found: the stdlib answered HEAD/OPTIONS with
    an HTML 501 and no request-id."""
    with httpx2.Client(base_url=emu.base_url) as http:
        response = http.request(method, "/v1/messages/batches", headers=HEADERS)
        assert response.headers["request-id"].startswith("req_")
        assert response.status_code in (404, 405, 501)
        if method != "HEAD":
            error = response.json()
            assert (
                error["type"] == "error" and error["request_id"] == response.headers["request-id"]
            )
        # The keep-alive connection (or a fresh one) still works afterwards.
        assert http.get("/v1/messages/batches", headers=HEADERS).status_code == 200


def test_repeated_beta_header_and_beta_query(client: Anthropic, emu: Emulator) -> None:
    """1.2: anthropic-beta repeated counts like a comma list; ?beta=true is ignored."""
    body = orjson.dumps({"requests": [request("x", model="claude-opus-4-6", max_tokens=300_000)]})
    headers = [
        *HEADERS.items(),
        ("content-type", "application/json"),
        ("anthropic-beta", "context-1m-2025-08-07"),
        ("anthropic-beta", "output-300k-2026-03-24"),
    ]
    with httpx2.Client(base_url=emu.base_url) as http:
        made = http.post("/v1/messages/batches?beta=true", content=body, headers=headers)
    assert made.status_code == 200
    (line,) = client.messages.batches.results(made.json()["id"])
    assert line.result.type == "succeeded"


def test_conflict_fault_uses_conflict_error(emulator_factory: Callable[..., Emulator]) -> None:
    """6.1: an injected 409 carries `conflict_error` (found: it said invalid_request_error)."""
    emu = emulator_factory({"http_faults": [{"endpoint": "list", "status": 409, "rate": 1.0}]})
    with sdk(emu, max_retries=0) as client, pytest.raises(anthropic.ConflictError) as info:
        client.messages.batches.list()
    assert info.value.type == "conflict_error"


@pytest.mark.parametrize(
    ("status", "error_type", "exc"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (402, "billing_error", anthropic.PaymentRequiredError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        (413, "request_too_large", anthropic.ContentTooLargeError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (502, "api_error", anthropic.InternalServerError),
        (503, "api_error", anthropic.ServiceUnavailableError),
        (504, "timeout_error", anthropic.GatewayTimeoutError),
        (529, "overloaded_error", anthropic.OverloadedError),
    ],
)
def test_fault_statuses_map_to_sdk_classes(
    emulator_factory: Callable[..., Emulator], status: int, error_type: str, exc: type[Exception]
) -> None:
    """6.1: each status travels with its error type and raises the SDK's class for it,
    with the request-id header surfaced as `request_id`."""
    emu = emulator_factory({"http_faults": [{"endpoint": "retrieve", "status": status, "rate": 1}]})
    with sdk(emu, max_retries=0) as client, pytest.raises(exc) as info:
        client.messages.batches.retrieve("msgbatch_x")
    assert isinstance(info.value, anthropic.APIStatusError)
    assert info.value.status_code == status and info.value.type == error_type
    assert str(info.value.request_id).startswith("req_")


def test_error_code_without_retry_after_is_not_slept_on(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """6.2: spend limit 429 has no retry-after; with x-should-retry false one call only."""
    fault = {
        "endpoint": "create",
        "status": 429,
        "rate": 1,
        "error_code": "enforced_spend_limit_reached",
        "should_retry": False,
    }
    emu = emulator_factory({"http_faults": [fault]})
    client = sdk(emu, max_retries=2)
    with client, pytest.raises(anthropic.EnforcedSpendLimitReachedError) as info:
        client.messages.batches.create(requests=requests(1))
    assert "retry-after" not in info.value.response.headers
    assert info.value.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}  # type: ignore[index]


def test_models_lifecycle_query_and_pagination(client: Anthropic) -> None:
    """2.8: `lifecycle[]=` filters (every emulated model is active); pages of 5 walk the
    whole list once; both directions."""
    every = [m.id for m in client.models.list(limit=5)]
    assert len(every) == len(set(every)) >= 19
    assert [m.id for m in client.models.list(limit=1000, lifecycle=["active"])] == every
    assert list(client.models.list(lifecycle=["retired"])) == []
    page = client.models.list(limit=3, before_id=every[5])
    assert [m.id for m in page.data] == every[2:5] and page.has_more
    info = client.models.retrieve(every[0])
    assert info.type == "model" and info.max_tokens and info.display_name


def test_count_tokens_body_limit_is_32_mb(client: Anthropic) -> None:
    """2.7: count_tokens has the Messages API's 32 MB limit, not the 256 MB batch one."""
    with pytest.raises(anthropic.ContentTooLargeError):
        client.messages.count_tokens(
            model="claude-sonnet-4-5",
            messages=[{"role": "user", "content": "x" * (32 * 1024 * 1024)}],
        )
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x" * 4_000_000}]
    )
    assert counted.input_tokens == 1_000_000


def test_chunked_body_over_the_limit_is_413(emulator_factory: Callable[..., Emulator]) -> None:
    """A chunked body over max_body_bytes is a 413 like any other (drained, not kept)."""
    emu = emulator_factory({"max_body_bytes": 1000})
    parts = [b'{"requests":[', b" " * 600, b" " * 600, b"]}"]
    with sdk(emu, max_retries=0) as client:
        with pytest.raises(anthropic.ContentTooLargeError):
            client.post("/v1/messages/batches", cast_to=MessageBatch, content=iter(parts))
        assert client.messages.batches.list().data == []


def test_bad_chunk_size_is_400_not_500(emu: Emulator) -> None:
    """A malformed chunked body is the client's error (found: an 'emulator bug' 500)."""
    host, port = emu.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/messages/batches HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n"
            b"anthropic-version: 2026-10-21\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        head = sock.recv(4096).split(b"\r\n")[0]
    assert head.startswith(b"HTTP/1.1 400")
