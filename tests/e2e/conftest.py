"""One emulator per test, started in the test process; the CLI reaches it by base URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from runner import emulator

EmulatorFactory = Callable[..., Any]


@pytest.fixture
def start_emulator() -> Iterator[EmulatorFactory]:
    """`start_emulator(config)` -> a running emulator, stopped at the end of the test."""
    with ExitStack() as stack:
        yield lambda config=None: stack.enter_context(emulator.start(config))
