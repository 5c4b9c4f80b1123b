"""How long an unreachable API is waited for.

The executor retries a failed call in a later pass, which is right for a 529 or a 429 but
leaves a run pointed at a closed port (`ANTHROPIC_BASE_URL` typo, a network down) waiting
in silence. `Reach` wraps the backend: connection failures are still retried (each call
already retries twice inside the SDK, with backoff), but once they have lasted `patience`
seconds with no call getting through, the command stops with an error naming the URL and
what was tried. With `patience` 0 (`run --no-wait`), a pass that cannot reach the API at
all fails at its first call instead of reporting "pending".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from runner.backend import RemoteBatch, Unreachable
from runner.errors import BatchrunError
from runner.spec.schema import parse_duration

if TYPE_CHECKING:
    from runner.backend.sdk import Backend

T = TypeVar("T")
DEFAULT_PATIENCE_S = 300.0
PATIENCE_ENV = "BATCHRUN_UNREACHABLE_TIMEOUT"
DEFAULT_URL = "https://api.anthropic.com"


class ApiUnreachable(BatchrunError):
    """The API could not be reached for longer than the command waits."""


def api_url(base_url: str | None) -> str:
    """The URL the client talks to, as the SDK chooses it (api-contract 1.1), without any
    user:password part: the message naming it may reach a log."""
    url = urlsplit(base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_URL)
    host = url.hostname or ""
    netloc = f"{host}:{url.port}" if url.port else host
    return urlunsplit((url.scheme, netloc, url.path, "", ""))


def patience(option: float | None, no_wait: bool) -> float:
    """Seconds to keep retrying connection failures: the option, else the environment,
    else 5 minutes; 0 with --no-wait."""
    if no_wait:
        return 0.0
    if option is not None:
        return option
    raw = os.environ.get(PATIENCE_ENV, "").strip()
    if not raw:
        return DEFAULT_PATIENCE_S
    seconds = duration(raw)
    if seconds is None:
        raise BatchrunError(f"{PATIENCE_ENV}={raw!r}: give a duration such as 90s or 10m")
    return seconds


def duration(text: str) -> float | None:
    """`90s`, `10m`, `1h30m` -> seconds; None if `text` is not a duration."""
    if not re.fullmatch(r"([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+", text):
        return None
    return parse_duration(text)


class Reach:
    """A backend that gives up on an API it cannot reach; see the module docstring."""

    def __init__(
        self, inner: Backend, url: str, patience_s: float, now: Callable[[], float]
    ) -> None:
        self.inner, self.url, self.patience_s, self.now = inner, url, patience_s, now
        self.reached = False  # some call got an HTTP answer in this command
        self.failing_since: float | None = None
        self.failures = 0

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            result = fn(*args, **kwargs)
        except Unreachable as exc:
            self._failed(exc)
            raise
        self._ok()
        return result

    def _ok(self) -> None:
        self.reached = True
        self.failing_since, self.failures = None, 0

    def _failed(self, exc: Unreachable) -> None:
        now = self.now()
        if self.failing_since is None:
            self.failing_since = now
        self.failures += 1
        waited = now - self.failing_since
        gave_up = waited >= self.patience_s > 0
        if gave_up or (self.patience_s == 0 and not self.reached):
            raise ApiUnreachable(self._message(exc, waited)) from None

    def _message(self, exc: Unreachable, waited: float) -> str:
        tried = (
            f"{self.failures} call(s) over {waited:.0f}s, each retried by the SDK"
            if waited
            else "one call, retried by the SDK"
        )
        if self.patience_s == 0:
            after = "with --no-wait, a pass that reaches nothing fails at once"
        else:
            after = (
                f"gave up after {self.patience_s:.0f}s (--unreachable-timeout or "
                f"{PATIENCE_ENV} sets how long)"
            )
        return (
            f"cannot reach the API at {self.url}: {exc.reason}; tried {tried}; {after}. "
            "Check ANTHROPIC_BASE_URL, the network and any proxy; state is saved, run again"
        )

    # The backend's calls (executor.context.BackendLike).

    def create(self, body: bytes, betas: Sequence[str]) -> RemoteBatch:
        return self.inner.create(body, betas)  # its failures are settled by reconciling

    def retrieve(self, batch_id: str) -> RemoteBatch:
        return self._call(self.inner.retrieve, batch_id)

    def cancel(self, batch_id: str) -> RemoteBatch:
        return self._call(self.inner.cancel, batch_id)

    def newest_batch_id(self) -> str | None:
        return self._call(self.inner.newest_batch_id)

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        return self._call(self.inner.count_tokens, params)

    def list_batches(self, stop_at: str | None = None) -> Iterator[RemoteBatch]:
        batches = iter(self.inner.list_batches(stop_at))  # a generator: no call made yet
        while True:
            try:
                batch = self._call(next, batches)
            except StopIteration:
                return
            yield batch

    def results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        return self.inner.results(batch_id)  # a broken stream is collected again later

    def close(self) -> None:
        self.inner.close()
