"""Fixtures: an emulator on a free loopback port and official SDK clients pointed at it with
strict response validation, so every shape the emulator returns is checked by the SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anthropic import Anthropic

from runner.emulator import Emulator, start

MODEL = "claude-sonnet-4-5"
SLOW = {"latency": {"min_s": 100.0, "max_s": 100.0}}  # in_progress until the clock moves


def request(custom_id: str, text: str = "hello there", **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(params)
    return {"custom_id": custom_id, "params": body}


def requests(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [request(f"{prefix}{i}", f"question number {i} about emulators") for i in range(n)]


def sdk(emu: Emulator, **kwargs: Any) -> Anthropic:
    return Anthropic(
        api_key="test", base_url=emu.base_url, _strict_response_validation=True, **kwargs
    )


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with a given config; all are stopped at the end of the test."""
    stack: list[Any] = []

    def make(config: Any = None, **kwargs: Any) -> Emulator:
        cm = start(config, **kwargs)
        stack.append(cm)
        return cm.__enter__()

    yield make
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory()


@pytest.fixture
def slow_emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(SLOW)


@pytest.fixture
def client(emu: Emulator) -> Iterator[Anthropic]:
    with sdk(emu, max_retries=0) as c:
        yield c


@pytest.fixture
def slow_client(slow_emu: Emulator) -> Iterator[Anthropic]:
    with sdk(slow_emu, max_retries=0) as c:
        yield c


def results_of(client: Anthropic, reqs: list[Any], **kwargs: Any) -> dict[str, Any]:
    """Create a batch (it must end at once) and return its results by custom_id."""
    batch = client.messages.batches.create(requests=reqs, **kwargs)
    return {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}
