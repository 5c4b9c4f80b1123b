"""The job state: schema versions, the lock, intents, outcomes and streamed reads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runner.records import DeadLetter, ResultRecord
from runner.store import MIGRATIONS, SCHEMA_VERSION, LockHeld, Outcome, Store, default_state_dir
from tests.conftest import REPO


def result(key: str, cid: str) -> ResultRecord:
    return ResultRecord(key, None, cid, "t", {}, {}, None, "b1", "m", "s", 1, "now")


def test_new_state_is_at_the_current_schema_version(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    assert store.created
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = Store.open(tmp_path / "s")
    assert not again.created
    again.close()
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A state written by a newer batchrun is not silently misread."""
    (tmp_path / "s").mkdir()
    db = sqlite3.connect(tmp_path / "s" / "state.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store.open(tmp_path / "s")


def test_default_state_dir_is_beside_the_job(tmp_path: Path) -> None:
    assert (
        default_state_dir(tmp_path / "jobs" / "x.yaml", "x")
        == tmp_path / "jobs" / ".batchrun" / "x"
    )


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    """The lock belongs to a live process: SIGKILL releases it."""
    code = (
        "import sys, time; from pathlib import Path; from runner.store import Store\n"
        "s = Store.open(Path(sys.argv[1])); s.lock(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "s")],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    store = Store.open(tmp_path / "s")
    with pytest.raises(LockHeld):
        store.lock()
    proc.kill()
    proc.wait()
    proc.stdout.close()
    store.lock()
    store.close()


def test_intent_then_attach_or_abandon(tmp_path: Path) -> None:
    """An intent moves requests in flight; abandoning it undoes the attempt."""
    store = Store.open(tmp_path / "s")
    store.sync_requests([("c1", "k1", None), ("c2", "k2", None)])
    intent = store.add_intent("sha", ["b"], ["c1", "c2"], 10, 1.0, None)
    assert store.status_counts() == {"in_flight": 2}
    assert store.open_intents()[0].request_count == 2
    store.abandon_intent(intent)
    assert store.status_counts() == {"pending": 2} and store.open_intents() == []
    intent = store.add_intent("sha", ["b"], ["c1", "c2"], 10, 2.0, "x")
    store.attach_batch(intent, "b1", "2026-01-01T00:00:00Z", "in_progress")
    assert store.open_intents() == [] and store.request_info("c1") == ("k1", None, 1, "b1")
    assert [b.id for b in store.batches(uncollected_only=True)] == ["b1"]


def test_outcomes_and_streamed_reads(tmp_path: Path) -> None:
    """Results and dead letters are keyed by input; reads stream them in key order."""
    store = Store.open(tmp_path / "s")
    store.sync_requests([(f"c{i}", f"k{i:04d}", None) for i in range(2500)])
    intent = store.add_intent("sha", [], [f"c{i}" for i in range(2500)], 1, 1.0, None)
    store.attach_batch(intent, "b1", "t", "in_progress")
    letter = DeadLetter("k0000", None, "c0", "errored", "x", "m", 1, "b1", "s", "t")
    with store.transaction():
        store.record_outcomes("b1", [Outcome("c0", "dead", dead=letter)])
        store.record_outcomes(
            "b1",
            [
                Outcome(f"c{i}", "succeeded", result=result(f"k{i:04d}", f"c{i}"))
                for i in range(1, 2500)
            ],
        )
        store.finish_batch("b1")
    keys = [r.input_key for r in store.iter_results()]
    assert len(keys) == 2499 and keys == sorted(keys)
    assert [d.custom_id for d in store.iter_dead()] == ["c0"]
    pages = list(store.unwritten_results())
    assert sum(len(p) for p in pages) == 2499
    store.mark_written("results", [(r.input_key, c) for p in pages for c, r in p])
    assert list(store.unwritten_results()) == []
    assert store.status_counts() == {"succeeded": 2499, "dead": 1}


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with pytest.raises(ValueError), store.transaction():
        store.db.execute("INSERT INTO meta VALUES ('a', 'b')")
        raise ValueError
    assert store.get_meta("a") is None


def test_unwritten_rows_are_found_through_an_index(tmp_path: Path) -> None:
    """Feeding the sink must not scan every stored record (a no-op re-run at 100k did)."""
    store = Store.open(tmp_path)
    for table in ("results", "dead"):
        plan = store.db.execute(
            f"EXPLAIN QUERY PLAN SELECT input_key, custom_id, record FROM {table} "
            "WHERE written = 0 AND input_key > ? ORDER BY input_key LIMIT ?",
            ("", 10),
        ).fetchall()
        assert f"USING INDEX {table}_unwritten" in str(plan)
    store.close()
