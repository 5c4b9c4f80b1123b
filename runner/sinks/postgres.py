"""The PostgreSQL sink: one row per input key in `output.table` of the database whose DSN
is in the environment variable `output.dsn_env` (so no secret is in the job file).

The SQLite sink's contract and columns (docs/sinks.md): an upsert keyed by input key, one
transaction per `upsert()` call (the executor calls it once per collected page), so a crash
leaves a page's rows all written or none (PostgreSQL rolls back the transaction of a
connection that dropped), and re-applying it changes nothing: a row is updated, and its
`updated_at` moves, only when another column differs. Dead letters live in
`<table>_dead_letters`; a result deletes its key's dead letter, and a dead letter its key's
result, in the same transaction. The columns are the SQLite sink's, typed for PostgreSQL:
INTEGER as BIGINT, REAL as DOUBLE PRECISION, the `*_at` times as TIMESTAMPTZ and the
`*_json` columns as JSONB; then, as there, one per included field and output-schema
property (sinks/columns.py), added to the table when they appear.

The DSN never reaches a log or a message: it and its password are masked from the moment
they are read, errors quote psycopg's text (host, port and user, never the password) masked
again, and a DSN that does not parse is reported without quoting it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from runner import log
from runner.errors import BatchrunError
from runner.records import DeadLetter, ResultRecord
from runner.sinks.columns import Column, sql_value
from runner.sinks.sqlite import (
    DEAD_COLUMNS,
    RESULT_COLUMNS,
    Clock,
    dead_row,
    quote,
    result_row,
    rfc3339,
    utc_now,
)
from runner.spec.model import OutputSpec

Columns = tuple[tuple[str, str], ...]

_TYPES = {"TEXT": "TEXT", "INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}
# A stalled network fails the run within this many seconds instead of hanging it.
_CONNECT_TIMEOUT_S = 15


def pg_columns(columns: Columns) -> Columns:
    """The SQLite sink's column declarations as PostgreSQL ones (see the module docstring)."""
    return tuple((name, _pg_declaration(name, decl)) for name, decl in columns)


def _pg_declaration(name: str, decl: str) -> str:
    affinity, _, constraints = decl.partition(" ")
    if name.endswith("_json"):
        kind = "JSONB"
    elif name == "at" or name.endswith("_at"):
        kind = "TIMESTAMPTZ"
    else:
        kind = _TYPES.get(affinity, "TEXT")
    return f"{kind} {constraints}".strip()


def create_sql(table: str, columns: Columns) -> str:
    body = ", ".join(f"{quote(name)} {decl}" for name, decl in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})"


def upsert_sql(table: str, columns: Columns) -> str:
    """INSERT, or UPDATE a key's row only when a column other than `updated_at` differs."""
    names = [name for name, _ in columns]
    content = [n for n in names if n not in ("input_key", "updated_at")]
    sets = ", ".join(f"{quote(n)} = EXCLUDED.{quote(n)}" for n in names[1:])
    differs = " OR ".join(
        f"{quote(table)}.{quote(n)} IS DISTINCT FROM EXCLUDED.{quote(n)}" for n in content
    )
    return (
        f"INSERT INTO {quote(table)} ({', '.join(map(quote, names))}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) "
        f"ON CONFLICT (input_key) DO UPDATE SET {sets} WHERE {differs}"
    )


def read_dsn(output: OutputSpec, job_file: object) -> str:
    """The DSN from `output.dsn_env`, masked in every log line from now on."""
    env = output.dsn_env or ""
    dsn = os.environ.get(env, "").strip()
    if not dsn:
        raise BatchrunError(
            f"{job_file}: output.dsn_env: the environment variable {env} is not set: put the "
            "results database's DSN in it (postgresql://user:password@host:5432/db)"
        )
    log.add_secret(dsn)
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        raise BatchrunError(
            f"{job_file}: output.dsn_env: the DSN in {env} cannot be parsed (not quoted here: "
            "it may hold a password); write it as postgresql://user:password@host:5432/db"
        ) from None
    log.add_secret(str(password) if password else None)
    return dsn


def connect(dsn: str, where: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode: transactions are explicit, one per upsert call."""
    try:
        return psycopg.connect(
            dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S, application_name="batchrun"
        )
    except psycopg.Error as e:
        raise BatchrunError(f"cannot connect to {where}: {_message(e)}") from None


def _message(error: psycopg.Error) -> str:
    return log.mask(str(error).strip().replace("\n", " ")) or type(error).__name__


class PostgresSink:
    """`output.type: postgres`. Safe to open on tables another run left in any state."""

    def __init__(
        self,
        output: OutputSpec,
        job_file: object,
        *,
        clock: Clock = utc_now,
        columns: Sequence[Column] = (),
    ) -> None:
        self.table = _table(output)
        self._extra = tuple(columns)
        self._columns = pg_columns(RESULT_COLUMNS) + tuple(
            (c.name, _extra_type(c)) for c in self._extra
        )
        self.dead_table = f"{self.table}_dead_letters"
        self._where = output.where
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = connect(
            read_dsn(output, job_file), self._where
        )
        try:
            self._setup()
        except BaseException:
            self.close()  # no connection left open behind a refused table
            raise
        self._upsert_result = upsert_sql(self.table, self._columns)
        self._upsert_dead = upsert_sql(self.dead_table, DEAD_COLUMNS)
        self._delete_result = f"DELETE FROM {quote(self.table)} WHERE input_key = ANY(%s)"
        self._delete_dead = f"DELETE FROM {quote(self.dead_table)} WHERE input_key = ANY(%s)"

    def _setup(self) -> None:
        with self._transaction() as cur:
            cur.execute(create_sql(self.table, self._columns))
            cur.execute(create_sql(self.dead_table, pg_columns(DEAD_COLUMNS)))
            self._check_columns(cur, self.table, RESULT_COLUMNS)
            self._check_columns(cur, self.dead_table, DEAD_COLUMNS)
            for name, decl in self._columns[len(RESULT_COLUMNS) :]:  # new schema properties
                cur.execute(
                    f"ALTER TABLE {quote(self.table)} ADD COLUMN IF NOT EXISTS {quote(name)} {decl}"
                )
            index = quote(f"{self.table}_custom_id")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {quote(self.table)} (custom_id)")

    def _check_columns(self, cur: psycopg.Cursor[Any], table: str, columns: Columns) -> None:
        """Refuse a table of the same name that is not ours, before writing into it."""
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        found = [row[0] for row in cur.fetchall()]
        expected = [name for name, _ in columns]
        if found[: len(expected)] != expected:  # after them: included fields, schema properties
            raise BatchrunError(
                f"{self._where}: table {table!r} exists with other columns "
                f"({', '.join(found)}); set output.table to a table batchrun may own"
            )

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        """Make each record its key's row, in one transaction; drop those keys' dead letters."""
        now = rfc3339(self._clock())
        with self._transaction() as cur:
            cur.executemany(self._upsert_result, [self._row(r, now) for r in records])
            cur.execute(self._delete_dead, ([r.input_key for r in records],))

    def _row(self, record: ResultRecord, now: str) -> tuple[Any, ...]:
        return result_row(record, now) + tuple(_extra_value(c, record) for c in self._extra)

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Make each letter its key's dead letter and delete the key's result row, in one
        transaction: an input has a result or a dead letter, never both."""
        now = rfc3339(self._clock())
        with self._transaction() as cur:
            cur.executemany(self._upsert_dead, [dead_row(d, now) for d in letters])
            cur.execute(self._delete_result, ([d.input_key for d in letters],))

    def flush(self) -> None:
        """Nothing to do: every upsert commits."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        if self._conn is None:
            raise ValueError("the postgres sink is closed")
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                yield cur
        except psycopg.Error as e:
            raise BatchrunError(f"{self._where}: {_message(e)}") from None


def _extra_type(column: Column) -> str:
    """An extra column's PostgreSQL type; one of several kinds (no SQLite type) is TEXT."""
    return _TYPES.get(column.sql_type, "TEXT")


def _extra_value(column: Column, record: ResultRecord) -> Any:
    """The SQLite sink's value, as JSON text where the column is TEXT and it is not a string
    (PostgreSQL, unlike SQLite, keeps one type per column)."""
    value = sql_value(column.value(record))
    if _extra_type(column) == "TEXT" and value is not None and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return value


def _table(output: OutputSpec) -> str:
    if output.table is None:
        raise ValueError("a postgres output always has a table: spec.load sets the default")
    return output.table


def holds_results(output: OutputSpec, job_file: object) -> bool:
    """Whether the output's tables exist with any row in them (result or dead letter)."""
    table = _table(output)
    with connect(read_dsn(output, job_file), output.where) as conn:
        for name in (table, f"{table}_dead_letters"):
            if conn.execute("SELECT to_regclass(%s)", (quote(name),)).fetchone() == (None,):
                continue
            row = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(name)})").fetchone()
            if row is not None and row[0]:
                return True
    return False
