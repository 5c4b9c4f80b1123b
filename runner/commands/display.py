"""What `batchrun run` shows while it works: a live table on a terminal (rich), one plain line
per change otherwise, nothing for the Python API.

Per job: requests done out of total, batches by state, cost so far, time to the next poll,
and what it is doing now (compiling, submitting...). Snapshots are taken in the run's own
thread after each pass (the state store is not shared with rich's refresh thread); only the
countdown to the next poll is computed at refresh time.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TextIO

from runner import log

_log = log.get("batchrun.run")
# The order batches and requests are listed in: from waiting to done.
_BATCH_ORDER = ("in_progress", "canceling", "ended", "collected")
_REQUEST_ORDER = ("pending", "retry", "in_flight", "canceled", "succeeded", "dead")


@dataclass(frozen=True)
class JobView:
    """One job's line of the display."""

    job: str
    requests: Mapping[str, int] = field(default_factory=dict)
    batches: Mapping[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    next_poll_at: float | None = None  # time.time() of the next pass; None: none planned
    activity: str = "starting"
    finished: bool = False

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def done(self) -> int:
        return self.requests.get("succeeded", 0) + self.requests.get("dead", 0)


class StateReader(Protocol):
    """What a snapshot reads from a job's state store."""

    def status_counts(self) -> dict[str, int]: ...
    def batches(self) -> Any: ...
    def usage_totals(self) -> dict[str, float]: ...


def snapshot(view: JobView, store: StateReader, wait: float | None, now: float) -> JobView:
    """The view after a pass: counts, batches by state and cost read from the store."""
    batches = Counter("collected" if b.collected else b.status for b in store.batches())
    totals = store.usage_totals()
    priced = totals["priced"] == totals["succeeded"] and totals["succeeded"] > 0
    return replace(
        view,
        requests=store.status_counts(),
        batches=dict(batches),
        cost_usd=float(totals["cost_usd"]) if priced else None,
        next_poll_at=None if wait is None else now + wait,
        activity="waiting" if wait is not None else "finished",
        finished=wait is None,
    )


def describe(view: JobView, now: float) -> dict[str, str]:
    """The columns of a job's line, as text."""
    waiting = ", ".join(
        f"{view.requests[k]} {k.replace('_', ' ')}"
        for k in _REQUEST_ORDER[:4]
        if view.requests.get(k)
    )
    batches = ", ".join(f"{view.batches[k]} {k}" for k in _BATCH_ORDER if view.batches.get(k))
    poll = ""
    if view.next_poll_at is not None and not view.finished:
        poll = f"{max(0.0, view.next_poll_at - now):.0f}s"
    return {
        "job": view.job,
        "requests": f"{view.done}/{view.total} done" + (f" ({waiting})" if waiting else ""),
        "batches": batches or "none",
        "cost": f"${view.cost_usd:.4f}" if view.cost_usd else "",
        "next poll": poll,
        "now": view.activity,
    }


class Display(Protocol):
    """Told about each job as it goes; shows it somewhere (or nowhere)."""

    def __enter__(self) -> Display: ...
    def __exit__(self, *exc: object) -> None: ...
    def activity(self, job: str, text: str) -> None: ...
    def passed(self, job: str, store: StateReader, wait: float | None) -> None: ...


class _Views:
    """The views of every job, by name, in the order they were first seen."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.views: dict[str, JobView] = {}
        self.clock = clock

    def _get(self, job: str) -> JobView:
        return self.views.setdefault(job, JobView(job))

    def activity(self, job: str, text: str) -> None:
        if text:
            self.views[job] = replace(self._get(job), activity=text)

    def passed(self, job: str, store: StateReader, wait: float | None) -> None:
        self.views[job] = snapshot(self._get(job), store, wait, self.clock())


class NoDisplay(_Views):
    """For the Python API: a library does not draw on its caller's terminal (and does not
    read the state for a display nobody sees)."""

    def __enter__(self) -> NoDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def passed(self, job: str, store: StateReader, wait: float | None) -> None:
        return None


class PlainDisplay(_Views):
    """Not a terminal: one line per job each time its counts, batches or cost change."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.out = out
        self._last: dict[str, str] = {}

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def passed(self, job: str, store: StateReader, wait: float | None) -> None:
        super().passed(job, store, wait)
        cols = describe(self.views[job], self.clock())
        key = f"{cols['requests']}|{cols['batches']}|{cols['cost']}"
        if self._last.get(job) == key:
            return
        self._last[job] = key
        line = f"{job}: {cols['requests']}; batches: {cols['batches']}"
        if cols["cost"]:
            line += f"; cost so far {cols['cost']}"
        if cols["next poll"]:
            line += f"; next poll in {cols['next poll']}"
        out = self.out or sys.stderr
        print(line, file=out, flush=True)


class LogDisplay(PlainDisplay):
    """`--log-format json` asked for machine-readable stderr: each change is a log event."""

    def passed(self, job: str, store: StateReader, wait: float | None) -> None:
        _Views.passed(self, job, store, wait)
        view = self.views[job]
        key = f"{view.requests}|{view.batches}|{view.cost_usd}"
        if self._last.get(job) == key:
            return
        self._last[job] = key
        _log.info(
            "progress", job=job, requests=dict(view.requests), batches=dict(view.batches),
            cost_usd=view.cost_usd, next_poll_s=wait,
        )  # fmt: skip


class LiveDisplay(_Views):
    """A terminal: a table redrawn in place (rich), left on screen, tidy after Ctrl-C."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        from rich.console import Console
        from rich.live import Live

        self._live = Live(
            get_renderable=self._table,
            console=Console(stderr=True),
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=True,
        )

    def __enter__(self) -> LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, kind: object = None, *exc: object) -> None:
        if kind is KeyboardInterrupt:
            for job, view in self.views.items():
                if not view.finished:
                    self.views[job] = replace(view, activity="interrupted", next_poll_at=None)
        self._live.__exit__(None, None, None)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in ("job", "requests", "batches", "cost", "next poll", "now"):
            table.add_column(name, no_wrap=name in ("job", "cost", "next poll"))
        now = self.clock()
        for view in self.views.values():
            table.add_row(*describe(view, now).values())
        return table


def for_terminal(log_format: str, stream: TextIO | None = None) -> Display:
    """The display `batchrun run` uses: live on a terminal, plain lines otherwise, log
    events when JSON logs were asked for."""
    out = stream or sys.stderr
    if log_format == "json":
        return LogDisplay()
    if out.isatty():
        return LiveDisplay()
    return PlainDisplay(out)
