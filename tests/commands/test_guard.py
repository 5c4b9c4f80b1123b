"""cli._guard: the one chokepoint from outcomes to exit codes, SIGTERM included."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from runner.cli import _guard
from runner.errors import ExitCode


def test_sigterm_ends_a_command_with_143_and_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    """A command waiting (a poll interval) is stopped at once, not after its sleep."""

    def body() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        return ExitCode.OK

    started = time.monotonic()
    assert _guard(body) == ExitCode.TERMINATED
    assert int(ExitCode.TERMINATED) == 143
    assert time.monotonic() - started < 5
    assert "terminated (SIGTERM): stopped cleanly, state is saved" in capsys.readouterr().err


def test_the_sigterm_handler_is_put_back_after_the_command() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert _guard(lambda: ExitCode.OK) == ExitCode.OK
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_worker_thread_keeps_the_process_handlers() -> None:
    """A library caller running a command off the main thread: no signal API misuse."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(_guard(lambda: ExitCode.OK)))
    thread.start()
    thread.join()
    assert codes == [ExitCode.OK]
