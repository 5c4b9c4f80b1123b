"""The SQLite sink: one row per input key in `output.table` of the database `output.path`.

Exactly-once by an upsert keyed by input key, one transaction per `upsert()` call (the
executor calls it once per collected batch), so a crash leaves a batch's rows either all
written or not at all, and the re-apply after it is a no-op for rows already there. A row
changes (and its `updated_at` moves) only when something in it differs, so re-runs do not
churn. Dead letters live in `<table>_dead_letters`; a success deletes its key's dead letter,
and a dead letter its key's result, in the same transaction. Column reference: docs/sinks.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from runner.errors import BatchrunError
from runner.records import DeadLetter, ResultRecord
from runner.sinks.columns import Column, sql_value
from runner.spec.model import OutputSpec

Clock = Callable[[], datetime]

RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("input_key", "TEXT NOT NULL PRIMARY KEY"),
    ("input_path", "TEXT"),
    ("custom_id", "TEXT NOT NULL"),
    ("outcome", "TEXT NOT NULL"),
    ("text", "TEXT NOT NULL"),
    ("model", "TEXT NOT NULL"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("cache_creation_input_tokens", "INTEGER"),
    ("cache_read_input_tokens", "INTEGER"),
    ("cost_usd", "REAL"),
    ("batch_id", "TEXT NOT NULL"),
    ("spec_hash", "TEXT NOT NULL"),
    ("attempts", "INTEGER NOT NULL"),
    ("collected_at", "TEXT NOT NULL"),
    ("updated_at", "TEXT NOT NULL"),
    ("message_json", "TEXT NOT NULL"),
)
DEAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("input_key", "TEXT NOT NULL PRIMARY KEY"),
    ("input_path", "TEXT"),
    ("custom_id", "TEXT NOT NULL"),
    ("outcome", "TEXT NOT NULL"),
    ("error_type", "TEXT"),
    ("error_message", "TEXT"),
    ("attempts", "INTEGER NOT NULL"),
    ("batch_id", "TEXT"),
    ("spec_hash", "TEXT NOT NULL"),
    ("at", "TEXT NOT NULL"),
    ("updated_at", "TEXT NOT NULL"),
)
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """`2026-11-24T06:15:00.123456Z`: sortable as text, UTC."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def quote(identifier: str) -> str:
    """An SQL identifier, quoted: table names come from the job file."""
    return '"' + identifier.replace('"', '""') + '"'


def default_table(job_name: str) -> str:
    """The job name with '-' as '_' (job names are otherwise valid identifiers)."""
    return job_name.replace("-", "_")


# ---------------------------------------------------------------------------------------
# SQL, built once per table from the fixed column lists above


def create_sql(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    body = ", ".join(f"{quote(name)} {decl}".rstrip() for name, decl in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})"


def upsert_sql(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    """INSERT, or UPDATE a key's row only when a column other than `updated_at` differs."""
    names = [name for name, _ in columns]
    content = [n for n in names if n not in ("input_key", "updated_at")]
    sets = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names[1:])
    differs = " OR ".join(f"{quote(table)}.{quote(n)} IS NOT excluded.{quote(n)}" for n in content)
    return (
        f"INSERT INTO {quote(table)} ({', '.join(map(quote, names))}) "
        f"VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT(input_key) DO UPDATE SET {sets} WHERE {differs}"
    )


# ---------------------------------------------------------------------------------------
# Rows


def result_row(record: ResultRecord, updated_at: str) -> tuple[Any, ...]:
    """A record as a row of RESULT_COLUMNS, in order. The message JSON has sorted keys so
    the same message always gives the same text (and so re-applying changes nothing)."""
    usage = record.usage
    return (
        record.input_key,
        record.input_path,
        record.custom_id,
        record.outcome,
        record.text,
        record.model,
        *(usage.get(field) for field in _USAGE_FIELDS),
        record.cost_usd,
        record.batch_id,
        record.spec_hash,
        record.attempts,
        record.collected_at,
        updated_at,
        orjson.dumps(record.message, default=dict, option=orjson.OPT_SORT_KEYS).decode(),
    )


def dead_row(letter: DeadLetter, updated_at: str) -> tuple[Any, ...]:
    return (
        letter.input_key,
        letter.input_path,
        letter.custom_id,
        letter.outcome,
        letter.error_type,
        letter.error_message,
        letter.attempts,
        letter.batch_id,
        letter.spec_hash,
        letter.at,
        updated_at,
    )


# ---------------------------------------------------------------------------------------
# The sink


def _connect(path: Path) -> sqlite3.Connection:
    """Autocommit mode: transactions are explicit, one per upsert call."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as e:
        raise BatchrunError(f"cannot open the sqlite output {str(path)!r}: {e}") from e


class SqliteSink:
    """`output.type: sqlite`. Safe to open on a database another sink run left behind,
    whatever it was doing when it stopped: SQLite rolls back an uncommitted transaction."""

    def __init__(
        self,
        output: OutputSpec,
        job_name: str,
        *,
        clock: Clock = utc_now,
        columns: Sequence[Column] = (),
    ) -> None:
        self.table = output.table or default_table(job_name)
        self.dead_table = f"{self.table}_dead_letters"
        self._clock = clock
        self._path = output.local
        # Included fields and schema properties (sinks/columns.py), after batchrun's own.
        self._extra = tuple(columns)
        self._columns = RESULT_COLUMNS + tuple((c.name, c.sql_type) for c in self._extra)
        self._conn: sqlite3.Connection | None = _connect(output.local)
        try:
            self._setup()
        except sqlite3.Error as e:  # not a database, locked for 10 s, read-only, ...
            self.close()
            raise BatchrunError(f"cannot use the sqlite output {str(self._path)!r}: {e}") from e
        except BaseException:
            self.close()  # no connection left open behind a refused table
            raise
        self._upsert_result = upsert_sql(self.table, self._columns)
        self._upsert_dead = upsert_sql(self.dead_table, DEAD_COLUMNS)
        self._delete_result = f"DELETE FROM {quote(self.table)} WHERE input_key = ?"
        self._delete_dead = f"DELETE FROM {quote(self.dead_table)} WHERE input_key = ?"
        self._any_dead = f"SELECT EXISTS (SELECT 1 FROM {quote(self.dead_table)})"

    def _setup(self) -> None:
        conn = self._connection()
        # Rows are ~2-3 KB (the answer, and the message holding it again): 16 KiB pages
        # take ~30% less time per row than 4 KiB. Only applies to a database created now.
        conn.execute("PRAGMA page_size = 16384")
        # WAL: readers (someone querying the table mid-run) never block the writer.
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed batch survives a power cut, since the executor marks results
        # written right after, and would not re-apply them.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 10000")
        with self._transaction() as c:
            c.execute(create_sql(self.table, self._columns))
            c.execute(create_sql(self.dead_table, DEAD_COLUMNS))
            self._check_columns(c, self.table, RESULT_COLUMNS)
            self._check_columns(c, self.dead_table, DEAD_COLUMNS)
            self._add_columns(c)
            index = quote(f"{self.table}_custom_id")
            c.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {quote(self.table)} (custom_id)")

    def _check_columns(
        self, conn: sqlite3.Connection, table: str, columns: tuple[tuple[str, str], ...]
    ) -> None:
        """Refuse a table of the same name that is not ours, before writing into it."""
        found = [row[1] for row in conn.execute(f"PRAGMA table_info({quote(table)})")]
        expected = [name for name, _ in columns]
        if found[: len(expected)] != expected:  # after them: columns of an output schema
            raise BatchrunError(
                f"{self._path}: table {table!r} exists with other columns ({', '.join(found)}); "
                "set output.table to a table batchrun may own"
            )

    def _add_columns(self, conn: sqlite3.Connection) -> None:
        """The table follows the output schema: a property (or included field) new since
        the table was made gets its column; a column whose property has gone is kept, with
        its values (rows written since hold NULL there), so nothing is lost."""
        found = {row[1].lower() for row in conn.execute(f"PRAGMA table_info({quote(self.table)})")}
        for column in self._extra:
            if column.name.lower() not in found:
                decl = f" {column.sql_type}" if column.sql_type else ""
                conn.execute(
                    f"ALTER TABLE {quote(self.table)} ADD COLUMN {quote(column.name)}{decl}"
                )

    def _row(self, record: ResultRecord, now: str) -> tuple[Any, ...]:
        extra = tuple(sql_value(c.value(record)) for c in self._extra)
        return result_row(record, now) + extra

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        """Make each record its key's row, in one transaction; drop those keys' dead letters."""
        now = rfc3339(self._clock())
        with self._transaction() as c:
            c.executemany(self._upsert_result, (self._row(r, now) for r in records))
            if c.execute(self._any_dead).fetchone()[0]:
                c.executemany(self._delete_dead, ((r.input_key,) for r in records))

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Make each letter its key's dead letter and delete the key's result row, in one
        transaction: an input has a result or a dead letter, never both."""
        now = rfc3339(self._clock())
        with self._transaction() as c:
            c.executemany(self._upsert_dead, (dead_row(d, now) for d in letters))
            c.executemany(self._delete_result, ((d.input_key,) for d in letters))

    def flush(self) -> None:
        """Nothing to do: every upsert commits (durably: synchronous = FULL)."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the sqlite sink is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
