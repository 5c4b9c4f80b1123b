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

from dataclasses import dataclass, field

from runner import log
from runner.backend import Retryable
from runner.executor import collect, submit
from runner.executor.context import Clock, Context
from runner.executor.spool import Spool
from runner.executor.sync import sync_if_changed
from runner.records import DISPLAY_ORDER, WAITING

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
    """One job driven pass by pass, so that several jobs can share one waiting loop."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.summary = RunSummary(ctx.job.name)
        self.interval = ctx.job.poll_interval_s
        self.first = True
        self.spool = Spool(ctx.store.state_dir)
        self._log = _log.bind(job=ctx.job.name)

    def start(self) -> None:
        """Record the job's requests and re-apply results a crashed run left unwritten."""
        total = sync_if_changed(self.ctx, self.spool)
        if total is None:
            self._log.info("inputs unchanged and every request final: compile skipped")
        else:
            self._log.info("compiled", requests=total)
        collect.flush_sink(self.ctx)

    def step(self) -> float | None:
        """One pass. Returns how long to wait before the next, or None when finished."""
        ctx = self.ctx
        settled = _settle_intents(ctx)
        polled = collect.poll(ctx)
        sent = submit.submit_waiting(ctx, include_canceled=self.first, spool=self.spool)
        self.first = False
        self.summary.batches_submitted += sent.batches
        self.summary.requests_submitted += sent.requests
        self.summary.counts = ctx.store.status_counts()
        self.summary.finished = _finished(ctx, self.summary.counts)
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


def run(ctx: Context, no_wait: bool = False) -> RunSummary:
    """Drive one job towards every input having a final outcome (the caller holds its
    lock); with `no_wait`, one pass."""
    return run_many([ctx], ctx.clock, no_wait)[0]


def run_many(ctxs: list[Context], clock: Clock, no_wait: bool = False) -> list[RunSummary]:
    """Drive several jobs at once, each at its own pace: a job's next pass comes when its
    own wait is over, so no job waits for another to finish."""
    runs = [JobRun(ctx) for ctx in ctxs]
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
    return not any(counts.get(s) for s in WAITING) and not ctx.store.open_intents()


def _backoff(ctx: Context, interval: float) -> float:
    return min(interval * 2, max(ctx.job.poll_max_interval_s, ctx.job.poll_interval_s))


def _progress_line(counts: dict[str, int]) -> str:
    shown = [f"{counts[k]} {k}" for k in DISPLAY_ORDER if counts.get(k)]
    return "requests: " + ", ".join(shown)
