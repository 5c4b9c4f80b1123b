"""Optional persistence (`--state FILE`): batches, their compact request records and their
outcomes in SQLite, plus the clock offset, so a restarted emulator answers exactly as
before. The prompt cache is not persisted: after a restart every prefix is written again."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from runner.emulator.responder import Record
from runner.emulator.state import Batch, Outcome
from runner.emulator.usage import Usage

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, created_at REAL NOT NULL,
    latency REAL NOT NULL, cancel_at REAL, ended_at REAL, deleted INTEGER NOT NULL,
    records BLOB NOT NULL, attempts BLOB NOT NULL, outcomes BLOB
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def clock_offset(self) -> float:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='clock_offset'").fetchone()
        return float(row[0]) if row else 0.0

    def save_clock(self, offset: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('clock_offset', ?)",
                (repr(offset),),
            )

    def save(self, batch: Batch, new: bool = False) -> None:
        """Insert a new batch with its records, or update the mutable part of one."""
        outcomes = None
        if batch.outcomes is not None:
            outcomes = orjson.dumps([o.to_row() for o in batch.outcomes])
        mutable = (batch.cancel_at, batch.ended_at, int(batch.deleted), outcomes)
        with self._lock:
            if new:
                assert batch.records is not None
                records = orjson.dumps([r.to_row() for r in batch.records])
                self._db.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch.seq,
                        batch.id,
                        batch.created_at,
                        batch.latency,
                        *mutable[:3],
                        records,
                        orjson.dumps(batch.attempts),
                        outcomes,
                    ),
                )
            else:
                self._db.execute(
                    "UPDATE batches SET cancel_at=?, ended_at=?, deleted=?, outcomes=? WHERE id=?",
                    (*mutable, batch.id),
                )

    def load(self) -> list[Batch]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM batches ORDER BY seq").fetchall()
        return [_batch(row) for row in rows]


def _batch(row: tuple[object, ...]) -> Batch:
    seq, bid, created, latency, cancel_at, ended_at, deleted, records, attempts, outcomes = row
    assert isinstance(records, bytes) and isinstance(attempts, bytes)
    rows = [Record.from_row(r) for r in orjson.loads(records)]
    batch = Batch(
        id=str(bid),
        seq=int(seq),  # type: ignore[call-overload]
        created_at=float(created),  # type: ignore[arg-type]
        latency=float(latency),  # type: ignore[arg-type]
        custom_ids=[r.custom_id for r in rows],
        attempts=list(orjson.loads(attempts)),
        records=rows,
        cancel_at=None if cancel_at is None else float(cancel_at),  # type: ignore[arg-type]
        ended_at=None if ended_at is None else float(ended_at),  # type: ignore[arg-type]
        deleted=bool(deleted),
    )
    if isinstance(outcomes, bytes):
        batch.outcomes = [_outcome(row) for row in orjson.loads(outcomes)]
    return batch


def _outcome(row: list[Any]) -> Outcome:
    kind, usage, error_type, error_message, cost = row
    return Outcome(kind, Usage(*usage) if usage else None, error_type, error_message, cost)
