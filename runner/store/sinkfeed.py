"""Feeding the sink from state: pages of collected rows not yet confirmed written, and the
marks that confirm them. A crash between the two leaves rows to re-apply, never a gap."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from runner.records import DeadLetter, ResultRecord

# Rows per page fed to the sink. Each page ends with a sink fsync and a state commit, so a
# page of 1000 cost 200 fsyncs per 100k results; 5000 rows of ~2.5 KB stay ~12 MB.
PAGE = 5000


class SinkFeed:
    """Mixed into `Store`."""

    db: sqlite3.Connection
    transaction: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]

    def unwritten_results(self) -> Iterator[list[tuple[str, ResultRecord]]]:
        """Pages of (custom_id, record) collected but not yet confirmed written to the sink."""
        for page in self._pages("results"):
            yield [(cid, ResultRecord(**orjson.loads(rec))) for cid, rec in page]

    def unwritten_result_lines(self) -> Iterator[list[tuple[str, str, bytes]]]:
        """Like `unwritten_results`, as (input_key, custom_id, the record's stored orjson
        bytes): for a sink that writes those bytes as they are (JsonlSink.upsert_lines)."""
        for page in self._pages("results", with_key=True):
            yield [(key, cid, bytes(rec)) for key, cid, rec in page]

    def unwritten_dead(self) -> Iterator[list[tuple[str, DeadLetter]]]:
        for page in self._pages("dead"):
            yield [(cid, DeadLetter(**orjson.loads(rec))) for cid, rec in page]

    def _pages(self, table: str, with_key: bool = False) -> Iterator[list[Any]]:
        last = ""
        while True:
            rows = self.db.execute(
                f"SELECT input_key, custom_id, record FROM {table} "
                "WHERE written = 0 AND input_key > ? ORDER BY input_key LIMIT ?",
                (last, PAGE),
            ).fetchall()
            if not rows:
                return
            yield [tuple(r) for r in rows] if with_key else [(r[1], r[2]) for r in rows]
            last = rows[-1][0]

    def mark_written(self, table: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Mark (input_key, custom_id) as in the sink, unless replaced meanwhile."""
        assert table in ("results", "dead")
        with self.transaction() as db:
            db.executemany(
                f"UPDATE {table} SET written = 1 WHERE input_key = ? AND custom_id = ?", pairs
            )

    def mark_all_unwritten(self) -> None:
        """The sink was lost or replaced: feed it everything again."""
        with self.transaction() as db:
            db.execute("UPDATE results SET written = 0")
            db.execute("UPDATE dead SET written = 0")
