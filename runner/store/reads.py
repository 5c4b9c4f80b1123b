"""Reads of a job's state for `export`, `status` and the cost report: all streamed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from runner.records import DeadLetter, RequestInfo, RequestState, ResultRecord
from runner.store.schema import PAGE


class Reads:
    """Mixed into `Store`: everything here only reads."""

    db: sqlite3.Connection

    def iter_results(self) -> Iterator[ResultRecord]:
        """Every input's current result, streamed in input-key order (for `export`)."""
        yield from self._iter_records("results", ResultRecord)

    def iter_dead(self) -> Iterator[DeadLetter]:
        """Every current dead letter, streamed in input-key order."""
        yield from self._iter_records("dead", DeadLetter)

    def _iter_records(self, table: str, kind: Any) -> Iterator[Any]:
        last = ""
        while True:
            rows = self.db.execute(
                f"SELECT input_key, record FROM {table} WHERE input_key > ? "
                "ORDER BY input_key LIMIT ?",
                (last, PAGE),
            ).fetchall()
            if not rows:
                return
            yield from (kind(**orjson.loads(r[1])) for r in rows)
            last = rows[-1][0]

    def usage_totals(self) -> dict[str, float]:
        """Tokens by category and dollars over every succeeded request ever collected."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cache_write_5m), 0), "
            "COALESCE(SUM(cache_write_1h), 0), COALESCE(SUM(cache_read), 0), "
            "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0), "
            "COALESCE(SUM(standard_cost_usd), 0), COUNT(*), COUNT(cost_usd) "
            "FROM requests WHERE input_tokens IS NOT NULL"
        ).fetchone()
        names = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output",
                 "cost_usd", "standard_cost_usd", "succeeded", "priced")  # fmt: skip
        return dict(zip(names, row, strict=True))

    def has_results(self) -> bool:
        """Whether any result or dead letter was ever collected."""
        # Two EXISTS, not one over a UNION: the UNION built every key before answering.
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM results) OR EXISTS (SELECT 1 FROM dead)"
        )
        return bool(row.fetchone()[0])

    def states(self, custom_ids: Sequence[str]) -> dict[str, RequestState]:
        marks = ",".join("?" * len(custom_ids))
        rows = self.db.execute(
            "SELECT custom_id, input_key, status, attempts FROM requests "
            f"WHERE custom_id IN ({marks})",
            tuple(custom_ids),
        )
        return {r[0]: RequestState(r[0], r[1], r[2], r[3]) for r in rows}

    def iter_states(self, current_only: bool = True) -> Iterator[RequestState]:
        """Every (current) request's state, streamed."""
        last = ""
        where = "current = 1 AND" if current_only else ""
        while True:
            rows = self.db.execute(
                "SELECT custom_id, input_key, status, attempts FROM requests "
                f"WHERE {where} custom_id > ? ORDER BY custom_id LIMIT ?",
                (last, PAGE),
            ).fetchall()
            if not rows:
                return
            yield from (RequestState(r[0], r[1], r[2], r[3]) for r in rows)
            last = rows[-1][0]

    def status_counts(self, current_only: bool = True) -> dict[str, int]:
        where = "WHERE current = 1" if current_only else ""
        rows = self.db.execute(f"SELECT status, COUNT(*) FROM requests {where} GROUP BY status")
        return {r[0]: r[1] for r in rows}

    def batch_requests(self, batch_id: str) -> dict[str, RequestInfo]:
        """custom_id -> the batch's requests: one query per collected batch instead of
        several per result line."""
        rows = self.db.execute(
            "SELECT custom_id, input_key, input_path, attempts, current FROM requests "
            "WHERE batch_id = ?",
            (batch_id,),
        )
        return {r[0]: RequestInfo(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows}

    def has_result(self, input_key: str) -> bool:
        row = self.db.execute("SELECT 1 FROM results WHERE input_key = ?", (input_key,))
        return row.fetchone() is not None
