"""Feeding the sink from state: pages of collected rows not yet confirmed written, and the
mark that confirms them. A crash between the two leaves rows to re-apply, never a gap.

Every result and dead letter row gets a `seq` when stored, from a counter that only grows
(schema 3), and `meta` keeps, per table, the `seq` up to which the sink holds every row
(`sink_fed_results`, `sink_fed_dead`). The sink is fed in `seq` order, so confirming a page
is one write of its last `seq`, whatever its size; a row replaced after being fed (a newer
result of its input) is stored under a new, higher `seq` and so is fed again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import orjson

from runner.records import DeadLetter, ResultRecord

# Rows per page fed to the sink. Each page ends with a sink fsync and a state commit, so a
# page of 1000 cost 200 fsyncs per 100k results; 5000 rows of ~2.5 KB stay ~12 MB.
FEED_PAGE = 5000

Table = Literal["results", "dead"]
Row = TypeVar("Row")


@dataclass(frozen=True)
class FeedPage(Generic[Row]):
    """Rows for the sink, and the mark that confirms them once the sink holds them."""

    rows: list[Row]
    through: int  # the last `seq` of the page: pass it to `mark_written`


class SinkFeed:
    """Mixed into `Store`."""

    db: sqlite3.Connection
    transaction: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]

    def unwritten_results(self) -> Iterator[FeedPage[tuple[str, ResultRecord]]]:
        """Pages of (custom_id, record) collected but not yet confirmed written to the sink."""
        for rows, through in self._pages("results"):
            yield FeedPage([(r[1], ResultRecord(**orjson.loads(r[2]))) for r in rows], through)

    def unwritten_result_lines(self) -> Iterator[FeedPage[tuple[str, str, bytes]]]:
        """Like `unwritten_results`, as (input_key, custom_id, the record's stored orjson
        bytes): for a sink that writes those bytes as they are (JsonlSink.upsert_lines)."""
        for rows, through in self._pages("results"):
            yield FeedPage([(r[0], r[1], bytes(r[2])) for r in rows], through)

    def unwritten_dead(self) -> Iterator[FeedPage[tuple[str, DeadLetter]]]:
        for rows, through in self._pages("dead"):
            yield FeedPage([(r[1], DeadLetter(**orjson.loads(r[2]))) for r in rows], through)

    def _pages(self, table: Table) -> Iterator[tuple[list[Any], int]]:
        """(rows of input_key, custom_id, record; the last seq) after the table's mark."""
        last = self._fed_through(table)
        while True:
            rows = self.db.execute(
                f"SELECT input_key, custom_id, record, seq FROM {table} "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, FEED_PAGE),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][3]
            yield rows, last

    def _fed_through(self, table: Table) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"sink_fed_{table}",))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def mark_written(self, table: Table, through: int) -> None:
        """The sink holds every row of `table` up to `seq` `through` (a page's `through`):
        do not feed them again. Rows stored since, replacements included, come later."""
        assert table in ("results", "dead")
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (f"sink_fed_{table}", str(through)),
            )

    def mark_all_unwritten(self) -> None:
        """The sink was lost or replaced: feed it everything again."""
        with self.transaction() as db:
            db.execute("DELETE FROM meta WHERE key IN ('sink_fed_results', 'sink_fed_dead')")
