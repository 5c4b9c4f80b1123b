"""The sync pass: the job's current requests recorded in state, compiled once.

Skipped when the input fingerprint proves that a finished job is unchanged.
"""

from __future__ import annotations

from runner import crashpoint
from runner.executor.context import Context
from runner.executor.spool import Spool
from runner.records import SUBMITTABLE, WAITING
from runner.store import PAGE

FINGERPRINT_META = "input_fingerprint"


def sync_if_changed(ctx: Context, spool: Spool | None = None) -> int | None:
    """Record the job's requests unless the input fingerprint proves a finished job is
    unchanged (returns None: compiling was skipped).

    The rule: skip only if the compiler can fingerprint the job, the fingerprint equals the
    one stored after the last complete sync, and no current request waits for anything (no
    pending, retry, in-flight or canceled request, no open intent). Anything else compiles in full.
    The stored fingerprint is cleared before a sync starts and written only after it ends,
    so a sync cut short by a crash never vouches for a half-marked state."""
    fingerprint = ctx.compiler.fingerprint
    current = fingerprint(ctx.job) if fingerprint is not None else None
    stored = ctx.store.get_meta(FINGERPRINT_META)
    if current is not None and current == stored and _all_final(ctx):
        return None
    if stored is not None:
        ctx.store.clear_meta(FINGERPRINT_META)
    total = sync_requests(ctx, spool)
    if current is not None:
        ctx.store.set_meta(FINGERPRINT_META, current)
    return total


def _all_final(ctx: Context) -> bool:
    """No request waits for anything; a canceled one counts as waiting, since a run
    resubmits it."""
    counts = ctx.store.status_counts()
    waiting = {*WAITING, *SUBMITTABLE}
    return not any(counts.get(s) for s in waiting) and not ctx.store.open_intents()


def sync_requests(ctx: Context, spool: Spool | None = None) -> int:
    """Record the job's current requests in state (new ones pending); keep the compiled
    requests in `spool` for submitting. Returns the count."""
    ctx.store.begin_sync()
    page: list[tuple[str, str, str | None]] = []
    total = 0
    requests = ctx.compiler.iter_requests(ctx.job)
    for req in spool.record(requests) if spool is not None else requests:
        page.append((req.custom_id, req.input_key, req.input_path))
        if len(page) >= PAGE:
            ctx.store.sync_requests(page)
            total += len(page)
            page = []
            ctx.progress(f"compile: {total} requests")
            crashpoint.hit("compile")
    ctx.store.sync_requests(page)
    crashpoint.hit("compile")
    total += len(page)
    ctx.progress(f"compile: {total} requests")
    return total
