"""The remote API's vocabulary, free of the SDK: what a batch looks like to the runner, and
the few kinds of failure the executor acts on (backend.py maps the SDK's errors onto them).

Kept apart from backend.py so that everything but the connection itself loads without the
`anthropic` SDK, whose import costs about a second: a run that proves from state alone that
nothing is left to do never pays it (see `Lazy`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runner.errors import BatchrunError

T = TypeVar("T")


class Retryable(Exception):
    """The call failed for now; try again after `retry_after` seconds (None: use backoff)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(Retryable):
    """No HTTP answer at all (connection refused, DNS, timeout), after the SDK's own retries;
    `reason` says which, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection failed: {reason}")
        self.reason = reason


def connection_reason(exc: BaseException) -> str:
    """A few words on why a connection failed: the OS error or timeout behind the SDK's
    exception (its own text is only "Connection error.")."""
    seen: BaseException | None = exc
    while seen is not None:
        kind = type(seen).__name__
        if isinstance(seen, TimeoutError) or "Timeout" in kind:
            return "timed out"
        if kind in ("UnsupportedProtocol", "InvalidURL", "LocalProtocolError"):
            return "not an http:// or https:// URL"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


class CreateUncertain(Exception):
    """A create failed after it may have reached the API: the batch may exist."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ResultsUnavailable(Exception):
    """The results of an ended batch could not be read completely this time."""


class ResultsGone(ResultsUnavailable):
    """The batch's results are no longer downloadable (archived or deleted)."""


class BatchGone(Exception):
    """The API does not know the batch any more (deleted): its results are lost."""


@dataclass(frozen=True)
class RemoteBatch:
    """The parts of a MessageBatch the runner uses."""

    id: str
    processing_status: str  # in_progress | canceling | ended
    created_at: str  # RFC 3339 as the API sent it
    created_ts: float  # epoch seconds
    counts: dict[str, int]

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def request_count(self) -> int:
        return sum(self.counts.values())


def require_api_key() -> None:
    """The usual configuration needs a key in the environment: say so before any work."""
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise BatchrunError(
            "ANTHROPIC_API_KEY is not set: export it, or use --emulate for a dry run"
        )


class Lazy(Generic[T]):
    """Stands in for the object `make` returns, and makes it on first use. The backend is
    wrapped in one: connecting imports the SDK, and a no-op run never calls the API."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None

    def __getattr__(self, name: str) -> Any:
        if self._made is None:
            self._made = self._make()
        return getattr(self._made, name)

    def close(self) -> None:
        """Close the object if it was ever made; closing never makes it."""
        closer = getattr(self._made, "close", None)
        if closer is not None:
            closer()
