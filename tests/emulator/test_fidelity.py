"""Fidelity audit against api-contract.md: exact wire shapes, edge cases of the state machine,
validation bounds, caching and cost figures. Each test names the contract section it holds
the emulator to; the ones that found a divergence say so in their docstring."""

from __future__ import annotations

import gc
import re
import socket
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch

from runner.emulator import Emulator
from runner.emulator.params import Context
from runner.emulator.responder import Record, make_record
from tests.emulator.conftest import request, requests, sdk

DAY = 86_400
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
HEADERS = {"x-api-key": "k", "anthropic-version": "2026-10-21"}


def _results(client: Anthropic, reqs: list[Any], **kwargs: Any) -> dict[str, Any]:
    batch = client.messages.batches.create(requests=reqs, **kwargs)
    return {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}


# -- wire shapes (sections 1.3, 3) ------------------------------------------------------------


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


# -- validation (section 4) and beta caps (section 10) ----------------------------------------


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
    results = _results(
        client,
        [{"custom_id": "x", "params": params}],
        extra_headers={"anthropic-beta": "output-300k-2026-03-24"},
    )
    assert results["x"].error.error.message == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens "
        "for claude-sonnet-4-5"
    )


def test_null_cache_control_is_not_a_breakpoint(client: Anthropic) -> None:
    """8.1: `cache_control: null` marks nothing; found: it counted towards the limit of 4."""
    block = {"type": "text", "text": "x", "cache_control": None}
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [block] * 5}],
    }
    assert _results(client, [{"custom_id": "n", "params": params}])["n"].type == "succeeded"


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ({"type": "persistent"}, "cache_control.type"),
        ({"type": "ephemeral", "ttl": "2h"}, "cache_control.ttl"),
    ],
)
def test_bad_cache_control_is_errored(
    client: Anthropic, marker: dict[str, Any], message: str
) -> None:
    """8.1: `ephemeral` is the only type and the TTL is 5m or 1h. Found: anything was
    accepted, an unknown ttl silently becoming 5m."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": marker}]}
        ],
    }
    result = _results(client, [{"custom_id": "c", "params": params}])["c"]
    assert result.type == "errored" and message in result.error.error.message


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


# -- messages (section 7) ---------------------------------------------------------------------


def test_output_never_exceeds_max_tokens_with_thinking(client: Anthropic) -> None:
    """7: output_tokens (thinking included) stays within max_tokens. Found: adaptive
    thinking with a small max_tokens billed more output than allowed, with an empty text."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 3,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    message = _results(client, [{"custom_id": "t", "params": params}])["t"].message
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
        message = _results(client, [request("s", max_tokens=5)])["s"].message
    assert message.usage.output_tokens == 5 and message.stop_reason == "max_tokens"


# -- state machine (section 5) ----------------------------------------------------------------


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


# -- accounting -------------------------------------------------------------------------------


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


# -- cost (section 8.4), hand computed ---------------------------------------------------------


def _cached(cid: str, model: str, ttl: str, **extra: Any) -> dict[str, Any]:
    system = [
        {"type": "text", "text": "s" * 6000, "cache_control": {"type": "ephemeral", "ttl": ttl}}
    ]
    params = {
        "model": model,
        "max_tokens": 100,
        "system": system,
        "messages": [{"role": "user", "content": "q" * 40}],
        **extra,
    }
    return {"custom_id": cid, "params": params}


@pytest.mark.parametrize(
    ("model", "ttl", "extra", "p_in", "p_out", "p_read", "write_x", "m"),
    [
        # Sonnet 4.6, 1h write (2x), inference_geo us (1.1x on Claude 4.6+), read 0.1x.
        ("claude-sonnet-4-6", "1h", {"inference_geo": "us"}, 3, 15, 0.30, 2.0, 0.55),
        # Fable 5.1: reads at the 0.025x exception; 5m write 1.25x.
        ("claude-fable-5-1", "5m", {}, 10, 50, 0.25, 1.25, 0.5),
        # Sonnet 4.5 is before 4.6: inference_geo us costs nothing extra.
        ("claude-sonnet-4-5", "5m", {"inference_geo": "us"}, 3, 15, 0.30, 1.25, 0.5),
    ],
)
def test_cost_by_hand(
    emu: Emulator,
    client: Anthropic,
    model: str,
    ttl: str,
    extra: dict[str, Any],
    p_in: float,
    p_out: float,
    p_read: float,
    write_x: float,
    m: float,
) -> None:
    """One write, one read of a 1,500-token system prompt, 10 input tokens each."""
    results = _results(client, [_cached("w", model, ttl, **extra)])
    results.update(_results(client, [_cached("r", model, ttl, **extra)]))
    usage_w, usage_r = results["w"].message.usage, results["r"].message.usage
    assert usage_r.cache_read_input_tokens == 1500 and usage_w.cache_creation_input_tokens == 1500
    out = usage_w.output_tokens + usage_r.output_tokens
    expected = m * (20 * p_in + 1500 * p_in * write_x + 1500 * p_read + out * p_out) / 1e6
    assert emu.stats()["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_haiku_55_long_prompt_tier(emu: Emulator, client: Anthropic) -> None:
    """Haiku 5.5 above 100k prompt tokens bills $0.50/$2.50 (batch: half)."""
    params = {
        "model": "claude-haiku-5-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "z" * 400_008}],
    }
    usage = _results(client, [{"custom_id": "h", "params": params}])["h"].message.usage
    assert usage.input_tokens == 100_002
    expected = 0.5 * (100_002 * 0.50 + usage.output_tokens * 2.50) / 1e6
    assert emu.stats()["cost_usd"] == pytest.approx(expected, rel=1e-9)


# -- prompt caching (section 8.1) -------------------------------------------------------------


def test_automatic_mode_reads_the_earlier_turn(client: Anthropic) -> None:
    """8.1: the automatic breakpoint moves forward with the conversation and the lookup
    checks earlier block boundaries (~20 blocks back), so turn 2 reads what turn 1 wrote.
    Found: only exact breakpoint positions were looked up, so turn 2 never hit."""

    def turn(cid: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "cache_control": {"type": "ephemeral"},
            "messages": messages,
        }
        return {"custom_id": cid, "params": params}

    first = [{"role": "user", "content": "w" * 8000}]
    second = [*first, {"role": "assistant", "content": "okay"}, {"role": "user", "content": "more"}]
    one = _results(client, [turn("one", first)])["one"].message.usage
    two = _results(client, [turn("two", second)])["two"].message.usage
    assert one.cache_creation_input_tokens == 2000
    assert two.cache_read_input_tokens == 2000
    assert two.cache_creation_input_tokens == 2 and two.input_tokens == 0


def test_explicit_breakpoint_looks_back_to_an_earlier_write(client: Anthropic) -> None:
    """8.1: a breakpoint on the user turn finds the system prefix another request cached."""
    system = "s" * 6000
    marked = {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
    plain = {"type": "text", "text": system}

    def req(cid: str, sys_block: dict[str, Any], question: dict[str, Any]) -> dict[str, Any]:
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "system": [sys_block],
            "messages": [{"role": "user", "content": [question]}],
        }
        return {"custom_id": cid, "params": params}

    _results(client, [req("w", marked, {"type": "text", "text": "first"})])
    late = {"type": "text", "text": "q" * 40, "cache_control": {"type": "ephemeral"}}
    usage = _results(client, [req("r", plain, late)])["r"].message.usage
    assert usage.cache_read_input_tokens == 1500
    assert usage.cache_creation_input_tokens == 10 and usage.input_tokens == 0


def test_same_text_in_another_part_of_the_prompt_is_another_prefix(client: Anthropic) -> None:
    """The prefix is the rendered prompt: a system prompt's text sent as a user turn is not
    a cache hit (found: only block contents were hashed, not where they sit)."""
    text = {"type": "text", "text": "s" * 6000, "cache_control": {"type": "ephemeral"}}
    as_system = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": [text],
        "messages": [{"role": "user", "content": "q"}],
    }
    as_user = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [text]}],
    }
    _results(client, [{"custom_id": "s", "params": as_system}])
    usage = _results(client, [{"custom_id": "u", "params": as_user}])["u"].message.usage
    assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == 1500


def test_cache_follows_emulated_time_across_batches(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """Requests are processed in emulated time order across overlapping batches: the first
    request to reach the cache writes it, whichever batch ends first. Found: the cache was
    updated batch by batch in end order, so a later-ending batch read an entry written at a
    later emulated instant and the earlier request was billed the write."""
    emu = emulator_factory({"latency": {"min_s": 100, "max_s": 100}})
    with sdk(emu, max_retries=0) as client:
        a = client.messages.batches.create(requests=[_cached("a0", "claude-sonnet-4-5", "5m")])
        emu.advance(1)  # b's 100 requests run at 2, 3, ... 101 s; a's one request at 100 s
        b_reqs = [_cached(f"b{i}", "claude-sonnet-4-5", "5m") for i in range(100)]
        b = client.messages.batches.create(requests=b_reqs)
        emu.advance(200)
        usage_a = next(iter(client.messages.batches.results(a.id))).result.message.usage  # type: ignore[union-attr]
        usage_b = {
            line.custom_id: line.result.message.usage  # type: ignore[union-attr]
            for line in client.messages.batches.results(b.id)
        }
    assert usage_b["b0"].cache_creation_input_tokens == 1500
    assert usage_a.cache_read_input_tokens == 1500 and usage_a.cache_creation_input_tokens == 0


def test_reading_a_longer_prefix_does_not_create_shorter_entries(client: Anthropic) -> None:
    """A breakpoint inside a prefix that was read costs nothing and is not written, so a
    later request ending there misses. Found: every breakpoint got a free cache entry."""
    system = "s" * 6000
    question = "q" * 6000

    def req(cid: str, on_system: bool, on_question: bool) -> dict[str, Any]:
        mark = {"cache_control": {"type": "ephemeral"}}
        sys_block = {"type": "text", "text": system, **(mark if on_system else {})}
        q_block = {"type": "text", "text": question, **(mark if on_question else {})}
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "system": [sys_block],
            "messages": [{"role": "user", "content": [q_block]}],
        }
        return {"custom_id": cid, "params": params}

    _results(client, [req("long", False, True)])  # writes system + question (3,000)
    both = _results(client, [req("both", True, True)])["both"].message.usage
    assert both.cache_read_input_tokens == 3000 and both.cache_creation_input_tokens == 0
    short = _results(client, [req("short", True, False)])["short"].message.usage
    assert short.cache_read_input_tokens == 0 and short.cache_creation_input_tokens == 1500


def test_lookback_is_bounded_to_20_blocks(client: Anthropic) -> None:
    """A cached prefix more than 20 blocks before the breakpoint is not found."""
    head = [{"role": "user", "content": "w" * 8000}]
    filler = [
        {"role": "assistant" if i % 2 == 0 else "user", "content": f"turn {i}"} for i in range(21)
    ]

    def req(cid: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "cache_control": {"type": "ephemeral"},
            "messages": messages,
        }
        return {"custom_id": cid, "params": params}

    _results(client, [req("a", head)])
    usage = _results(client, [req("b", head + filler)])["b"].message.usage
    assert usage.cache_read_input_tokens == 0


# -- performance guard ------------------------------------------------------------------------


def test_create_parse_leaves_the_gc_as_it_found_it(client: Anthropic) -> None:
    """The parse pauses the cyclic GC for speed; it must come back on (and stay off in a
    host that had turned it off)."""
    client.messages.batches.create(requests=requests(3))
    assert gc.isenabled()
    gc.disable()
    try:
        client.messages.batches.create(requests=requests(3, prefix="s"))
        assert not gc.isenabled()
    finally:
        gc.enable()


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


def test_record_with_lookback_round_trips_through_state() -> None:
    """--state keeps each breakpoint's lookback, so a batch that ends after a restart
    still finds earlier prefixes; rows from before lookback existed still load."""
    messages = [
        {"role": "user", "content": "a" * 50},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "cache_control": {"type": "ephemeral"},
        "messages": messages,
    }
    record = make_record("x", params, Context("2026-10-21", frozenset()), ())
    assert len(record.breakpoints[0].lookback) == 2
    assert Record.from_row(orjson.loads(orjson.dumps(record.to_row()))) == record
    old_row = record.to_row()
    old_row[-1] = [bp[:3] for bp in old_row[-1]]
    assert Record.from_row(old_row).breakpoints[0].lookback == ()
