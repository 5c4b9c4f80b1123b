"""runner.executor.collect: outcomes, retries, dead letters and broken result streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.backend import BatchGone
from tests.executor.common import INPUTS, assert_exactly_once, run
from tests.fakes import Harness, errored, retryable, succeeded


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


def test_poll_errors_back_off_with_retry_after(tmp_path: Path) -> None:
    """A retrieve that keeps failing is retried later, honouring retry-after."""
    h = Harness(tmp_path, INPUTS)
    h.api.faults["retrieve"] = [retryable(after=7.5), retryable()]
    run(h)
    assert 7.5 in h.clock.slept
    assert_exactly_once(h)


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


def test_deleted_batch_dead_letters_reach_the_sink_in_the_same_run(tmp_path: Path) -> None:
    """A batch deleted out from under the run settles its requests; those that used up their
    attempts are dead letters written beside the sink before the run ends, not a run later."""
    h = Harness(tmp_path, {"a": "x"}, extra="retry: {max_attempts: 1}\n")
    h.api.faults["retrieve"] = [BatchGone("HTTP 404 not_found_error: deleted")]
    summary = run(h)
    assert summary.finished and summary.dead == 1
    assert [d["input_key"] for d in h.dead_lines()] == ["a"]


STRUCTURED = (
    "output_schema: {type: object, properties: {n: {type: integer}}, required: [n],"
    " additionalProperties: false}\n"
)


def test_structured_answers_are_data_or_dead_letters_that_stay_billed(tmp_path: Path) -> None:
    """A valid answer carries `data`; a cut or refused one is a dead letter of its own type,
    not retried, whose tokens still count in the cost (the API billed them)."""
    answers = {"a": ('{"n": 7}', "end_turn"), "b": ('{"n": ', "max_tokens")}
    key_of: dict[str, str] = {}

    def outcome(cid: str, n: int) -> dict[str, Any]:
        result = succeeded(cid, n)
        text, stop = answers.get(key_of[cid], ("", "refusal"))
        result["message"]["content"] = [{"type": "text", "text": text}]
        result["message"]["stop_reason"] = stop
        return result

    h = Harness(tmp_path, {"a": "x", "b": "y", "c": "z"}, extra=STRUCTURED, outcome=outcome)
    key_of.update((r.custom_id, r.input_key) for r in h.compiler.iter_requests(h.job))
    summary = run(h)
    assert summary.finished and summary.dead == 2
    assert list(h.api.submissions.values()) == [1, 1, 1]
    [line] = h.lines()
    assert line["data"] == {"n": 7}
    dead = {d["input_key"]: d["error_type"] for d in h.dead_lines()}
    assert dead == {"b": "invalid_output", "c": "refusal"}
    store = h.context().store
    try:
        assert store.usage_totals()["succeeded"] == 3  # all three were billed
    finally:
        store.close()
