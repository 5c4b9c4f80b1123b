"""Submit chunks of waiting requests, and reconcile creates whose outcome is unknown.

A create is bracketed by state: the intent row (its requests move in flight) is committed
before the POST and the batch id after it. A create that fails in a way that may have
committed it, or a process that died between the two writes, leaves an open intent. Open
intents are settled only by listing the workspace's batches: a batch newer than the newest
batch seen before the create, with the same request count and not owned by this job, is
adopted; if none exists, the intent is abandoned and its requests wait for a new chunk.
Nothing is ever posted twice blindly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner import crashpoint, log
from runner.backend import CreateUncertain, RemoteBatch, Retryable
from runner.compile import chunk_digest
from runner.errors import RemoteError
from runner.executor.context import Context
from runner.executor.spool import Spool
from runner.store import Intent

if TYPE_CHECKING:
    from runner.compile import Chunk, CompiledRequest

# An open intent younger than this may still be committing on the server: wait before
# deciding that no batch was made for it.
SETTLE_S = 1.0
# Without a newest-batch mark, look at batches created at most this long before the intent.
LIST_SKEW_S = 3600.0

_log = log.get("batchrun.submit")


@dataclass
class SubmitResult:
    batches: int = 0
    requests: int = 0
    retry_after: float | None = None  # the API asked us to wait before submitting more


def reconcile_intents(ctx: Context) -> int:
    """Settle every open intent: adopt its batch if the API has one, else abandon it."""
    intents = ctx.store.open_intents()
    if not intents:
        return 0
    youngest = max(i.created_at for i in intents)
    wait = youngest + SETTLE_S - ctx.clock.now()
    if wait > 0:
        ctx.clock.sleep(wait)
    listed = _list_candidates(ctx, intents)
    taken = ctx.store.owned_batch_ids()
    adopted = 0
    for intent in intents:
        match = _match(intent, listed, taken)
        if match is None:
            _log.info("intent had no batch: requests will be resubmitted", intent=intent.id)
            ctx.store.abandon_intent(intent)
            continue
        taken.add(match.id)
        ctx.store.attach_batch(intent, match.id, match.created_at, match.processing_status)
        _log.info("adopted the batch of an interrupted create", batch_id=match.id)
        adopted += 1
    return adopted


def _list_candidates(ctx: Context, intents: list[Intent]) -> list[RemoteBatch]:
    """Batches newest first, down to the oldest intent's newest-before mark."""
    marks = {i.newest_before for i in intents}
    unbounded = None in marks  # the workspace had no batch yet when that intent was made
    marks.discard(None)
    floor = min(i.created_at for i in intents) - LIST_SKEW_S
    listed: list[RemoteBatch] = []
    for b in ctx.backend.list_batches():
        listed.append(b)
        marks.discard(b.id)
        if (not marks and not unbounded) or b.created_ts < floor:
            break
    return listed


def _match(intent: Intent, listed: list[RemoteBatch], taken: set[str]) -> RemoteBatch | None:
    """The oldest unowned batch with the intent's request count created after its mark."""
    newer: list[RemoteBatch] = []
    for b in listed:
        if b.id == intent.newest_before:
            break
        newer.append(b)
    for b in reversed(newer):
        if b.id not in taken and b.request_count == intent.request_count:
            return b
    return None


def submit_waiting(ctx: Context, waiting: set[str], spool: Spool | None = None) -> SubmitResult:
    """Submit chunks of the `waiting` requests (the loop decides which: the plan's, then
    retries) while the in-flight count stays under the cap. The requests come from `spool`
    if this run recorded one, else they are compiled again."""
    res = SubmitResult()
    if not waiting:
        return res
    room = ctx.job.max_in_flight_requests - ctx.store.in_flight_count()
    if room <= 0:
        return res
    size = min(ctx.job.max_requests, ctx.job.max_in_flight_requests)
    requests = _requests(ctx, waiting, spool)
    for chunk in ctx.compiler.make_chunks(requests, size, ctx.job.max_bytes):
        if len(chunk.custom_ids) > room or not _submit_chunk(ctx, chunk, res):
            break  # the in-flight cap, or the API said wait: the next pass goes on
        room -= len(chunk.custom_ids)
        # Drop this body before the loop builds the next: one ~256 MB body held, not two.
        del chunk
    return res


def _requests(ctx: Context, waiting: set[str], spool: Spool | None) -> Iterator[CompiledRequest]:
    recorded = spool.replay() if spool is not None else None
    for req in recorded if recorded is not None else ctx.compiler.iter_requests(ctx.job):
        if req.custom_id in waiting:
            yield req


def _submit_chunk(ctx: Context, chunk: Chunk, res: SubmitResult) -> bool:
    """Create one batch for `chunk`. False: stop submitting for this pass."""
    try:
        newest = ctx.backend.newest_batch_id()
    except Retryable as exc:
        res.retry_after = exc.retry_after
        return False
    sha = chunk_digest(chunk.betas, chunk.custom_ids)
    intent = ctx.store.add_intent(
        sha, chunk.betas, chunk.custom_ids, len(chunk.body), ctx.clock.now(), newest
    )
    bound = _log.bind(job=ctx.job.name, chunk=sha[:12], requests=len(chunk.custom_ids))
    crashpoint.hit("after_intent")
    try:
        batch = ctx.backend.create(chunk.body, chunk.betas)
    except Retryable as exc:  # refused before anything was made
        ctx.store.abandon_intent(intent)
        bound.warning("create refused for now, will retry", error=str(exc))
        res.retry_after = exc.retry_after
        return False
    except RemoteError:
        ctx.store.abandon_intent(intent)
        raise
    except CreateUncertain as exc:
        crashpoint.hit("create_failed")
        bound.warning("create failed and may have committed: reconciling", error=str(exc))
        res.retry_after = exc.retry_after
        return False
    crashpoint.hit("after_create")
    ctx.store.attach_batch(intent, batch.id, batch.created_at, batch.processing_status)
    crashpoint.hit("after_attach")
    bound.info("submitted", batch_id=batch.id, bytes=len(chunk.body))
    ctx.progress(f"submitted {batch.id}: {len(chunk.custom_ids)} requests")
    res.batches += 1
    res.requests += len(chunk.custom_ids)
    return True
