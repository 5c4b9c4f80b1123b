"""runner.executor.submit: creates bracketed by intents; uncertain, refused, rate-limited."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.backend import CreateUncertain
from runner.errors import RemoteError
from tests.executor.common import INPUTS, Crash, assert_exactly_once, crash_at, run
from tests.fakes import Harness, retryable


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
