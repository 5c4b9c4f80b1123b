"""`batchrun verify`: each sink type's checker, and `check` / `repair` for a job's sink
(what drifts are and the JSONL checker: sinks/drift.py)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from runner.errors import BatchrunError
from runner.records import ResultRecord
from runner.sinks import SinkRecordError, SinkRecordErrors, atomic, columns, files, sqlite
from runner.sinks.deadfile import letter_to_dict, sidecar_path
from runner.sinks.drift import (
    Drift,
    JsonlCheck,
    StateView,
    compare_dead,
    digest,
    label,
    replace_lines,
    shown,
)
from runner.spec import JobSpec

PAGE = 1000  # records per upsert when repairing


class Checker(Protocol):
    def check(self, state: StateView) -> list[Drift]: ...
    def repair(self, state: StateView) -> None: ...


def check(job: JobSpec, state: StateView) -> list[Drift]:
    """Every drift of the job's sink from `state`, in the sink's order."""
    return checker(job).check(state)


def repair(job: JobSpec, state: StateView) -> None:
    """Make the job's sink hold exactly what `state` holds."""
    checker(job).repair(state)


def checker(job: JobSpec) -> Checker:
    if job.output.path is None:  # object storage or PostgreSQL
        raise BatchrunError(
            f"{job.path}: verify cannot check an output at {job.output.where} yet: only "
            "local jsonl, files and sqlite outputs"
        )
    if job.output.type == "jsonl":
        return JsonlCheck(job.output.local)
    if job.output.type == "files":
        return FilesCheck(job)
    if job.output.type == "sqlite":
        return SqliteCheck(job)
    raise BatchrunError(
        f"{job.path}: verify cannot check an output of type {job.output.type!r} yet"
    )


# ---------------------------------------------------------------------------------------
# Files: one file per input below output.path, dead letters in `<path>.dead.jsonl`


class FilesCheck:
    def __init__(self, job: JobSpec) -> None:
        self.output = job.output
        self.root = job.output.local
        self.suffix = job.output.suffix or files.DEFAULT_SUFFIX[job.output.content]
        self.dead_path = sidecar_path(self.root)

    def _expected(self, state: StateView) -> Iterator[tuple[ResultRecord, str, bytes]]:
        """(record, its file below output.path, the bytes the sink writes for it)."""
        for record in state.results():
            try:
                parts = files.target_parts(
                    record.input_key,
                    record.input_path,
                    self.suffix,
                    self.output.input_base,  # named as the sink names them
                    self.output.keep_extension,
                )
                data = files.render(record, self.output.content)
            except SinkRecordError:
                continue  # the sink refuses it: state holds a dead letter for it instead
            yield record, "/".join(parts), data

    def check(self, state: StateView) -> list[Drift]:
        drifts: list[Drift] = []
        if not self.root.is_dir():
            count = sum(1 for _ in self._expected(state))
            if count:
                detail = f"the folder does not exist; state holds {count} results"
                drifts.append(Drift("missing", shown(self.root), detail))
            return drifts + compare_dead(self.dead_path, state)
        present = set(_entries_below(self.root))
        for record, rel, data in self._expected(state):
            place = f"{shown(self.root)}/{rel}"
            if rel not in present:
                drifts.append(Drift("missing", place, f"{label(record.input_key)}: no file"))
                continue
            present.discard(rel)
            if not _holds(self.root / rel, data):
                detail = f"{label(record.input_key)}: the file differs from state"
                drifts.append(Drift("altered", place, detail))
        for rel in sorted(present):
            detail = "no input of the job writes this entry"
            drifts.append(Drift("foreign", f"{shown(self.root)}/{rel}", detail))
        return drifts + compare_dead(self.dead_path, state)

    def repair(self, state: StateView) -> None:
        """Rewrite each missing or altered file (each atomically), remove entries state
        does not hold (never following a symlink), rewrite the dead letter file."""
        expected: set[str] = set()
        sink = files.FilesSink(self.output)
        try:
            page: list[ResultRecord] = []
            for record, rel, _data in self._expected(state):
                expected.add(rel)
                page.append(record)
                if len(page) >= PAGE:
                    _upsert(sink, page)
                    page = []
            _upsert(sink, page)
        finally:
            sink.close()
        for rel in set(_entries_below(self.root)) - expected:
            (self.root / rel).unlink()
        letters = sorted((letter_to_dict(d) for d in state.dead()), key=lambda d: d["input_key"])
        replace_lines(self.dead_path, (orjson.dumps(d) for d in letters))


def _upsert(sink: files.FilesSink, page: list[ResultRecord]) -> None:
    # Not expected: `_expected` already left out what the sink refuses.
    with contextlib.suppress(SinkRecordErrors):
        sink.upsert(page)


def _holds(path: Path, data: bytes) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    return path.stat().st_size == len(data) and path.read_bytes() == data


def _entries_below(root: Path) -> Iterator[str]:
    """Every entry below `root` that is not a real folder (files, and symlinks, never
    followed), as a relative POSIX path; a crashed writer's temp files are not entries."""
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root)
        links = [d for d in dirs if Path(folder, d).is_symlink()]
        for name in [*names, *links]:
            if not atomic.TEMP_NAME.match(name):
                yield (rel / name).as_posix()


# ---------------------------------------------------------------------------------------
# SQLite: a row per input in output.table, dead letters in `<table>_dead_letters`


class SqliteCheck:
    def __init__(self, job: JobSpec) -> None:
        self.path = job.output.local
        self.table = job.output.table or sqlite.default_table(job.name)
        self.dead_table = f"{self.table}_dead_letters"
        # Included fields and schema properties (sinks/columns.py), after batchrun's own.
        self.extra = columns.job_columns(job)
        self.columns = sqlite.RESULT_COLUMNS + tuple((c.name, c.sql_type) for c in self.extra)

    def _row(self, record: ResultRecord, now: str) -> tuple[Any, ...]:
        """The row the sink writes (SqliteSink._row)."""
        extra = tuple(columns.sql_value(c.value(record)) for c in self.extra)
        return sqlite.result_row(record, now) + extra

    def _tables(self, state: StateView, now: str) -> Iterator[tuple[str, Any, Iterable[Any]]]:
        """(table, its columns, state's rows for it)."""
        yield self.table, self.columns, (self._row(r, now) for r in state.results())
        yield self.dead_table, sqlite.DEAD_COLUMNS, (sqlite.dead_row(d, now) for d in state.dead())

    def check(self, state: StateView) -> list[Drift]:
        if not self.path.is_file():
            count = sum(1 for _ in state.results())
            detail = f"the database does not exist; state holds {count} results"
            return [Drift("missing", shown(self.path), detail)] if count else []
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return [
                drift
                for table, columns, rows in self._tables(state, "")
                for drift in self._compare(conn, table, columns, rows)
            ]
        finally:
            conn.close()

    def _compare(
        self, conn: sqlite3.Connection, table: str, columns: Any, rows: Iterable[Any]
    ) -> list[Drift]:
        """Rows compared on every column but `updated_at` (when the sink last wrote it)."""
        names = [name for name, _ in columns]
        kept = [i for i, name in enumerate(names) if name != "updated_at"]
        place = f"{shown(self.path)} table {table}"
        listed = ", ".join(sqlite.quote(names[i]) for i in kept)
        try:
            cursor = conn.execute(f"SELECT {listed} FROM {sqlite.quote(table)}")
        except sqlite3.OperationalError:
            count = sum(1 for _ in rows)
            detail = f"the table does not exist (or lacks columns); state holds {count} rows"
            return [Drift("missing", place, detail)] if count else []
        found = {str(row[0]): digest(_plain(row)) for row in cursor}
        drifts: list[Drift] = []
        for row in rows:
            key = str(row[0])
            got = found.pop(key, None)
            if got is None:
                drifts.append(Drift("missing", place, f"{label(key)}: no row"))
            elif got != digest(_plain(row[i] for i in kept)):
                drifts.append(Drift("altered", place, f"{label(key)}: the row differs from state"))
        for key in sorted(found):
            drifts.append(Drift("foreign", place, f"{label(key)}: a row state does not hold"))
        return drifts

    def repair(self, state: StateView) -> None:
        """One transaction: every row of state upserted (a row changes only if it differs),
        every other row deleted."""
        now = sqlite.rfc3339(sqlite.utc_now())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table, columns, rows in self._tables(state, now):
                    _rewrite_table(conn, table, columns, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()


def _plain(values: Iterable[Any]) -> list[Any]:
    """Values as compared: numbers as floats, since a column's affinity may store the 3 a
    schema's `number` gave as 3.0 (and orjson writes the two differently)."""
    return [float(v) if isinstance(v, int | float) else v for v in values]


def _rewrite_table(conn: sqlite3.Connection, table: str, columns: Any, rows: Iterable[Any]) -> None:
    conn.execute(sqlite.create_sql(table, columns))
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS batchrun_keep (input_key TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM batchrun_keep")
    upsert = sqlite.upsert_sql(table, columns)
    for row in rows:
        conn.execute(upsert, row)
        conn.execute("INSERT INTO batchrun_keep VALUES (?) ON CONFLICT DO NOTHING", (row[0],))
    conn.execute(
        f"DELETE FROM {sqlite.quote(table)} WHERE input_key NOT IN "
        "(SELECT input_key FROM batchrun_keep)"
    )
