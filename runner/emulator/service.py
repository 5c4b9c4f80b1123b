"""The Message Batches API behind the HTTP layer: create, retrieve, list, cancel, delete and
results over the batch state machine. One lock serialises every change; result lines are
generated outside it."""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from runner.emulator import errors, intake, stats, wire
from runner.emulator.caching import PromptCache
from runner.emulator.clock import Clock
from runner.emulator.config import EmulatorConfig
from runner.emulator.faults import Faults
from runner.emulator.gcpause import gc_paused
from runner.emulator.params import Context
from runner.emulator.state import Batch, finalize, process
from runner.emulator.store import Store

MAX_LIST_LIMIT = 1000
SYNC_SUMMARY_LIMIT = 2_000  # smaller batches are ready at once: tests need no polling


class Service:
    def __init__(self, config: EmulatorConfig, clock: Clock, store: Store | None = None) -> None:
        self.config = config
        self.clock = clock
        self.faults = Faults(config)
        self._cache = PromptCache()
        self._store = store
        self._lock = threading.RLock()
        self._batches: dict[str, Batch] = {}
        self._submissions: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._workers: list[threading.Thread] = []
        self._faulted: dict[str, int] = {}
        self._commit_then_fail: list[str] = []
        if store is not None:
            for batch in store.load():
                self._adopt(batch)

    def _adopt(self, batch: Batch) -> None:
        self._batches[batch.id] = batch
        for cid in batch.custom_ids:
            self._submissions[cid] = self._submissions.get(cid, 0) + 1

    # -- state machine ---------------------------------------------------------------------

    def settle(self) -> float:
        """Process every request whose instant has passed (all batches, in emulated time
        order, so the prompt cache sees them as they happened), then end the batches whose
        end has passed. Returns the emulated now."""
        with self._lock:
            now = self.clock.now()
            drain = self.config.cancel_drain_s
            running = [
                b for b in self._batches.values() if b.ended_at is None and b.records is not None
            ]
            with gc_paused():
                process(running, now, drain, self.faults, self._cache)
            for batch in running:
                if batch.end_time(drain) <= now:
                    finalize(batch, batch.end_time(drain))
                    self._save(batch)
            return now

    def _save(self, batch: Batch, new: bool = False) -> None:
        if self._store is not None:
            self._store.save(batch, new=new)

    def _get(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None or batch.deleted:
            raise errors.not_found(f"message_batch: {batch_id} not found")
        return batch

    # -- endpoints -------------------------------------------------------------------------

    def create(self, body: bytes, ctx: Context, origin: str) -> tuple[dict[str, Any], bool]:
        """A new batch as JSON, and whether the response must fail after the commit.

        Only the synchronous checks run before answering; summarising a large batch's
        requests happens in a background thread so a 256 MB create is accepted in about
        the time it takes to read and parse it. The GC stays paused from the parse until
        intake has released the parsed body, so no collection ever walks it (gcpause.py).
        """
        with contextlib.ExitStack() as stack:
            stack.enter_context(gc_paused())
            requests, custom_ids = intake.parse(body, self.config.max_requests_per_batch)
            batch, answer = self._register(custom_ids, origin)
            pause = stack.pop_all()  # now intake's to end
        if len(custom_ids) <= SYNC_SUMMARY_LIMIT:
            self._summarise(batch, requests, ctx, pause)
        else:
            worker = threading.Thread(
                target=self._summarise,
                args=(batch, requests, ctx, pause),
                name="emulator-intake",
            )
            self._workers.append(worker)
            worker.start()
        return answer

    def _register(
        self, custom_ids: list[str], origin: str
    ) -> tuple[Batch, tuple[dict[str, Any], bool]]:
        """Commit a new batch of `custom_ids` if the queue has room (contract 9)."""
        with self._lock:
            now = self.settle()
            self._check_queue(len(custom_ids), now)
            seq = max((b.seq for b in self._batches.values()), default=0) + 1
            attempts = [self._submissions.get(cid, 0) for cid in custom_ids]
            for cid in custom_ids:
                self._submissions[cid] = self._submissions.get(cid, 0) + 1
            batch = Batch(
                _batch_id(seq),
                seq,
                now,
                self.faults.latency(),
                custom_ids,
                attempts,
            )
            self._batches[batch.id] = batch
            fail = self.faults.commit_then_fail()
            if fail:
                self._commit_then_fail.append(batch.id)
            return batch, (wire.batch_json(batch, origin, now), fail)

    def _summarise(
        self, batch: Batch, requests: list[Any], ctx: Context, pause: contextlib.ExitStack
    ) -> None:
        with pause:
            records = intake.records(requests, ctx, self.config.responses)
        with self._lock:
            batch.records = records
            self._save(batch, new=True)

    def close(self) -> None:
        """Wait for background intake so no thread outlives the server."""
        for worker in self._workers:
            worker.join()

    def _check_queue(self, incoming: int, now: float) -> None:
        """Contract 9: a request counts against the queue while it is not yet processed,
        so a running batch frees its share as its requests finish."""
        busy = [b for b in self._batches.values() if b.ended_at is None]
        queued = sum(b.unprocessed() for b in busy)
        if queued + incoming <= self.config.queue_limit:
            return
        soonest = min((b.end_time(self.config.cancel_drain_s) for b in busy), default=now)
        wait = max(1, min(60, math.ceil(soonest - now)))
        raise errors.ApiError(
            429,
            "rate_limit_error",
            f"Number of batch requests in the processing queue would exceed your limit of "
            f"{self.config.queue_limit}: {queued} are processing and {incoming} were submitted",
            headers={"retry-after": str(wait)},
        )

    def retrieve(self, batch_id: str, origin: str) -> dict[str, Any]:
        with self._lock:
            now = self.settle()
            return wire.batch_json(self._get(batch_id), origin, now)

    def list(
        self, limit: int, after_id: str | None, before_id: str | None, origin: str
    ) -> dict[str, Any]:
        """Newest first; `after_id` pages towards older batches, `before_id` towards newer."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise errors.invalid(f"limit: Input should be between 1 and {MAX_LIST_LIMIT}")
        if after_id is not None and before_id is not None:
            raise errors.invalid("Only one of after_id and before_id may be given")
        with self._lock:
            now = self.settle()
            live = sorted(
                (b for b in self._batches.values() if not b.deleted), key=lambda b: -b.seq
            )
            if after_id is not None:
                pivot = _seq_of(after_id, "after_id")
                older = [b for b in live if b.seq < pivot]
                chosen, more = older[:limit], len(older) > limit
            elif before_id is not None:
                pivot = _seq_of(before_id, "before_id")
                newer = [b for b in live if b.seq > pivot]
                chosen, more = newer[-limit:], len(newer) > limit
            else:
                chosen, more = live[:limit], len(live) > limit
            return wire.page([wire.batch_json(b, origin, now) for b in chosen], more)

    def cancel(self, batch_id: str, origin: str) -> dict[str, Any]:
        with self._lock:
            now = self.settle()
            batch = self._get(batch_id)
            if batch.ended_at is not None:
                raise errors.invalid(
                    f"message_batch: {batch_id} has already ended and cannot be canceled"
                )
            if batch.cancel_at is None:
                batch.cancel_at = now
                self._save(batch)
            return wire.batch_json(batch, origin, now)

    def delete(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            self.settle()
            batch = self._get(batch_id)
            if batch.ended_at is None:
                raise errors.invalid(
                    f"message_batch: {batch_id} is still processing; cancel it and wait for "
                    "it to end before deleting it"
                )
            batch.deleted = True
            self._save(batch)
            return {"id": batch.id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> Iterator[bytes]:
        """The result lines of an ended, unarchived batch (generated lazily)."""
        with self._lock:
            now = self.settle()
            batch = self._get(batch_id)
            if batch.ended_at is None:
                raise errors.invalid(f"message_batch: {batch_id} has not finished processing")
            if now >= batch.archive_at:
                raise errors.not_found(
                    f"message_batch: results of {batch_id} were archived and are no longer "
                    "available"
                )
        return wire.result_lines(batch)

    def count_call(self, endpoint: str, faulted: bool) -> None:
        """HTTP calls per endpoint and injected faults, so tests can see the SDK retry."""
        with self._lock:
            self._calls[endpoint] = self._calls.get(endpoint, 0) + 1
            if faulted:
                self._faulted[endpoint] = self._faulted.get(endpoint, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            now = self.settle()
            figures = stats.compute(sorted(self._batches.values(), key=lambda b: b.seq), now)
            figures["http_calls"] = dict(self._calls)
            figures["http_faults_injected"] = dict(self._faulted)
            figures["committed_then_failed_batch_ids"] = list(self._commit_then_fail)
            return figures

    def advance(self, seconds: float) -> float:
        self.clock.advance(seconds)
        if self._store is not None:
            self._store.save_clock(self.clock.offset)
        return self.settle()


def _batch_id(seq: int) -> str:
    # The sequence number leads the id so list cursors still work after a batch is deleted.
    # The random tail keeps ids unique across emulator restarts without --state: a runner
    # holding an old id must get a 404, never somebody else's batch.
    return f"msgbatch_{seq:08d}{secrets.token_hex(8)}"


def _seq_of(batch_id: str, name: str) -> int:
    digits = batch_id.removeprefix("msgbatch_")[:8]
    if not batch_id.startswith("msgbatch_") or not digits.isdigit():
        raise errors.invalid(f"{name}: {batch_id} is not a message batch id")
    return int(digits)
