"""Feeding the sink from state: pages of collected rows not yet confirmed written, and the
marks that confirm them. A crash between the two leaves rows to re-apply, never a gap."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence

import orjson

from runner.records import DeadLetter, ResultRecord

PAGE = 1000  # rows per page


class SinkFeed:
    """Mixed into `Store`."""

    db: sqlite3.Connection
    transaction: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]

    def unwritten_results(self) -> Iterator[list[tuple[str, ResultRecord]]]:
        """Pages of (custom_id, record) collected but not yet confirmed written to the sink."""
        for page in self._pages("results"):
            yield [(cid, ResultRecord(**orjson.loads(rec))) for cid, rec in page]

    def unwritten_dead(self) -> Iterator[list[tuple[str, DeadLetter]]]:
        for page in self._pages("dead"):
            yield [(cid, DeadLetter(**orjson.loads(rec))) for cid, rec in page]

    def _pages(self, table: str) -> Iterator[list[tuple[str, bytes]]]:
        last = ""
        while True:
            rows = self.db.execute(
                f"SELECT input_key, custom_id, record FROM {table} "
                "WHERE written = 0 AND input_key > ? ORDER BY input_key LIMIT ?",
                (last, PAGE),
            ).fetchall()
            if not rows:
                return
            yield [(r[1], r[2]) for r in rows]
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
