"""The backend's own logic: error mapping, retry-after, and the streamed JSONL reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from runner.backend import BatchGone, CreateUncertain, ResultsUnavailable, Retryable
from runner.backend import sdk as backend
from runner.backend.sdk import Backend
from runner.errors import RemoteError

KEY = "sk-unit-test-secret"


def chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_lines_split_across_chunks_and_skip_blank_lines() -> None:
    body = b'{"custom_id":"a","result":{}}\n\n{"custom_id":"b","result":{}}\n'
    assert [x["custom_id"] for x in backend._lines(chunks(body))] == ["a", "b"]


def test_final_line_without_newline_is_parsed() -> None:
    body = b'{"custom_id":"a","result":{}}\n{"custom_id":"b","result":{}}'
    assert len(list(backend._lines(chunks(body)))) == 2


def test_cut_last_line_means_collect_again() -> None:
    body = b'{"custom_id":"a","result":{}}\n{"custom_id":"b","res'
    with pytest.raises(ResultsUnavailable):
        list(backend._lines(chunks(body)))


def client_answering(status: int, headers: dict[str, str], body: dict[str, Any]) -> Backend:
    """A real SDK client whose transport answers every request the same way."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, json=body)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(
        api_key=KEY, base_url="http://127.0.0.1:9", http_client=http, max_retries=0
    )
    return Backend(client)


def error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def test_create_429_is_retryable_with_retry_after() -> None:
    api = client_answering(429, {"retry-after": "7"}, error("rate_limit_error", "slow down"))
    with pytest.raises(Retryable) as info:
        api.create(b'{"requests":[]}', [])
    assert info.value.retry_after == 7.0 and KEY not in str(info.value)


def test_create_5xx_is_uncertain() -> None:
    api = client_answering(500, {}, error("api_error", "oops"))
    with pytest.raises(CreateUncertain, match="api_error: oops"):
        api.create(b'{"requests":[]}', ["b1"])


def test_create_400_is_a_remote_error_with_the_api_message() -> None:
    api = client_answering(400, {}, error("invalid_request_error", "custom_id: bad"))
    with pytest.raises(RemoteError, match="custom_id: bad") as info:
        api.create(b'{"requests":[]}', [])
    assert KEY not in str(info.value)


def test_retrieve_503_is_retryable_and_retry_after_ms_wins() -> None:
    headers = {"retry-after-ms": "250", "retry-after": "9"}
    api = client_answering(503, headers, error("overloaded_error", "busy"))
    with pytest.raises(Retryable) as info:
        api.retrieve("msgbatch_1")
    assert info.value.retry_after == 0.25


def test_retrieve_404_means_the_batch_is_gone() -> None:
    api = client_answering(404, {}, error("not_found_error", "no such batch"))
    with pytest.raises(BatchGone):
        api.retrieve("msgbatch_1")


def test_connect_without_key_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.errors import BatchrunError

    with pytest.raises(BatchrunError, match="ANTHROPIC_API_KEY"):
        Backend.connect()


def test_a_lazy_backend_that_was_never_used_closes_without_connecting() -> None:
    """Closing the backend of a no-op run must not import the SDK just to close it."""
    from runner.backend import Lazy

    made: list[int] = []
    lazy = Lazy(lambda: made.append(1))
    lazy.close()
    assert made == []
