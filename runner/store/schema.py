"""The state database's schema: one migration per version, applied atomically in order.

A database records its version in `PRAGMA user_version`; MIGRATIONS[i] moves it from
version i to i + 1. Add a migration, never edit a released one.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

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
