"""The state of one job in SQLite: requests, batches, submission intents, results, a lock.

State is the source of truth. Every remote side effect is bracketed by a committed write
(an intent row before create, the batch id after), results are committed here before any
sink sees them, and sinks are re-fed from here after a crash. Only this package talks
SQL (schema.py: migrations; reads.py: streamed reads; sinkfeed.py: feeding the sink).
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from runner.records import (
    RETRYABLE,
    SUBMITTABLE,
    DeadLetter,
    RequestInfo,
    RequestStatus,
    ResultRecord,
)
from runner.store.reads import Reads
from runner.store.schema import MIGRATIONS, PAGE, SCHEMA_VERSION, migrate
from runner.store.sinkfeed import SinkFeed
from runner.store.syncing import Syncing

__all__ = [
    "MIGRATIONS",
    "PAGE",
    "SCHEMA_VERSION",
    "BatchRow",
    "Intent",
    "LockHeld",
    "Outcome",
    "Store",
    "default_state_dir",
]


class LockHeld(Exception):
    """Another process holds this job's lock."""


@dataclass(frozen=True)
class Intent:
    """A chunk about to be (or maybe already) created: written before the create call."""

    id: int
    chunk_sha256: str
    betas: tuple[str, ...]
    request_count: int
    bytes: int
    created_at: float  # epoch seconds, local clock
    newest_before: str | None  # newest batch id in the workspace just before create
    batch_id: str | None


@dataclass(frozen=True)
class BatchRow:
    id: str
    betas: tuple[str, ...]
    request_count: int
    bytes: int
    created_at: str
    status: str
    counts: dict[str, int]
    cancel_requested: bool
    collected: bool


@dataclass(frozen=True)
class Outcome:
    """What collecting one result line decided for its request."""

    custom_id: str
    status: RequestStatus  # succeeded | retry | dead | canceled
    error_type: str | None = None
    error_message: str | None = None
    result: ResultRecord | None = None
    dead: DeadLetter | None = None
    usage: tuple[int, int, int, int, int] | None = None  # in, 5m, 1h, read, out
    cost_usd: float | None = None
    standard_cost_usd: float | None = None


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def default_state_dir(job_path: Path, job_name: str) -> Path:
    """`.batchrun/<job name>/` beside the job file."""
    return job_path.parent / ".batchrun" / job_name


class Store(Reads, SinkFeed, Syncing):
    """One job's state directory: `state.db` (SQLite, WAL) and `lock`."""

    def __init__(self, state_dir: Path, db: sqlite3.Connection, created: bool = False) -> None:
        self.state_dir = state_dir
        self.db = db
        self.created = created  # this open made the database: there was no state before
        self._lock_file: IO[bytes] | None = None

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        """Open (creating and migrating as needed) the state in `state_dir`."""
        state_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(state_dir / "state.db", timeout=30, isolation_level=None)
        # Only a new database takes it (before WAL is on): 16 KB pages made a 100k collect's
        # commit and checkpoint ~40% cheaper than 4 KB; existing states keep their size.
        db.execute("PRAGMA page_size=16384")
        db.execute("PRAGMA journal_mode=WAL")
        # A committed row survives power loss too. Not NORMAL for collect either: it saved
        # nothing measurable (a collect's commit checkpoints, which fsyncs anyway), and a
        # collect lost to a power cut is collected again, unless the batch's results have
        # just passed their 29 days: then its requests would be submitted and billed twice.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        # A collect writes ~250 MB of records in one transaction: the default 2 MB page cache
        # spilled to the WAL mid-transaction again and again.
        db.execute("PRAGMA cache_size=-65536")
        return cls(state_dir, db, migrate(db))

    @classmethod
    def exists(cls, state_dir: Path) -> bool:
        return (state_dir / "state.db").exists()

    def close(self) -> None:
        self.db.close()
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    # --- lock -------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the per-job lock or raise `LockHeld`. The kernel drops it when the process
        dies, SIGKILL included, so a crash never leaves a stale lock behind."""
        f = (self.state_dir / "lock").open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise LockHeld(str(self.state_dir)) from None
        self._lock_file = f

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- meta -------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def clear_meta(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # --- requests ---------------------------------------------------------------------

    def begin_sync(self) -> None:
        """Start marking the job's current requests: everything is superseded until seen."""
        self.db.execute("UPDATE requests SET current = 0 WHERE current = 1")

    def sync_requests(self, rows: Sequence[tuple[str, str, str | None]]) -> None:
        """Record (custom_id, input_key, input_path) as current requests; new ones pending."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO requests (custom_id, input_key, input_path, status) "
                "VALUES (?, ?, ?, 'pending') ON CONFLICT (custom_id) DO UPDATE SET current = 1",
                rows,
            )

    def submittable_ids(self, include_canceled: bool) -> set[str]:
        """Current requests waiting for a submission."""
        statuses = SUBMITTABLE if include_canceled else RETRYABLE
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT custom_id FROM requests WHERE current = 1 AND status IN ({marks})", statuses
        )
        return {r[0] for r in rows}

    def in_flight_count(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM requests WHERE status = 'in_flight'")
        return int(row.fetchone()[0])

    def request_info(self, custom_id: str) -> tuple[str, str | None, int, str | None] | None:
        """(input_key, input_path, attempts, batch_id) of a request, or None if unknown."""
        row = self.db.execute(
            "SELECT input_key, input_path, attempts, batch_id FROM requests WHERE custom_id = ?",
            (custom_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def is_current(self, custom_id: str) -> bool:
        row = self.db.execute("SELECT current FROM requests WHERE custom_id = ?", (custom_id,))
        found = row.fetchone()
        return bool(found and found[0])

    # --- intents ----------------------------------------------------------------------

    def add_intent(
        self, chunk_sha256: str, betas: Sequence[str], custom_ids: Sequence[str], size: int,
        created_at: float, newest_before: str | None,
    ) -> Intent:  # fmt: skip
        """Commit the intent and move its requests in flight (one more attempt each)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO intents (chunk_sha256, betas, request_count, bytes, created_at, "
                "newest_before) VALUES (?, ?, ?, ?, ?, ?)",
                (chunk_sha256, _dumps(list(betas)).decode(), len(custom_ids), size, created_at,
                 newest_before),
            )  # fmt: skip
            intent_id = int(cur.lastrowid or 0)
            db.executemany(
                "UPDATE requests SET status = 'in_flight', attempts = attempts + 1, "
                "intent_id = ?, batch_id = NULL WHERE custom_id = ?",
                ((intent_id, cid) for cid in custom_ids),
            )
        return Intent(intent_id, chunk_sha256, tuple(betas), len(custom_ids), size, created_at,
                      newest_before, None)  # fmt: skip

    def open_intents(self) -> list[Intent]:
        """Intents whose create outcome is unknown, oldest first."""
        rows = self.db.execute(
            "SELECT id, chunk_sha256, betas, request_count, bytes, created_at, newest_before, "
            "batch_id FROM intents WHERE batch_id IS NULL ORDER BY id"
        )
        return [
            Intent(r[0], r[1], tuple(orjson.loads(r[2])), r[3], r[4], r[5], r[6], r[7])
            for r in rows
        ]

    def attach_batch(self, intent: Intent, batch_id: str, created_at: str, status: str) -> None:
        """The create of `intent` made `batch_id`: record it (idempotent)."""
        with self.transaction() as db:
            db.execute("UPDATE intents SET batch_id = ? WHERE id = ?", (batch_id, intent.id))
            db.execute(
                "INSERT OR IGNORE INTO batches (id, intent_id, chunk_sha256, betas, "
                "request_count, bytes, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, intent.id, intent.chunk_sha256, _dumps(list(intent.betas)).decode(),
                 intent.request_count, intent.bytes, created_at, status),
            )  # fmt: skip
            db.execute(
                "UPDATE requests SET batch_id = ? WHERE intent_id = ? AND status = 'in_flight'",
                (batch_id, intent.id),
            )

    def abandon_intent(self, intent: Intent) -> None:
        """No batch was made for `intent`: its requests go back to waiting, attempt undone."""
        with self.transaction() as db:
            db.execute(
                "UPDATE requests SET attempts = attempts - 1, intent_id = NULL, "
                "status = CASE WHEN attempts - 1 > 0 THEN 'retry' ELSE 'pending' END "
                "WHERE intent_id = ? AND status = 'in_flight' AND batch_id IS NULL",
                (intent.id,),
            )
            db.execute("DELETE FROM intents WHERE id = ?", (intent.id,))

    def owned_batch_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM batches")}

    # --- batches ----------------------------------------------------------------------

    def batches(self, uncollected_only: bool = False) -> list[BatchRow]:
        where = "WHERE collected = 0" if uncollected_only else ""
        rows = self.db.execute(
            "SELECT id, betas, request_count, bytes, created_at, status, counts, "
            f"cancel_requested, collected FROM batches {where} ORDER BY created_at, id"
        )
        return [
            BatchRow(r[0], tuple(orjson.loads(r[1])), r[2], r[3], r[4], r[5],
                     orjson.loads(r[6]), bool(r[7]), bool(r[8]))
            for r in rows
        ]  # fmt: skip

    def update_batch(self, batch_id: str, status: str, counts: dict[str, int]) -> None:
        self.db.execute(
            "UPDATE batches SET status = ?, counts = ? WHERE id = ?",
            (status, _dumps(counts).decode(), batch_id),
        )

    def mark_cancel_requested(self, batch_id: str) -> None:
        self.db.execute("UPDATE batches SET cancel_requested = 1 WHERE id = ?", (batch_id,))

    def adopt_batch(
        self, batch_id: str, created_at: str, request_count: int, custom_ids: Iterable[str]
    ) -> None:
        """`recover`: own a batch found in the workspace holding some of our requests."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO batches (id, betas, request_count, bytes, created_at, "
                "status) VALUES (?, '[]', ?, 0, ?, 'ended')",
                (batch_id, request_count, created_at),
            )
            db.executemany(
                "UPDATE requests SET status = 'in_flight', batch_id = ?, intent_id = NULL, "
                "attempts = attempts + 1 WHERE custom_id = ? AND status NOT IN "
                "('succeeded', 'dead', 'in_flight')",
                ((batch_id, cid) for cid in custom_ids),
            )

    # --- collect ----------------------------------------------------------------------

    def record_outcomes(self, batch_id: str, outcomes: Sequence[Outcome]) -> None:
        """Apply one page of collected outcomes; call inside `transaction()`. One
        executemany per statement (a per-row execute cost more than parsing the results);
        a page where an input key occurs twice keeps the row-by-row order instead."""
        keys = [o.result.input_key for o in outcomes if o.result is not None]
        keys += [o.dead.input_key for o in outcomes if o.dead is not None]
        if len(keys) != len(set(keys)):
            for o in outcomes:
                self._record_page(batch_id, [o])
            return
        self._record_page(batch_id, outcomes)

    def _record_page(self, batch_id: str, outcomes: Sequence[Outcome]) -> None:
        none = (None, None, None, None, None)
        self.db.executemany(
            "UPDATE requests SET status = ?, error_type = ?, error_message = ?, "
            "input_tokens = ?, cache_write_5m = ?, cache_write_1h = ?, cache_read = ?, "
            "output_tokens = ?, cost_usd = ?, standard_cost_usd = ? "
            "WHERE custom_id = ? AND batch_id = ? AND status = 'in_flight'",
            [(o.status, o.error_type, o.error_message, *(o.usage or none), o.cost_usd,
              o.standard_cost_usd, o.custom_id, batch_id) for o in outcomes],
        )  # fmt: skip
        results = [(o.result.input_key, o.custom_id, o.result) for o in outcomes if o.result]
        dead = [(o.dead.input_key, o.custom_id, o.dead) for o in outcomes if o.dead]
        self._replace_rows("results", "dead", results)
        self._replace_rows("dead", "results", dead)

    def _replace_rows(self, table: str, other: str, rows: Sequence[tuple[str, str, Any]]) -> None:
        """An input has a result or a dead letter, never both: set one, drop the other.
        A stored row gets a new `seq`, so the sink is fed it (sinkfeed.py)."""
        if not rows:
            return
        if self.db.execute(f"SELECT EXISTS (SELECT 1 FROM {other})").fetchone()[0]:
            self.db.executemany(f"DELETE FROM {other} WHERE input_key = ?", [(r[0],) for r in rows])
        self.db.executemany(  # serialised as SQLite binds each: one alive at a time, not a page
            f"INSERT OR REPLACE INTO {table} (input_key, custom_id, record) VALUES (?, ?, ?)",
            ((key, cid, _dumps(rec)) for key, cid, rec in rows),
        )

    def refuse_results(self, letters: Sequence[DeadLetter]) -> None:
        """The sink could not hold these results: each becomes its input's dead letter."""
        with self.transaction():
            for d in letters:
                self.db.execute(
                    "UPDATE requests SET status = 'dead', error_type = ?, error_message = ? "
                    "WHERE custom_id = ?",
                    (d.error_type, d.error_message, d.custom_id),
                )
                self.db.execute("DELETE FROM results WHERE input_key = ?", (d.input_key,))
                self.db.execute(
                    "INSERT OR REPLACE INTO dead (input_key, custom_id, record) VALUES (?, ?, ?)",
                    (d.input_key, d.custom_id, _dumps(d)),
                )

    def in_flight_of_batch(self, batch_id: str) -> list[RequestInfo]:
        """The batch's uncollected requests."""
        rows = self.db.execute(
            "SELECT custom_id, input_key, input_path, attempts FROM requests "
            "WHERE batch_id = ? AND status = 'in_flight'",
            (batch_id,),
        )
        return [RequestInfo(r[0], r[1], r[2], r[3]) for r in rows]

    def finish_batch(self, batch_id: str) -> None:
        """Mark a batch collected; call in the transaction that recorded its outcomes."""
        self.db.execute(
            "UPDATE batches SET collected = 1, status = 'ended' WHERE id = ?", (batch_id,)
        )

    def collect_attempts(self, batch_id: str) -> int:
        row = self.db.execute("SELECT collect_attempts FROM batches WHERE id = ?", (batch_id,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def bump_collect_attempts(self, batch_id: str) -> None:
        self.db.execute(
            "UPDATE batches SET collect_attempts = collect_attempts + 1 WHERE id = ?", (batch_id,)
        )
