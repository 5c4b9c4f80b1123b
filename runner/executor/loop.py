"""The reconcile loop: observe state and the API, then do only what is missing.

One pass: settle open intents -> collect ended batches (results -> state -> sink) -> submit
waiting requests under the in-flight cap -> stop when every current request is final, or
after one pass with --no-wait; otherwise sleep (poll interval with backoff, or longer if the
API sent retry-after) and go again. Clock and sleep are injected (context.Clock).

Why a SIGKILL at any instant loses nothing and bills nothing twice (the chaos tests hit each
window through runner.crashpoint):
- during compile: requests are only being recorded as pending; re-run records them again
  (upserts), nothing remote happened.
- after the intent commit, before create: the intent is open; the next run lists the
  workspace's batches, finds none newer than the intent's mark with its request count, and
  abandons it (attempt undone); the requests are resubmitted once.
- create committed, response lost (crash, timeout, or commit-then-fail): the intent is open;
  listing finds the batch (newer than the mark, same count, not owned) and adopts it. No
  second create is ever posted for an open intent.
- after the batch id is stored: ordinary in-flight batch; polled and collected later.
- mid-collect: outcomes are recorded in one transaction with "collected"; a crash rolls it
  all back and the batch is collected again from the API (results stay 29 days).
- after results are stored, before or during the sink write, or after it but before the
  rows are marked written: the rows stay unwritten; every run starts by re-applying them.
  The sink is idempotent by input key (same custom_id: no-op; JSONL repairs a torn tail).
- a resubmission only ever covers requests whose status is pending/retry/canceled, never
  in_flight ones, so no custom_id is in two processing batches at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runner import log
from runner.backend import Retryable
from runner.executor import collect, submit, sync
from runner.executor.context import Clock, Context
from runner.executor.spool import Spool
from runner.plan import Plan, check_budget
from runner.plan.total import check_total, spent_usd
from runner.records import DISPLAY_ORDER

_log = log.get("batchrun.executor")
FIRST_POLL_S = 1.0


@dataclass
class RunSummary:
    """What a run (or one --no-wait pass) ended with."""

    job: str
    counts: dict[str, int] = field(default_factory=dict)  # current requests by status
    batches_submitted: int = 0
    requests_submitted: int = 0
    finished: bool = False  # no current request is waiting for anything

    @property
    def dead(self) -> int:
        return self.counts.get("dead", 0)

    @property
    def canceled(self) -> int:
        return self.counts.get("canceled", 0)


class JobRun:
    """One job driven pass by pass, so that several jobs can share one waiting loop.

    The first pass builds the run's plan (`sync.sync_pass`) and checks the budget against
    it; the run then submits exactly the plan's requests, and afterwards only retries of
    requests that failed for a retryable reason. `planned` (a saved plan being applied)
    narrows the plan to those custom_ids."""

    def __init__(self, ctx: Context, planned: frozenset[str] | None = None) -> None:
        self.ctx = ctx
        self.summary = RunSummary(ctx.job.name)
        self.interval = ctx.job.poll_interval_s
        self.spool = Spool(ctx.store.state_dir)
        self.planned = planned
        self.plan: Plan | None = None
        self.unsent: set[str] = set()  # the plan's requests not submitted yet
        self.skip: set[str] = set()  # waiting requests this run must not submit
        self.first = True
        self._log = _log.bind(job=ctx.job.name)

    def start(self) -> None:
        """Build the plan, re-apply results a crashed run left unwritten, check the budget."""
        applying = self.planned is not None
        self.plan = plan = sync.sync_pass(self.ctx, self.spool, keep_ids=applying)
        if self.planned is not None:  # a saved plan: only its requests, whatever else waits
            ids = set(plan.submit_ids)
            self.skip = ids - self.planned
            self.unsent = ids & self.planned
        # Otherwise the plan's requests are exactly those state now holds as waiting.
        to_submit = len(self.unsent) if applying else plan.counts.to_submit
        self._log.info("compiled", inputs=plan.counts.inputs, to_submit=to_submit)
        collect.flush_sink(self.ctx)
        check_budget(plan)
        check_total(plan, self.ctx.job.budget_total_usd, spent_usd(self.ctx.store))

    def step(self) -> float | None:
        """One pass. Returns how long to wait before the next, or None when finished."""
        ctx = self.ctx
        settled = _settle_intents(ctx)
        polled = collect.poll(ctx)
        sent = submit.submit_waiting(ctx, self._waiting(), spool=self.spool)
        self.first = False
        self.summary.batches_submitted += sent.batches
        self.summary.requests_submitted += sent.requests
        self.summary.counts = counts = ctx.store.status_counts()
        # Whether anything still waits for this run: asked of state only when it may.
        may_wait = any(counts.get(s) for s in ("pending", "retry")) or self.unsent
        self.summary.finished = _finished(ctx, counts) and not (may_wait and self._waiting())
        ctx.progress(_progress_line(self.summary.counts))
        if self.summary.finished:
            self.spool.discard()
            return None
        progressed = polled.ended or sent.batches
        self.interval = ctx.job.poll_interval_s if progressed else _backoff(ctx, self.interval)
        # A fresh batch may end quickly (small ones often do): look again soon, once.
        soon = min(self.interval, FIRST_POLL_S) if sent.batches else self.interval
        wait = max(soon, polled.retry_after or 0.0, sent.retry_after or 0.0, settled or 0.0)
        self._log.debug("waiting", seconds=wait, **self.summary.counts)
        return wait

    def _waiting(self) -> set[str]:
        """What this run submits next: the plan's requests not yet sent, and any pending or
        retry request (a retry, or a create that proved never made) it may submit."""
        store = self.ctx.store
        if self.unsent:  # sent (even by a create in doubt) means no longer submittable
            self.unsent &= store.submittable_ids(include_canceled=True)
        # A run's first pass also resubmits what a `cancel` before it stopped (collected
        # just now): the next plain run finishes a canceled job. Later passes never undo a
        # `cancel` made during the run; a saved plan being applied submits only its own.
        first = self.first and self.planned is None
        waiting = store.submittable_ids(include_canceled=first)  # a fresh set: ours to change
        waiting -= self.skip
        waiting |= self.unsent
        unrenderable = sync.render_waiting(self.ctx, waiting, self.spool)
        if unrenderable:
            self._log.warning(
                "requests whose inputs changed during the run wait for the next run",
                requests=len(unrenderable),
            )
            self.skip |= unrenderable
            waiting -= unrenderable
        return waiting


def run(ctx: Context, no_wait: bool = False, planned: frozenset[str] | None = None) -> RunSummary:
    """Drive one job towards every input having a final outcome (the caller holds its
    lock); with `no_wait`, one pass; with `planned`, submitting only those custom_ids."""
    return run_many([ctx], ctx.clock, no_wait, [planned])[0]


def run_many(
    ctxs: list[Context],
    clock: Clock,
    no_wait: bool = False,
    planned: Sequence[frozenset[str] | None] | None = None,
) -> list[RunSummary]:
    """Drive several jobs at once, each at its own pace: a job's next pass comes when its
    own wait is over, so no job waits for another to finish. `planned`: per job, the
    custom_ids of a saved plan to apply (None: the plan this run builds)."""
    runs = [JobRun(c, p) for c, p in zip(ctxs, planned or [None] * len(ctxs), strict=True)]
    try:
        for r in runs:
            r.start()
        due = dict.fromkeys(runs, 0.0)
        while due:
            now = clock.now()
            for r in [r for r, t in due.items() if t <= now]:
                wait = r.step()
                r.ctx.on_pass(wait)
                if wait is None:
                    del due[r]
                else:
                    due[r] = clock.now() + wait
            if no_wait or not due:
                break
            clock.sleep(max(0.0, min(due.values()) - clock.now()))
    finally:
        for r in runs:
            r.spool.discard()  # never read by a later run: do not leave it taking space
    return [r.summary for r in runs]


def _settle_intents(ctx: Context) -> float | None:
    """Reconcile open intents; if the API cannot be listed now, their requests simply stay
    in flight (never resubmitted) until a later pass can. Returns a retry-after, if any."""
    try:
        submit.reconcile_intents(ctx)
    except Retryable as exc:
        _log.warning("could not list batches to settle an interrupted create", error=str(exc))
        return exc.retry_after
    return None


def _finished(ctx: Context, counts: dict[str, int]) -> bool:
    """Nothing in flight and no create in doubt (the caller checks that nothing waits)."""
    return not counts.get("in_flight") and not ctx.store.open_intents()


def _backoff(ctx: Context, interval: float) -> float:
    return min(interval * 2, max(ctx.job.poll_max_interval_s, ctx.job.poll_interval_s))


def _progress_line(counts: dict[str, int]) -> str:
    shown = [f"{counts[k]} {k}" for k in DISPLAY_ORDER if counts.get(k)]
    return "requests: " + ", ".join(shown)
