"""The reconcile loop against a fake API: outcomes, retries, faults and crash windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner import crashpoint, executor, recover
from runner.context import Context
from runner.errors import RemoteError
from runner.remote import BatchGone, CreateUncertain
from tests.fakes import Harness, errored, retryable, succeeded

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


def test_retryable_errors_are_retried(tmp_path: Path) -> None:
    """overloaded_error on the first attempt, success on the second."""

    def outcome(cid: str, n: int) -> dict[str, Any]:
        return errored("overloaded_error") if n == 1 else succeeded(cid, n)

    h = Harness(tmp_path, INPUTS, outcome=outcome)
    summary = run(h)
    assert summary.counts == {"succeeded": 10}
    assert all(n == 2 for n in h.api.submissions.values())
    assert {x["attempts"] for x in h.lines()} == {2}


def test_non_retryable_error_is_a_dead_letter_at_once(tmp_path: Path) -> None:
    """invalid_request_error goes to the dead letters with the API's message."""

    def outcome(cid: str, n: int) -> dict[str, Any]:
        return errored("invalid_request_error", "max_tokens too big")

    h = Harness(tmp_path, {"a": "x"}, outcome=outcome)
    summary = run(h)
    assert summary.finished and summary.dead == 1
    assert h.api.submissions == {next(iter(h.api.submissions)): 1}
    [dead] = h.dead_lines()
    assert dead["error_type"] == "invalid_request_error"
    assert dead["error_message"] == "max_tokens too big" and dead["attempts"] == 1


@pytest.mark.parametrize("kind", ["expired", "api_error"])
def test_attempts_exhausted_is_a_dead_letter(tmp_path: Path, kind: str) -> None:
    """A request that keeps failing retryably stops after max_attempts."""

    def outcome(cid: str, n: int) -> dict[str, Any]:
        return {"type": "expired"} if kind == "expired" else errored(kind)

    h = Harness(tmp_path, {"a": "x"}, extra="retry: {max_attempts: 2}\n", outcome=outcome)
    summary = run(h)
    assert summary.dead == 1 and list(h.api.submissions.values()) == [2]
    assert h.dead_lines()[0]["attempts"] == 2 and h.lines() == []


def test_result_replaces_dead_letter_and_back(tmp_path: Path) -> None:
    """One input is either a result line or a dead letter, never both."""
    h = Harness(tmp_path, {"a": "x"}, outcome=lambda c, n: errored("invalid_request_error"))
    run(h)
    assert len(h.dead_lines()) == 1
    h.api.outcome = succeeded
    h.compiler.inputs["a"] = "fixed"
    run(h)
    assert len(h.lines()) == 1 and h.dead_lines() == []


def test_create_rate_limited_honours_retry_after(tmp_path: Path) -> None:
    """A 429 on create abandons the intent and waits at least retry-after."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["create"] = [retryable(after=42.0)]
    run(h)
    assert 42.0 in h.clock.slept
    assert_exactly_once(h)


def test_create_refused_for_good_raises(tmp_path: Path) -> None:
    """A 400 on create is a RemoteError; the requests go back to pending."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["create"] = [RemoteError("create refused: HTTP 400 invalid_request_error")]
    with pytest.raises(RemoteError):
        run(h)
    store = h.context().store
    assert store.status_counts() == {"pending": 10} and store.open_intents() == []


def test_commit_then_fail_is_adopted_not_reposted(tmp_path: Path) -> None:
    """A create that committed but answered 500 is found by listing and adopted."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["create"] = ["commit_then_fail"]
    summary = run(h)
    assert summary.finished and len(h.api.batches) == 1
    assert_exactly_once(h)


def test_uncertain_create_that_did_not_commit_is_resubmitted(tmp_path: Path) -> None:
    """A timeout that made nothing: the intent is abandoned and the chunk posted again."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["create"] = [CreateUncertain("APITimeoutError")]
    run(h)
    assert len(h.api.batches) == 1 and h.api.calls["create"] == 2
    assert_exactly_once(h)


def test_poll_errors_back_off_with_retry_after(tmp_path: Path) -> None:
    """A retrieve that keeps failing is retried later, honouring retry-after."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["retrieve"] = [retryable(after=7.5), retryable()]
    run(h)
    assert 7.5 in h.clock.slept
    assert_exactly_once(h)


def test_poll_interval_backs_off_to_max(tmp_path: Path) -> None:
    """Waits double from poll.interval up to poll.max_interval while nothing ends."""
    h = Harness(tmp_path, {"a": "x"}, latency=6)
    run(h)
    assert h.clock.slept[:5] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_truncated_results_are_collected_again(tmp_path: Path) -> None:
    """A broken results stream rolls back and the batch is collected on a later poll."""
    h = Harness(tmp_path, INPUTS)
    h.api.truncate_next = 1
    run(h)
    assert_exactly_once(h)


def test_missing_result_lines_are_retried(tmp_path: Path) -> None:
    """An ended batch without a line for a request: after a few reads, it is resubmitted."""
    h = Harness(tmp_path, {"a": "x", "b": "y"})
    original = h.api._finish

    def drop_first(b: Any) -> None:
        original(b)
        if b.id == "msgbatch_0000":
            del b.results[0]

    h.api._finish = drop_first  # type: ignore[method-assign]
    summary = run(h)
    assert summary.counts == {"succeeded": 2} and len(h.api.batches) == 2


def test_no_wait_does_one_pass(tmp_path: Path) -> None:
    """--no-wait submits and returns; later passes collect; the end is the same."""
    h = Harness(tmp_path, INPUTS, latency=2)
    first = run(h, no_wait=True)
    assert not first.finished and first.requests_submitted == 10 and h.clock.slept == []
    for _ in range(5):
        if run(h, no_wait=True).finished:
            break
    assert_exactly_once(h)


def test_cancel_is_not_retried_until_next_plain_run(tmp_path: Path) -> None:
    """Canceled by `batchrun cancel`: status canceled; the next run resubmits them."""
    h = Harness(tmp_path, INPUTS, latency=3)
    run(h, no_wait=True)
    ctx = h.context()
    assert len(recover.cancel_job(ctx)) == 1
    ctx.store.close()
    ctx = h.context()
    ctx.store.lock()
    from runner import collect

    collect.poll(ctx)  # what a waiting run would do on its next pass
    assert ctx.store.status_counts() == {"canceled": 10}
    ctx.store.close()
    summary = run(h)
    assert summary.counts == {"succeeded": 10}
    assert all(n == 2 for n in h.api.submissions.values())


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


def test_crash_after_commit_then_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed right after a create that committed and failed: the next run adopts it."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["create"] = ["commit_then_fail"]
    crash_at(monkeypatch, "create_failed")
    with pytest.raises(Crash):
        run(h)
    monkeypatch.undo()
    run(h)
    assert len(h.api.batches) == 1
    assert_exactly_once(h)


def test_recover_reattaches_results_after_state_loss(tmp_path: Path) -> None:
    """State deleted after a full run: recover re-attaches every result, nothing resent."""
    import shutil

    h = Harness(tmp_path, INPUTS)
    run(h)
    shutil.rmtree(h.state)
    ctx = h.context()
    ctx.store.lock()
    assert recover.recover(ctx) == 1
    ctx.store.close()
    summary = run(h)
    assert summary.finished and summary.requests_submitted == 0
    assert_exactly_once(h)


def test_recover_waits_for_processing_batches(tmp_path: Path) -> None:
    """A batch still processing when state was lost is waited for, then re-attached."""
    import shutil

    h = Harness(tmp_path, INPUTS, latency=3)
    run(h, no_wait=True)
    shutil.rmtree(h.state)
    ctx: Context = h.context()
    ctx.store.lock()
    recover.recover(ctx)
    ctx.store.close()
    assert run(h).requests_submitted == 0
    assert_exactly_once(h)


def test_unlistable_api_keeps_open_intent_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open intent that cannot be settled now (list fails) is retried on a later pass;
    its requests are never resubmitted meanwhile."""
    h = Harness(tmp_path, INPUTS)
    crash_at(monkeypatch, "after_intent")
    with pytest.raises(Crash):
        run(h)
    monkeypatch.undo()
    h.api.faults["list"] = [retryable(after=3.0), retryable()]
    summary = run(h)
    assert summary.finished and 3.0 in h.clock.slept
    assert_exactly_once(h)


def test_budget_is_checked_before_submitting(tmp_path: Path) -> None:
    """Over budget: nothing is created and the error propagates (exit 1)."""
    from runner.errors import BudgetExceeded

    h = Harness(tmp_path, INPUTS)
    ctx = h.context()

    def refuse(job: Any, ids: set[str]) -> None:
        raise BudgetExceeded(f"{len(ids)} requests over budget")

    ctx.check_budget = refuse
    ctx.store.lock()
    with pytest.raises(BudgetExceeded, match="10 requests"):
        executor.run(ctx)
    ctx.store.close()
    assert h.api.calls.get("create", 0) == 0


@pytest.mark.parametrize(
    ("etype", "retried"),
    [
        ("api_error", True),
        ("overloaded_error", True),
        ("rate_limit_error", True),
        ("timeout_error", True),
        ("invalid_request_error", False),
        ("authentication_error", False),
        ("permission_error", False),
        ("billing_error", False),
    ],
)
def test_each_error_type_is_retried_or_dead(tmp_path: Path, etype: str, retried: bool) -> None:
    """DESIGN.md, Retry: four types are retried, the others are dead letters at once."""

    def outcome(cid: str, n: int) -> dict[str, Any]:
        return errored(etype, f"{etype} text") if n == 1 else succeeded(cid, n)

    h = Harness(tmp_path, {"a": "x"}, outcome=outcome)
    summary = run(h)
    assert summary.counts == ({"succeeded": 1} if retried else {"dead": 1})
    if not retried:
        assert h.dead_lines()[0]["error_message"] == f"{etype} text"


def test_canceled_elsewhere_is_retried(tmp_path: Path) -> None:
    """A batch canceled outside batchrun (console, another tool): its requests are retried."""
    h = Harness(tmp_path, INPUTS, latency=3)
    run(h, no_wait=True)
    h.api.cancel("msgbatch_0000")
    summary = run(h)
    assert summary.counts == {"succeeded": 10}
    assert all(n == 2 for n in h.api.submissions.values())


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


def test_deleted_batch_dead_letters_reach_the_sink_in_the_same_run(tmp_path: Path) -> None:
    """A batch deleted out from under the run settles its requests; those that used up their
    attempts are dead letters written beside the sink before the run ends, not a run later."""
    h = Harness(tmp_path, {"a": "x"}, extra="retry: {max_attempts: 1}\n")
    h.api.faults["retrieve"] = [BatchGone("HTTP 404 not_found_error: deleted")]
    summary = run(h)
    assert summary.finished and summary.dead == 1
    assert [d["input_key"] for d in h.dead_lines()] == ["a"]
