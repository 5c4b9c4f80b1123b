"""runner.executor.loop: the reconcile loop against a fake API: passes, pacing, locks, crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.executor import loop as executor
from tests.executor.common import CRASH_POINTS, INPUTS, Crash, assert_exactly_once, crash_at, run
from tests.fakes import Harness


def test_happy_path_writes_one_line_per_input(tmp_path: Path) -> None:
    """Every input ends with one succeeded line carrying text, usage, cost and batch id."""
    h = Harness(tmp_path, INPUTS)
    summary = run(h)
    assert summary.finished and summary.counts == {"succeeded": 10}
    assert_exactly_once(h)
    line = h.lines()[0]
    assert line["outcome"] == "succeeded" and line["text"].startswith("answer ")
    assert line["cost_usd"] == 0.001 and line["batch_id"].startswith("msgbatch_")
    assert line["spec_hash"] == h.job.spec_hash and line["usage"]["input_tokens"] == 10


def test_rerun_submits_nothing(tmp_path: Path) -> None:
    """An unchanged job run again makes no API create call."""
    h = Harness(tmp_path, INPUTS)
    run(h)
    creates = h.api.calls["create"]
    summary = run(h)
    assert summary.finished and summary.requests_submitted == 0
    assert h.api.calls["create"] == creates


def test_changed_input_resubmits_only_it(tmp_path: Path) -> None:
    """A changed input gets a new custom_id whose result replaces the old line."""
    h = Harness(tmp_path, dict(INPUTS))
    run(h)
    h.compiler.inputs["k03"] = "edited"
    h.compiler.inputs["k99"] = "new"
    summary = run(h)
    assert summary.requests_submitted == 2
    lines = {x["input_key"]: x for x in h.lines()}
    assert len(h.lines()) == 11 and "k99" in lines
    assert lines["k03"]["custom_id"] in h.api.batches["msgbatch_0001"].custom_ids


def test_max_requests_and_in_flight_cap(tmp_path: Path) -> None:
    """Chunks respect max_requests; no more than max_in_flight requests wait at once."""
    h = Harness(tmp_path, INPUTS, extra="batch: {max_requests: 3, max_in_flight_requests: 4}\n")
    run(h)
    assert all(len(b.custom_ids) <= 3 for b in h.api.batches.values())
    assert len(h.api.batches) >= 4
    assert_exactly_once(h)


def test_poll_interval_backs_off_to_max(tmp_path: Path) -> None:
    """Waits double from poll.interval up to poll.max_interval while nothing ends."""
    h = Harness(tmp_path, {"a": "x"}, latency=6)
    run(h)
    assert h.clock.slept[:5] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_no_wait_does_one_pass(tmp_path: Path) -> None:
    """--no-wait submits and returns; later passes collect; the end is the same."""
    h = Harness(tmp_path, INPUTS, latency=2)
    first = run(h, no_wait=True)
    assert not first.finished and first.requests_submitted == 10 and h.clock.slept == []
    for _ in range(5):
        if run(h, no_wait=True).finished:
            break
    assert_exactly_once(h)


def test_lock_is_exclusive(tmp_path: Path) -> None:
    """A second holder of the job's lock is refused."""
    from runner.store import LockHeld

    h = Harness(tmp_path, INPUTS)
    a, b = h.context(), h.context()
    a.store.lock()
    with pytest.raises(LockHeld):
        b.store.lock()
    a.store.close()
    b.store.lock()
    b.store.close()


@pytest.mark.parametrize(("point", "nth"), CRASH_POINTS)
def test_crash_at_each_window_then_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, nth: int
) -> None:
    """A crash at any named window, then a normal run: one line per input, none billed
    twice, no request submitted twice."""
    h = Harness(tmp_path, INPUTS, extra="batch: {max_requests: 4}\n")
    crash_at(monkeypatch, point, nth)
    with pytest.raises(Crash):
        run(h)
    monkeypatch.undo()
    summary = run(h)
    assert summary.finished
    assert_exactly_once(h)


def test_run_many_paces_each_job_on_its_own(tmp_path: Path) -> None:
    """A quick job is not polled while a slow one waits, and the slow one is submitted on
    the first pass."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fast = Harness(tmp_path / "a", INPUTS, latency=1)
    slow = Harness(tmp_path / "b", INPUTS, latency=6)
    ctxs = [fast.context(), slow.context()]
    ctxs[1].clock = ctxs[0].clock
    for c in ctxs:
        c.store.lock()
    summaries = executor.run_many(ctxs, ctxs[0].clock)
    for c in ctxs:
        c.store.close()
    assert all(s.finished for s in summaries)
    assert fast.api.calls["retrieve"] == 1 and slow.api.calls["retrieve"] == 6


def test_budget_is_checked_before_submitting(tmp_path: Path) -> None:
    """Over budget: the run's own plan says so before anything is created (exit 1)."""
    from runner.errors import BudgetExceeded

    h = Harness(tmp_path, INPUTS, extra="budget: {max_usd: 0.0000001}\n")
    ctx = h.context()
    ctx.store.lock()
    try:
        with pytest.raises(BudgetExceeded, match="for 10 requests"):
            executor.run(ctx)
    finally:
        ctx.store.close()
    assert h.api.calls.get("create", 0) == 0
