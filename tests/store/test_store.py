"""The job state: schema versions, the lock, intents, outcomes and streamed reads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from runner.executor import loop as executor
from runner.records import DeadLetter, ResultRecord
from runner.store import MIGRATIONS, SCHEMA_VERSION, LockHeld, Outcome, Store, default_state_dir
from tests.conftest import REPO
from tests.fakes import Harness


def result(key: str, cid: str) -> ResultRecord:
    return ResultRecord(key, None, cid, "t", {}, {}, None, "b1", "m", "s", 1, "now")


def test_new_state_is_at_the_current_schema_version(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    assert store.created
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA page_size").fetchone()[0] == 16384
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
    assert sum(len(p.rows) for p in pages) == 2499
    store.mark_written("results", pages[-1].through)
    assert list(store.unwritten_results()) == []
    assert store.status_counts() == {"succeeded": 2499, "dead": 1}


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with pytest.raises(ValueError), store.transaction():
        store.db.execute("INSERT INTO meta VALUES ('a', 'b')")
        raise ValueError
    assert store.get_meta("a") is None


def test_unwritten_rows_are_read_as_a_range_of_the_table(tmp_path: Path) -> None:
    """Feeding the sink must not scan every stored record (a no-op re-run at 100k did)."""
    store = Store.open(tmp_path)
    for table in ("results", "dead"):
        plan = store.db.execute(
            f"EXPLAIN QUERY PLAN SELECT input_key, custom_id, record, seq FROM {table} "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (0, 10),
        ).fetchall()
        assert "USING INTEGER PRIMARY KEY (rowid>?)" in str(plan)
    store.close()


def v2_state(folder: Path) -> sqlite3.Connection:
    """A state as batchrun with schema 2 left it: its released migrations, nothing newer."""
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "state.db", isolation_level=None)
    for script in MIGRATIONS[:2]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 2")
    return db


def dead_letter(key: str, cid: str) -> DeadLetter:
    return DeadLetter(key, None, cid, "errored", "invalid_request_error", "m", 1, "b1", "s", "t")


def test_migration_from_v2_feeds_only_what_was_not_written(tmp_path: Path) -> None:
    """Schema 3 keeps every stored row, and the sink gets exactly the rows schema 2 had
    not marked written; a later replacement and a lost sink are fed as before."""
    db = v2_state(tmp_path / "s")
    stored = {key: orjson.dumps(result(key, f"c{key}")) for key in ("k1", "k2", "k3")}
    for key, written in (("k1", 1), ("k2", 0), ("k3", 1)):
        db.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?)", (key, f"c{key}", stored[key], written)
        )
    for key, written in (("k4", 0), ("k5", 1)):
        letter = orjson.dumps(dead_letter(key, f"c{key}"))
        db.execute("INSERT INTO dead VALUES (?, ?, ?, ?)", (key, f"c{key}", letter, written))
    db.close()
    store = Store.open(tmp_path / "s")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r.input_key for r in store.iter_results()] == ["k1", "k2", "k3"]
    assert [d.input_key for d in store.iter_dead()] == ["k4", "k5"]
    pages = list(store.unwritten_result_lines())
    assert [row for p in pages for row in p.rows] == [("k2", "ck2", stored["k2"])]
    assert [cid for p in store.unwritten_dead() for cid, _ in p.rows] == ["ck4"]
    store.mark_written("results", pages[-1].through)
    assert list(store.unwritten_result_lines()) == []
    with store.transaction():
        store.record_outcomes("b1", [Outcome("new1", "succeeded", result=result("k1", "new1"))])
    assert [cid for p in store.unwritten_results() for cid, _ in p.rows] == ["new1"]
    store.mark_all_unwritten()
    assert sorted(k for p in store.unwritten_result_lines() for k, _, _ in p.rows) == [
        "k1", "k2", "k3"
    ]  # fmt: skip
    assert len([d for p in store.unwritten_dead() for d in p.rows]) == 2
    store.close()


def test_a_row_stored_after_the_newest_was_deleted_is_still_fed(tmp_path: Path) -> None:
    """Deleting the newest row must not hand its number to the next one: that row would
    sit under the sink's mark and never reach the sink."""
    store = Store.open(tmp_path / "s")
    with store.transaction():
        store.record_outcomes("b", [Outcome(c, "succeeded", result=result(k, c))
                                    for k, c in (("k1", "c1"), ("k2", "c2"))])  # fmt: skip
    store.mark_written("results", next(store.unwritten_results()).through)
    store.refuse_results([dead_letter("k2", "c2")])  # deletes the newest result row
    with store.transaction():
        store.record_outcomes("b", [Outcome("c3", "succeeded", result=result("k3", "c3"))])
    assert [cid for p in store.unwritten_results() for cid, _ in p.rows] == ["c3"]
    assert [cid for p in store.unwritten_dead() for cid, _ in p.rows] == ["c2"]
    store.close()


def test_a_run_on_a_v2_state_writes_what_it_had_not_written(tmp_path: Path) -> None:
    """A finished job left by schema 2 with one result not yet in its sink: the next run
    appends that one line, keeps the others as they were, and submits nothing."""
    h = Harness(tmp_path, {f"k{i}": f"text {i}" for i in range(3)})
    requests = list(h.compiler.iter_requests(h.job))
    db = v2_state(h.state)
    lines = [orjson.dumps(result(r.input_key, r.custom_id)) for r in requests]
    for r, line, written in zip(requests, lines, (1, 0, 1), strict=True):
        db.execute(
            "INSERT INTO requests (custom_id, input_key, input_path, status, attempts, "
            "batch_id) VALUES (?, ?, ?, 'succeeded', 1, 'b1')",
            (r.custom_id, r.input_key, r.input_path),
        )
        db.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?)", (r.input_key, r.custom_id, line, written)
        )
    db.close()
    out = h.job.output.local
    out.parent.mkdir(parents=True)
    out.write_bytes(lines[0] + b"\n" + lines[2] + b"\n")
    ctx = h.context()
    ctx.store.lock()
    assert executor.run(ctx, no_wait=True).finished
    ctx.store.close()
    assert out.read_bytes() == lines[0] + b"\n" + lines[2] + b"\n" + lines[1] + b"\n"
    assert h.api.batches == {}
