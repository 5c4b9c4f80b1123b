"""`cancel`: ask the API to cancel a job's in-flight batches, outside the reconcile loop."""

from __future__ import annotations

from runner import log
from runner.backend import Retryable
from runner.errors import RemoteError
from runner.executor.context import Context

_log = log.get("batchrun.cancel")


def cancel_job(ctx: Context) -> list[str]:
    """Cancel every in-flight batch of the job. Their canceled requests get status
    `canceled` when collected and are resubmitted only by the next plain run. Returns the
    ids of the batches asked to cancel."""
    asked: list[str] = []
    for row in ctx.store.batches(uncollected_only=True):
        ctx.store.mark_cancel_requested(row.id)  # state first: collect must know why
        try:
            remote = ctx.backend.cancel(row.id)
        except (Retryable, RemoteError) as exc:
            _log.warning("cancel failed", batch_id=row.id, error=str(exc))
            continue
        ctx.store.update_batch(row.id, remote.processing_status, remote.counts)
        asked.append(row.id)
        _log.info("cancel requested", job=ctx.job.name, batch_id=row.id)
    return asked
