"""The Message Batches API, through the official SDK. The only module that imports anthropic.

Errors are mapped to the few kinds the executor acts on (defined in runner.remote):
- `Retryable`: try the same call later (`retry_after` seconds if the API said so).
- `CreateUncertain`: a create failed in a way that may have committed it; reconcile by
  listing batches, never post blindly again.
- `ResultsUnavailable`: the results stream broke or is not there yet; collect again later.
- `RemoteError` (exit 1): retrying will not help; carries the API's message.
The API key never appears in any of them: messages are built from status, type and the
API's own error text only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import orjson
from anthropic.types.messages import MessageBatch

from runner.backend import (
    BatchGone,
    CreateUncertain,
    RemoteBatch,
    ResultsGone,
    ResultsUnavailable,
    Retryable,
    Unreachable,
    connection_reason,
    require_api_key,
)
from runner.errors import RemoteError

EMULATOR_API_KEY = "sk-emulator-not-a-secret"
# Statuses that prove a create was refused before anything was made.
_CREATE_REFUSED = frozenset({400, 401, 402, 403, 404, 413, 422})
_RETRYABLE = frozenset({408, 409, 429})


class _NotFound(RemoteError):
    """HTTP 404: a RemoteError unless the caller knows what a missing object means."""


def _timestamp(value: Any) -> tuple[str, float]:
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.isoformat().replace("+00:00", "Z"), dt.timestamp()


def _batch(b: MessageBatch) -> RemoteBatch:
    created, ts = _timestamp(b.created_at)
    c = b.request_counts
    counts = {
        "processing": c.processing,
        "succeeded": c.succeeded,
        "errored": c.errored,
        "canceled": c.canceled,
        "expired": c.expired,
    }
    return RemoteBatch(b.id, str(b.processing_status), created, ts, counts)


def retry_after(exc: anthropic.APIStatusError) -> float | None:
    """Seconds the API asked us to wait (`retry-after-ms` or `retry-after`), if any."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if value > 0:
            return value * scale
    return None


def describe(exc: anthropic.APIStatusError) -> str:
    """`HTTP 400 invalid_request_error: <the API's message>`: never headers, never the key."""
    kind = getattr(exc, "type", None) or "error"
    message = getattr(exc, "api_message", None) or exc.message
    return f"HTTP {exc.status_code} {kind}: {message}"


def _status_error(exc: anthropic.APIStatusError) -> Exception:
    if exc.status_code in _RETRYABLE or exc.status_code >= 500:
        return Retryable(describe(exc), retry_after(exc))
    return RemoteError(describe(exc))


class Backend:
    """The calls the executor makes. Create never retries inside the SDK; the rest do."""

    def __init__(self, client: anthropic.Anthropic) -> None:
        self.client = client

    @classmethod
    def connect(
        cls, base_url: str | None = None, *, api_key: str | None = None, emulated: bool = False
    ) -> Backend:
        """A client configured the usual way (env), given its key (kept out of os.environ,
        which other threads, child processes and crash dumps see), or pointed at an
        emulator."""
        if emulated:
            return cls(anthropic.Anthropic(api_key=EMULATOR_API_KEY, base_url=base_url))
        if api_key is not None:
            return cls(anthropic.Anthropic(api_key=api_key, base_url=base_url))
        require_api_key()
        return cls(anthropic.Anthropic(base_url=base_url))

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def create(self, body: bytes, betas: Sequence[str]) -> RemoteBatch:
        """Post the exact chunk bytes. Raises Retryable (refused for now), RemoteError
        (refused for good) or CreateUncertain (may have been created)."""
        headers = {"anthropic-beta": ",".join(betas)} if betas else {}
        try:
            batch = self.client.post(
                "/v1/messages/batches",
                cast_to=MessageBatch,
                content=body,
                options={"headers": headers, "max_retries": 0},
            )
        except anthropic.APIStatusError as exc:
            if exc.status_code == 429:
                raise Retryable(describe(exc), retry_after(exc)) from None
            if exc.status_code in _CREATE_REFUSED:
                raise RemoteError(f"create refused: {describe(exc)}") from None
            raise CreateUncertain(describe(exc), retry_after(exc)) from None
        except (anthropic.APIConnectionError, httpx2.HTTPError) as exc:
            raise CreateUncertain(f"{type(exc).__name__}: connection failed") from None
        return _batch(batch)

    def retrieve(self, batch_id: str) -> RemoteBatch:
        try:
            return _batch(self._call(self.client.messages.batches.retrieve, batch_id))
        except _NotFound as exc:
            raise BatchGone(str(exc)) from None

    def cancel(self, batch_id: str) -> RemoteBatch:
        return _batch(self._call(self.client.messages.batches.cancel, batch_id))

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Exact input tokens of one request's prompt-shaping params (free endpoint)."""
        counted = self._call(self.client.messages.count_tokens, **params)
        return int(counted.input_tokens)

    def newest_batch_id(self) -> str | None:
        """The id of the most recently created batch in the workspace (None if empty)."""
        page = self._call(self.client.messages.batches.list, limit=1)
        return page.data[0].id if page.data else None

    def list_batches(self, stop_at: str | None = None) -> Iterator[RemoteBatch]:
        """Batches of the workspace, newest first, down to (not including) `stop_at`."""
        page = self._call(self.client.messages.batches.list, limit=100)
        try:
            for b in page:
                if b.id == stop_at:
                    return
                yield _batch(b)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc) from None
        except (anthropic.APIConnectionError, httpx2.HTTPError) as exc:
            raise Unreachable(connection_reason(exc)) from None

    def results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Stream the result lines of an ended batch as dicts, never holding them all.
        Raises ResultsUnavailable if the stream breaks (collect again later)."""
        try:
            with self.client.messages.batches.with_streaming_response.results(batch_id) as resp:
                yield from _lines(resp.iter_bytes())
        except anthropic.NotFoundError as exc:
            raise ResultsGone(describe(exc)) from None
        except anthropic.APIStatusError as exc:
            raise ResultsUnavailable(describe(exc)) from None
        except (anthropic.AnthropicError, httpx2.HTTPError, httpx2.StreamError) as exc:
            raise ResultsUnavailable(f"{type(exc).__name__}: results stream broke") from None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except anthropic.NotFoundError as exc:
            raise _NotFound(describe(exc)) from None
        except anthropic.APIStatusError as exc:
            raise _status_error(exc) from None
        except (anthropic.APIConnectionError, httpx2.HTTPError) as exc:
            raise Unreachable(connection_reason(exc)) from None


def _lines(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Split a byte stream into JSON lines. A last line that does not parse was cut."""
    tail = b""
    for chunk in chunks:
        tail += chunk
        *lines, tail = tail.split(b"\n")
        for line in lines:
            if line.strip():
                yield _parse(line)
    if tail.strip():
        yield _parse(tail)


def _parse(line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ResultsUnavailable("a result line was cut short") from None
    if not isinstance(obj, dict) or "custom_id" not in obj:
        raise ResultsUnavailable("a result line is not a result")
    return obj
