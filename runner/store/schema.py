"""The state database's schema: one migration per version, applied atomically in order.

A database records its version in `PRAGMA user_version`; MIGRATIONS[i] moves it from
version i to i + 1. Add a migration, never edit a released one.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 3
PAGE = 1000  # rows per streamed page and per executemany


def _fed_in_order(table: str) -> str:
    """Migration 3 for `table`: rebuild it numbered by `seq`, and set its sink mark."""
    return f"""
    ALTER TABLE {table} RENAME TO {table}_v2;
    CREATE TABLE {table} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        input_key TEXT NOT NULL UNIQUE,
        custom_id TEXT NOT NULL,
        record BLOB NOT NULL
    );
    INSERT INTO {table} (input_key, custom_id, record)
        SELECT input_key, custom_id, record FROM {table}_v2 WHERE written = 1 ORDER BY input_key;
    INSERT OR REPLACE INTO meta (key, value)
        VALUES ('sink_fed_{table}', (SELECT COALESCE(MAX(seq), 0) FROM {table}));
    INSERT INTO {table} (input_key, custom_id, record)
        SELECT input_key, custom_id, record FROM {table}_v2 WHERE written = 0 ORDER BY input_key;
    DROP TABLE {table}_v2;
    """


# One entry per schema version: MIGRATIONS[i] moves a database from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE requests (
        custom_id TEXT PRIMARY KEY,
        input_key TEXT NOT NULL,
        input_path TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        current INTEGER NOT NULL DEFAULT 1,
        intent_id INTEGER,
        batch_id TEXT,
        error_type TEXT,
        error_message TEXT,
        input_tokens INTEGER, cache_write_5m INTEGER, cache_write_1h INTEGER,
        cache_read INTEGER, output_tokens INTEGER, cost_usd REAL, standard_cost_usd REAL
    );
    CREATE INDEX requests_status ON requests (status, current);
    CREATE INDEX requests_batch ON requests (batch_id);
    CREATE INDEX requests_intent ON requests (intent_id);
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY,
        chunk_sha256 TEXT NOT NULL,
        betas TEXT NOT NULL,
        request_count INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        created_at REAL NOT NULL,
        newest_before TEXT,
        batch_id TEXT
    );
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        intent_id INTEGER,
        chunk_sha256 TEXT,
        betas TEXT NOT NULL,
        request_count INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,
        counts TEXT NOT NULL DEFAULT '{}',
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        collect_attempts INTEGER NOT NULL DEFAULT 0,
        collected INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE results (
        input_key TEXT PRIMARY KEY,
        custom_id TEXT NOT NULL,
        record BLOB NOT NULL,
        written INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE dead (
        input_key TEXT PRIMARY KEY,
        custom_id TEXT NOT NULL,
        record BLOB NOT NULL,
        written INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: feeding the sink looks up unwritten rows; without these, a re-run scanned every
    # stored record (~290 MB at 100k results) to find none.
    """
    CREATE INDEX results_unwritten ON results (input_key) WHERE written = 0;
    CREATE INDEX dead_unwritten ON dead (input_key) WHERE written = 0;
    """,
    # 3: the sink is fed in the order rows were stored, up to a mark in `meta`
    # (sinkfeed.py), instead of a `written` flag per row: setting the flag rewrote every
    # ~1-3 KB record once more. `seq` never goes back (AUTOINCREMENT does not reuse the
    # number of a deleted newest row), so a row stored after the mark is always fed. Rows
    # written before sort first and the mark goes after them; unwritten rows come after it.
    _fed_in_order("results") + _fed_in_order("dead"),
)


def migrate(db: sqlite3.Connection) -> bool:
    """Bring the schema to SCHEMA_VERSION, one atomic step per version. True if the
    database was new. Two processes opening a new state at once migrate it once."""
    created = False
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"state schema {version} is newer than this batchrun")
            if version == SCHEMA_VERSION:
                db.execute("COMMIT")
                return created
            created = created or version == 0
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
