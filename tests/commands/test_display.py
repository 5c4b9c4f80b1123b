"""runner.commands.display: what `run` shows while it works, without a terminal."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from runner.commands.display import JobView, PlainDisplay, describe, for_terminal


@dataclass
class _Batch:
    status: str
    collected: bool = False


class _Store:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {"in_flight": 4, "succeeded": 1}
        self.list = [_Batch("in_progress"), _Batch("ended", collected=True)]
        self.totals: dict[str, float] = {"cost_usd": 0.0123, "priced": 1, "succeeded": 1}

    def status_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def batches(self) -> list[Any]:
        return self.list

    def usage_totals(self) -> dict[str, float]:
        return self.totals


def test_a_line_per_change_with_counts_batches_cost_and_next_poll() -> None:
    out = io.StringIO()
    display = PlainDisplay(out, clock=lambda: 100.0)
    store = _Store()
    with display:
        display.activity("survey", "compile: 5 requests")
        display.passed("survey", store, 30.0)
        display.passed("survey", store, 60.0)  # nothing changed but the wait: no line
        store.counts = {"succeeded": 5}
        display.passed("survey", store, None)
    assert out.getvalue().splitlines() == [
        "survey: 1/5 done (4 in flight); batches: 1 in_progress, 1 collected; "
        "cost so far $0.0123; next poll in 30s",
        "survey: 5/5 done; batches: 1 in_progress, 1 collected; cost so far $0.0123",
    ]


def test_no_cost_before_a_result_and_unknown_prices_stay_blank() -> None:
    view = JobView("j", requests={"in_flight": 2}, cost_usd=None, next_poll_at=12.0)
    cols = describe(view, now=10.0)
    assert cols["cost"] == "" and cols["next poll"] == "2s"
    assert cols["requests"] == "0/2 done (2 in flight)"


def test_not_a_terminal_gets_plain_lines() -> None:
    assert isinstance(for_terminal("auto", io.StringIO()), PlainDisplay)
