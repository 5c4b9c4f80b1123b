"""The sync pass: the plan of this run, built once, with its requests recorded in state.

The pass is `plan.diff.walk` with a writer: the inputs that changed since the last complete
sync (compile/index.py) are rendered, each request is classified against state into the
plan, and recorded (new ones pending) a page at a time; the plan's requests go to the spool
for submitting. What `batchrun plan` shows is what this pass decides.

Crash safety: the input index is cleared before the pass first writes and stored again only
after its last write, so a pass cut short never vouches for a half-marked state (the next
pass then renders everything, as a first pass does).
"""

from __future__ import annotations

from collections.abc import Sequence

from runner import crashpoint
from runner.compile.index import INDEX_META, Rendered, Waiting
from runner.executor.context import Context
from runner.executor.spool import Spool
from runner.plan import Plan, PlanBuilder, diff


def sync_pass(ctx: Context, spool: Spool | None = None, *, keep_ids: bool = False) -> Plan:
    """Build this run's plan and record its requests in state; keep the requests to submit
    in `spool`. The plan's custom_ids are those state then holds as waiting; `keep_ids`
    lists them in the plan too (memory grows with them). Raises `InputError` for any input
    that cannot become a request, before anything is submitted."""
    builder = PlanBuilder(ctx.job, keep_ids=keep_ids)
    writer = _StoreWriter(ctx, spool)
    removed = diff.walk(ctx.store, _source(ctx), builder, writer)
    return builder.finish(removed)


def sync_requests(ctx: Context) -> int:
    """Record the job's current requests in state, without keeping any to submit (`recover`
    rebuilds state this way). Returns how many requests the job has."""
    return sync_pass(ctx).counts.inputs


def _source(ctx: Context) -> diff.Source:
    if ctx.compiler.source is not None:
        return ctx.compiler.source(ctx.job, ctx.store)
    return diff.FullSource((r, None) for r in ctx.compiler.iter_requests(ctx.job))


def render_waiting(ctx: Context, waiting: set[str], spool: Spool) -> set[str]:
    """Spool the waiting requests this run has not rendered (the retries of requests that
    were in flight when it started). Returns the custom_ids that could not be rendered: their
    inputs changed since the sync, so the next run supersedes them."""
    missing = waiting - spool.ids
    if not missing:
        return set()
    rows = [Waiting(*r) for r in ctx.store.waiting_requests() if r[0] in missing]
    if ctx.compiler.requests_for is not None:
        requests = ctx.compiler.requests_for(ctx.job, rows)
    else:
        requests = ctx.compiler.iter_requests(ctx.job)
    spool.add(r for r in requests if r.custom_id in missing)
    return missing - spool.ids


class _StoreWriter:
    """Records a pass in the job's state (a `plan.diff.Writer`)."""

    def __init__(self, ctx: Context, spool: Spool | None) -> None:
        self.ctx = ctx
        self.spool = spool
        self.total = 0
        self._cleared = False

    def _clear(self) -> None:
        if not self._cleared:
            self.ctx.store.clear_meta(INDEX_META)
            self._cleared = True

    def begin(self, full: bool) -> None:
        if full:
            self._clear()
            self.ctx.store.begin_sync()  # every request is superseded until seen again

    def page(self, rendered: Sequence[Rendered], submit: Sequence[bool]) -> None:
        store = self.ctx.store
        self._clear()
        gone = [r.replaces for r in rendered if r.replaces not in (None, r.request.custom_id)]
        if gone:
            store.supersede([g for g in gone if g is not None])
        store.sync_requests([(r.request.custom_id, r.request.input_key, r.request.input_path)
                             for r in rendered])  # fmt: skip
        if self.spool is not None:
            self.spool.add(r.request for r, s in zip(rendered, submit, strict=True) if s)
        self.total += len(rendered)
        self.ctx.progress(f"compile: {self.total} requests")
        crashpoint.hit("compile")

    def end(self, removed: Sequence[str], index: str | None) -> None:
        if removed:
            self._clear()
            self.ctx.store.supersede(removed)
        crashpoint.hit("compile")
        if index is not None:
            self.ctx.store.set_meta(INDEX_META, index)
