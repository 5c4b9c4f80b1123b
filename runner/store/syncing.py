"""What the sync pass needs of state beyond recording requests: the requests waiting to be
submitted with their inputs, and superseding the requests of inputs that changed or went."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence

from runner.records import SUBMITTABLE


class Syncing:
    """Mixed into `Store`. Portable SQL (SQLite and PostgreSQL)."""

    db: sqlite3.Connection
    transaction: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]

    def waiting_requests(self) -> list[tuple[str, str, str | None]]:
        """(custom_id, input_key, input_path) of the current requests waiting for a
        submission (pending, retry, canceled)."""
        marks = ",".join("?" * len(SUBMITTABLE))
        rows = self.db.execute(
            "SELECT custom_id, input_key, input_path FROM requests "
            f"WHERE current = 1 AND status IN ({marks}) ORDER BY custom_id",
            SUBMITTABLE,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def current_keys(self) -> set[str]:
        """The input keys of the current requests (one per input)."""
        return {r[0] for r in self.db.execute("SELECT input_key FROM requests WHERE current = 1")}

    def supersede(self, custom_ids: Sequence[str]) -> None:
        """These requests are no longer their inputs' current ones (the input changed or was
        removed); what they collected stays in state until a new result replaces it."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE requests SET current = 0 WHERE custom_id = ?", [(c,) for c in custom_ids]
            )
