"""`recover`: a lost state rebuilt from the workspace's batches, outside the reconcile loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from runner import log
from runner.backend import RemoteBatch, ResultsGone, ResultsUnavailable, Retryable
from runner.executor import collect, submit
from runner.executor.context import Context
from runner.executor.sync import sync_requests
from runner.store import BatchRow

_log = log.get("batchrun.recover")
T = TypeVar("T")


def recover(ctx: Context) -> int:
    """Rebuild lost state from the API: every batch of the workspace holding requests of
    this job is adopted, and the results of ended ones are collected, so nothing the job
    already paid for is submitted again. Batches still processing are waited for: until
    they end, nobody can tell whose requests they hold. The caller holds the lock.
    Returns the number of batches adopted."""
    sync_requests(ctx)
    _patiently(ctx, lambda: submit.reconcile_intents(ctx))  # settle interrupted creates first
    owned = ctx.store.owned_batch_ids()
    adopted = 0
    listed = _patiently(ctx, lambda: list(ctx.backend.list_batches()))
    pending = [b for b in reversed(listed) if b.id not in owned]
    interval = ctx.job.poll_interval_s
    while pending:
        waiting: list[RemoteBatch] = []
        for b in pending:
            remote = _patiently(ctx, lambda: ctx.backend.retrieve(b.id))  # noqa: B023
            try:
                if not remote.ended:
                    waiting.append(remote)
                elif _adopt(ctx, remote):
                    adopted += 1
            except ResultsGone:
                _log.info("results no longer available: skipped", batch_id=b.id)
            except ResultsUnavailable as exc:
                _log.warning("results incomplete, will read again", batch_id=b.id, error=str(exc))
                waiting.append(remote)
        pending = waiting
        if pending:
            _log.info("waiting for batches still processing", batches=len(pending))
            ctx.clock.sleep(interval)
            interval = min(interval * 2, ctx.job.poll_max_interval_s)
    collect.flush_sink(ctx)
    return adopted


def _patiently(ctx: Context, call: Callable[[], T]) -> T:
    """`call()`, retried with backoff while the API says "later" (a few minutes at most)."""
    for attempt in range(8):
        try:
            return call()
        except Retryable as exc:
            _log.warning("API busy, retrying", error=str(exc))
            ctx.clock.sleep(exc.retry_after or min(2.0**attempt, 60.0))
    return call()


def _adopt(ctx: Context, remote: RemoteBatch) -> bool:
    """Adopt an ended batch if any of its results is one of our waiting requests."""
    ours = [
        str(line["custom_id"])
        for line in ctx.backend.results(remote.id)
        if ctx.store.request_info(str(line["custom_id"])) is not None
    ]
    if not ours:
        return False
    ctx.store.adopt_batch(remote.id, remote.created_at, remote.request_count, ours)
    row = BatchRow(remote.id, (), remote.request_count, 0, remote.created_at, "ended", {},
                   False, False)  # fmt: skip
    collect.collect_batch(ctx, row, remote)
    _log.info("re-attached results", batch_id=remote.id, requests=len(ours))
    return True
