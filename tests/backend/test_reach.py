"""backend/reach.py: connection failures are retried for a bounded time, then a clear
error names the URL and what was tried; with --no-wait a pass that reaches nothing fails."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner

from runner.backend import RemoteBatch, Unreachable
from runner.backend.reach import ApiUnreachable, Reach, api_url, patience
from runner.cli import cli
from tests.e2e.helpers import write_job

URL = "http://127.0.0.1:9"


class Flaky:
    """A backend whose calls fail to connect while `down` is set."""

    def __init__(self) -> None:
        self.down = True

    def retrieve(self, batch_id: str) -> RemoteBatch:
        if self.down:
            raise Unreachable("connection refused")
        return RemoteBatch(batch_id, "ended", "2026-12-01T00:00:00Z", 0.0, {})

    def list_batches(self, stop_at: str | None = None) -> Iterator[RemoteBatch]:
        if self.down:
            raise Unreachable("connection refused")
        yield self.retrieve("b")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def reach(inner: Flaky, patience_s: float, clock: Clock) -> Reach:
    return Reach(cast(Any, inner), URL, patience_s, clock)


def test_failures_are_retried_until_the_patience_runs_out() -> None:
    inner, clock = Flaky(), Clock()
    api = reach(inner, 60.0, clock)
    for t in (0.0, 20.0, 59.0):
        clock.t = t
        with pytest.raises(Unreachable):  # still the executor's to retry
            api.retrieve("b")
    clock.t = 61.0
    with pytest.raises(ApiUnreachable) as caught:
        api.retrieve("b")
    assert str(caught.value) == (
        "cannot reach the API at http://127.0.0.1:9: connection refused; tried 4 call(s) over "
        "61s, each retried by the SDK; gave up after 60s (--unreachable-timeout or "
        "BATCHRUN_UNREACHABLE_TIMEOUT sets how long). Check ANTHROPIC_BASE_URL, the network "
        "and any proxy; state is saved, run again"
    )


def test_a_call_that_gets_through_starts_the_wait_afresh() -> None:
    inner, clock = Flaky(), Clock()
    api = reach(inner, 60.0, clock)
    with pytest.raises(Unreachable):
        api.retrieve("b")
    clock.t, inner.down = 50.0, False
    assert api.retrieve("b").id == "b"
    clock.t, inner.down = 100.0, True
    with pytest.raises(Unreachable):
        api.retrieve("b")  # 0 s into a new streak, not 100 s


def test_no_wait_fails_at_once_when_nothing_was_reached() -> None:
    api = reach(Flaky(), 0.0, Clock())
    with pytest.raises(ApiUnreachable, match="with --no-wait, a pass that reaches nothing"):
        list(api.list_batches())


def test_no_wait_carries_on_once_the_api_answered() -> None:
    inner = Flaky()
    api = reach(inner, 0.0, Clock())
    inner.down = False
    assert [b.id for b in api.list_batches()] == ["b"]
    inner.down = True
    with pytest.raises(Unreachable):
        api.retrieve("b")


def test_the_url_shown_has_no_credentials() -> None:
    assert api_url("https://user:s3cret@proxy.example:8443/v1/?k=x") == (
        "https://proxy.example:8443/v1/"
    )


def test_patience_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHRUN_UNREACHABLE_TIMEOUT", "90s")
    assert (patience(None, False), patience(5.0, False), patience(None, True)) == (90.0, 5.0, 0)
    monkeypatch.setenv("BATCHRUN_UNREACHABLE_TIMEOUT", "soon")
    with pytest.raises(Exception, match="give a duration such as 90s or 10m"):
        patience(None, False)


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("mode", [["--no-wait"], ["--unreachable-timeout", "1s"]])
def test_run_against_a_closed_port_ends_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    url = _closed_port()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    job = write_job(tmp_path, inputs=1)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["run", *mode, str(job)])
    assert result.exit_code == 1, result.stderr
    assert f"error: cannot reach the API at {url}: connection refused" in result.stderr
    assert time.monotonic() - started < 60
