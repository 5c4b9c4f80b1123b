"""Poll in-flight batches, collect ended ones, classify each result, feed the sink.

Order per batch: stream the results and record every outcome in ONE state transaction
(requests, results, dead letters, batch marked collected), then write the sink, then mark
the rows written. A crash before the commit leaves the batch uncollected (collected again,
nothing lost); a crash after it leaves rows unwritten (re-applied to the idempotent sink).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from runner import crashpoint, log, pricing
from runner.backend import BatchGone, RemoteBatch, ResultsGone, ResultsUnavailable, Retryable
from runner.executor import answers
from runner.executor.context import Context
from runner.records import DeadLetter, RequestInfo, ResultRecord
from runner.sinks import RawLineSink, SinkRecordError, SinkRecordErrors
from runner.store import PAGE, BatchRow, Outcome
from runner.store.sinkfeed import FeedPage, Row, Table

RETRYABLE_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})
# Clean reads that may come back short before missing lines count as lost requests (a
# broken stream never counts: its lines exist, we just have not read them yet).
SHORT_READS_TOLERATED = 3

_log = log.get("batchrun.collect")


class ShortRead(ResultsUnavailable):
    """The stream ended cleanly with fewer lines than the batch has requests."""


@dataclass
class PollResult:
    ended: int = 0  # batches collected in this poll
    retry_after: float | None = None  # the API asked us to wait this long


_NOW: list[Any] = [None, ""]  # (epoch second, its RFC 3339 text): one format per second


def now_rfc3339() -> str:
    second = int(time.time())
    if second != _NOW[0]:
        moment = datetime.fromtimestamp(second, UTC)
        _NOW[:] = [second, moment.isoformat(timespec="seconds").replace("+00:00", "Z")]
    return str(_NOW[1])


def poll(ctx: Context) -> PollResult:
    """Look at every uncollected batch once; collect those that have ended."""
    res = PollResult()
    for row in ctx.store.batches(uncollected_only=True):
        try:
            remote = ctx.backend.retrieve(row.id)
        except BatchGone as exc:
            _gone(ctx, row, str(exc))
            res.ended += 1
            continue
        except Retryable as exc:
            _log.warning("poll failed, will retry", batch_id=row.id, error=str(exc))
            res.retry_after = max(res.retry_after or 0.0, exc.retry_after or 0.0) or None
            continue
        ctx.store.update_batch(row.id, remote.processing_status, remote.counts)
        if remote.processing_status != row.status:
            _log.info("batch " + remote.processing_status, job=ctx.job.name, batch_id=row.id)
        ctx.progress(f"batch {row.id}: {remote.processing_status} {_counts(remote.counts)}")
        if remote.ended and collect_batch(ctx, row, remote):
            res.ended += 1
    return res


def _gone(ctx: Context, row: BatchRow, why: str) -> None:
    """The API no longer knows the batch: nothing can be collected, so retry its requests."""
    _log.warning("batch gone: its requests will be retried", batch_id=row.id, error=why)
    with ctx.store.transaction():
        _settle_missing(ctx, row, f"batch no longer exists: {why}")
        ctx.store.finish_batch(row.id)
    flush_sink(ctx)  # settled requests may be dead letters: write them now, as collect does


def _counts(counts: Mapping[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in counts.items() if v)


def collect_batch(ctx: Context, row: BatchRow, remote: RemoteBatch) -> bool:
    """Collect one ended batch. False: the results could not be read; try again later."""
    bound = _log.bind(job=ctx.job.name, batch_id=row.id)
    short_reads = ctx.store.collect_attempts(row.id)
    try:
        with ctx.store.transaction():
            seen = _record_results(ctx, row)
            if seen < remote.request_count and short_reads < SHORT_READS_TOLERATED:
                raise ShortRead(f"{seen} of {remote.request_count} result lines")
            missing = _settle_missing(ctx, row, "no result line for this request")
            ctx.store.finish_batch(row.id)
    except ResultsGone as exc:
        bound.warning("results gone: its requests will be retried", error=str(exc))
        with ctx.store.transaction():
            missing = _settle_missing(ctx, row, f"results no longer available: {exc}")
            ctx.store.finish_batch(row.id)
        seen = 0
    except ResultsUnavailable as exc:
        if isinstance(exc, ShortRead):  # only a clean but short stream counts towards giving up
            ctx.store.bump_collect_attempts(row.id)
        bound.warning("results incomplete, will collect again", error=str(exc))
        return False
    if missing:
        bound.warning("results missing for some requests: retried", missing=missing)
    bound.info("collected", results=seen, counts=remote.counts)
    crashpoint.hit("after_results_stored")
    flush_sink(ctx)
    return True


def _settle_missing(ctx: Context, row: BatchRow, reason: str) -> int:
    """Requests of an ended batch with no result are retried, like an expired request."""
    missing = ctx.store.in_flight_of_batch(row.id)
    outcomes = [_failed(ctx, row, req, "missing_result", reason, retry=True) for req in missing]
    ctx.store.record_outcomes(row.id, outcomes)
    return len(missing)


def _record_results(ctx: Context, row: BatchRow) -> int:
    page: list[Outcome] = []
    seen = 0
    known = ctx.store.batch_requests(row.id)
    for line in ctx.backend.results(row.id):
        seen += 1
        outcome = classify(ctx, row, line, known)
        if outcome is not None:
            page.append(outcome)
        if len(page) >= PAGE:
            ctx.store.record_outcomes(row.id, page)
            page = []
            crashpoint.hit("mid_collect")
    ctx.store.record_outcomes(row.id, page)
    crashpoint.hit("mid_collect")
    return seen


def classify(
    ctx: Context,
    row: BatchRow,
    line: Mapping[str, Any],
    known: Mapping[str, RequestInfo] | None = None,
) -> Outcome | None:
    """Decide one result line (DESIGN.md, Retry). None: not a request of ours in this batch.
    `known` is the batch's requests read once (Store.batch_requests); else read here."""
    cid = str(line.get("custom_id"))
    req = (known if known is not None else ctx.store.batch_requests(row.id)).get(cid)
    if req is None:
        return None
    result = line.get("result") or {}
    kind = str(result.get("type"))
    if kind == "succeeded":
        message = result.get("message") or {}
        return _succeeded(ctx, row, req, message)
    if kind == "errored":
        envelope = (result.get("error") or {}).get("error") or {}
        etype = str(envelope.get("type") or "unknown_error")
        message = str(envelope.get("message") or "")
        retry = etype in RETRYABLE_ERRORS
    elif kind == "canceled":
        if row.cancel_requested:  # the job itself was cancelled: wait for the next run
            return Outcome(cid, "canceled", "canceled", "canceled by batchrun cancel")
        etype, message, retry = "canceled", "batch canceled", True
    elif kind == "expired":
        etype, message, retry = "expired", "batch expired before this request ran", True
    else:
        etype, message, retry = "unknown_result", f"unknown result type {kind!r}", False
    return _failed(ctx, row, req, etype, message, retry, kind)


def _failed(
    ctx: Context,
    row: BatchRow,
    req: RequestInfo,
    etype: str,
    message: str,
    retry: bool,
    kind: str = "errored",
) -> Outcome:
    """Retry while attempts remain; otherwise a dead letter with the API's message."""
    cid, attempts = req.custom_id, req.attempts
    if retry and attempts < ctx.job.max_attempts:
        return Outcome(cid, "retry", etype, message)
    if retry:
        message = f"{message} (after {attempts} attempts)"
    letter = DeadLetter(
        input_key=req.input_key,
        input_path=req.input_path,
        custom_id=cid,
        outcome=kind if kind in ("errored", "canceled", "expired") else "errored",  # type: ignore[arg-type]
        error_type=etype,
        error_message=message,
        attempts=attempts,
        batch_id=row.id,
        spec_hash=ctx.job.spec_hash,
        at=now_rfc3339(),
    )
    current = req.current if req.current is not None else ctx.store.is_current(cid)
    return Outcome(cid, "dead", etype, message, dead=letter if current else None)


def _succeeded(
    ctx: Context, row: BatchRow, req: RequestInfo, message: Mapping[str, Any]
) -> Outcome:
    usage = message.get("usage") or {}
    model = str(message.get("model") or ctx.job.model)
    cost, standard = ctx.price(model, usage)
    text = "".join(
        str(b.get("text", "")) for b in message.get("content") or () if b.get("type") == "text"
    )
    verdict = answers.read(ctx.job, message, req.input_key, req.input_path)
    if verdict.error_type is not None:  # billed, but no usable answer (executor/answers.py)
        dead = _failed(ctx, row, req, verdict.error_type, str(verdict.message), retry=False)
        return replace(dead, usage=_tokens(usage), cost_usd=cost, standard_cost_usd=standard)
    record = ResultRecord(
        input_key=req.input_key,
        input_path=req.input_path,
        custom_id=req.custom_id,
        text=text,
        message=message,
        usage=usage,
        cost_usd=cost,
        batch_id=row.id,
        model=model,
        spec_hash=ctx.job.spec_hash,
        attempts=req.attempts,
        collected_at=now_rfc3339(),
        data=verdict.data,
        include=verdict.include,
    )
    # A result of a superseded request (the job was edited meanwhile) only fills a gap.
    keep = req.current or not ctx.store.has_result(req.input_key)
    return Outcome(
        req.custom_id,
        "succeeded",
        result=record if keep else None,
        usage=_tokens(usage),
        cost_usd=cost,
        standard_cost_usd=standard,
    )


def _tokens(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """The usage figures the cost report sums; cache writes split by pricing's own rule, so
    the tokens reported and the dollars charged for them always agree."""
    w5, w1 = pricing.cache_writes(usage)
    return (
        int(usage.get("input_tokens") or 0),
        w5,
        w1,
        int(usage.get("cache_read_input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
    )


def flush_sink(ctx: Context) -> int:
    """Write every collected-but-unwritten result and dead letter to the sink, make it
    durable, then mark the rows written. Safe to repeat: the sink is idempotent. A sink
    that takes the stored bytes as they are (a `RawLineSink`) gets them without a decode and
    re-encode; any other gets records."""
    if isinstance(ctx.sink, RawLineSink):
        lines = ctx.store.unwritten_result_lines()
        written = _feed(ctx, "results", lines, ctx.sink.upsert_lines)
    else:
        written = _feed(
            ctx, "results", ctx.store.unwritten_results(), lambda rows: _upsert(ctx, rows)
        )
    return written + _feed(
        ctx,
        "dead",
        ctx.store.unwritten_dead(),
        lambda rows: ctx.sink.upsert_dead([letter for _, letter in rows]),
    )


def _feed(
    ctx: Context, table: Table, pages: Iterable[FeedPage[Row]], write: Callable[[list[Row]], object]
) -> int:
    """Each page: write it, make the sink durable, then confirm it in state."""
    written = 0
    for page in pages:
        write(page.rows)
        crashpoint.hit("mid_sink_write")
        ctx.sink.flush()
        crashpoint.hit("after_sink_write")
        ctx.store.mark_written(table, page.through)
        written += len(page.rows)
    return written


def _upsert(ctx: Context, rows: list[tuple[str, ResultRecord]]) -> None:
    try:
        ctx.sink.upsert([rec for _, rec in rows])
    except SinkRecordErrors as exc:  # the other records were written
        _refused_by_sink(ctx, rows, exc.errors)


def _refused_by_sink(
    ctx: Context, page: list[tuple[str, ResultRecord]], errors: Sequence[SinkRecordError]
) -> None:
    """A result the sink cannot hold (say, not JSON for `content: json`) becomes a dead
    letter of its input, error type `sink_error`, so the run ends and says why."""
    by_key = {rec.input_key: rec for _, rec in page}
    letters = [
        DeadLetter(
            input_key=rec.input_key,
            input_path=rec.input_path,
            custom_id=rec.custom_id,
            outcome="errored",
            error_type="sink_error",
            error_message=err.message,
            attempts=rec.attempts,
            batch_id=rec.batch_id,
            spec_hash=rec.spec_hash,
            at=now_rfc3339(),
        )
        for err in errors
        if (rec := by_key.get(err.input_key)) is not None
    ]
    _log.warning(
        "the sink refused some results: dead letters", job=ctx.job.name, count=len(letters)
    )
    ctx.store.refuse_results(letters)
