"""Shared by the executor tests: a run through the fake API, crash injection, checks."""

from __future__ import annotations

from typing import Any

import pytest

from runner import crashpoint
from runner.executor import loop as executor
from tests.fakes import Harness

INPUTS = {f"k{i:02d}": f"text {i}" for i in range(10)}


INPUTS = {f"k{i:02d}": f"text {i}" for i in range(10)}


class Crash(BaseException):
    """Stands in for SIGKILL: unwinds everything, rolls back open transactions."""


def run(h: Harness, no_wait: bool = False) -> executor.RunSummary:
    ctx = h.context()
    try:
        ctx.store.lock()
        return executor.run(ctx, no_wait=no_wait)
    finally:
        ctx.store.close()


def crash_at(monkeypatch: pytest.MonkeyPatch, point: str, nth: int = 1) -> None:
    seen = {"n": 0}

    def hit(name: str) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(point)

    monkeypatch.setattr(crashpoint, "hit", hit)


def assert_exactly_once(h: Harness, keys: Any = INPUTS) -> None:
    lines = h.lines()
    assert sorted(x["input_key"] for x in lines) == sorted(keys)
    assert h.api.double_billed() == []
    assert all(n == 1 for n in h.api.submissions.values()), h.api.submissions


CRASH_POINTS = [
    ("compile", 1),
    ("after_intent", 1),
    ("after_create", 1),
    ("after_attach", 1),
    ("mid_collect", 1),
    ("after_results_stored", 1),
    ("mid_sink_write", 1),
    ("after_sink_write", 1),
]
