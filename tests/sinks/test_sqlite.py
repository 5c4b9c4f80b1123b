"""runner.sinks.sqlite: one row per input key, one transaction per upsert, no churn."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, overload

import orjson
import pytest

from runner.errors import BatchrunError
from runner.records import DeadLetter, ResultRecord
from runner.sinks.sqlite import SqliteSink
from runner.spec.model import OutputSpec
from tests.conftest import REPO


def rec(key: str = "a", text: str = "hello", cid: str = "c1") -> ResultRecord:
    usage = {"input_tokens": 3, "output_tokens": 5, "cache_read_input_tokens": 7}
    return ResultRecord(
        input_key=key,
        input_path=f"data/{key}.txt",
        custom_id=cid,
        text=text,
        message={"role": "assistant", "content": [{"type": "text", "text": text}], "id": "m"},
        usage=usage,
        cost_usd=0.25,
        batch_id="msgbatch_1",
        model="claude-sonnet-4-6",
        spec_hash="h",
        attempts=1,
        collected_at="2026-11-24T06:00:00Z",
    )


def dead(key: str = "a", message: str = "bad") -> DeadLetter:
    return DeadLetter(
        key, None, "c0", "errored", "invalid_request_error", message, 2, "b", "h", "t"
    )


class Clock:
    """A clock that moves one second per reading, so any rewrite shows in updated_at."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def output(tmp_path: Path, table: str | None = None) -> OutputSpec:
    return OutputSpec(type="sqlite", path=tmp_path / "out/results.db", table=table)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SqliteSink]:
    s = SqliteSink(output(tmp_path), "survey-topics", clock=Clock())
    yield s
    s.close()


def rows(tmp_path: Path, table: str = "survey_topics") -> list[dict[str, Any]]:
    with closing(sqlite3.connect(tmp_path / "out/results.db")) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute(f'SELECT * FROM "{table}" ORDER BY input_key').fetchall()
        return [dict(r) for r in found]


def test_a_record_becomes_a_row_with_every_column(sink: SqliteSink, tmp_path: Path) -> None:
    sink.upsert([rec("k")])
    (row,) = rows(tmp_path)
    assert row == {
        "input_key": "k", "input_path": "data/k.txt", "custom_id": "c1", "outcome": "succeeded",
        "text": "hello", "model": "claude-sonnet-4-6", "input_tokens": 3, "output_tokens": 5,
        "cache_creation_input_tokens": None, "cache_read_input_tokens": 7, "cost_usd": 0.25,
        "batch_id": "msgbatch_1", "spec_hash": "h", "attempts": 1,
        "collected_at": "2026-11-24T06:00:00Z", "updated_at": "2026-11-24T06:00:01Z",
        "message_json": row["message_json"],
    }  # fmt: skip
    assert orjson.loads(row["message_json"]) == rec("k").message
    assert row["message_json"].startswith('{"content"')  # sorted keys: stable text


def test_default_table_is_the_job_name_with_underscores(sink: SqliteSink) -> None:
    assert (sink.table, sink.dead_table) == ("survey_topics", "survey_topics_dead_letters")


def test_a_table_name_that_is_an_sql_keyword_works(tmp_path: Path) -> None:
    s = SqliteSink(output(tmp_path, table="select"), "job")
    s.upsert([rec("k")])
    s.close()
    assert [r["input_key"] for r in rows(tmp_path, "select")] == ["k"]


def test_database_uses_wal_and_indexes_custom_id(sink: SqliteSink, tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "out/results.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = conn.execute("PRAGMA index_list('survey_topics')").fetchall()
        names = {i[1] for i in indexes}
    assert "survey_topics_custom_id" in names


# ---------------------------------------------------------------------------------------
# Exactly once


def test_reapplying_the_same_records_changes_nothing(sink: SqliteSink, tmp_path: Path) -> None:
    """updated_at does not move: a re-run is not a change."""
    sink.upsert([rec("a"), rec("b")])
    before = rows(tmp_path)
    sink.upsert([rec("a"), rec("b")])
    assert rows(tmp_path) == before and len(before) == 2


def test_crash_between_sink_write_and_state_commit(tmp_path: Path) -> None:
    """The executor re-applies what state had not marked written, plus newer results."""
    first = SqliteSink(output(tmp_path), "survey-topics", clock=Clock())
    first.upsert([rec("a"), rec("b")])
    first.close()  # the process dies before state records the batch as written
    before = rows(tmp_path)
    second = SqliteSink(output(tmp_path), "survey-topics", clock=Clock())
    second.upsert([rec("a"), rec("b"), rec("c")])
    second.close()
    after = rows(tmp_path)
    assert [r["input_key"] for r in after] == ["a", "b", "c"]
    assert after[:2] == before


KILLED_MID_UPSERT = """
import os, sys
from pathlib import Path
from runner.sinks.sqlite import SqliteSink
from runner.spec.model import OutputSpec
from tests.conftest import REPO
from tests.sinks.test_sqlite import rec

class Dying(list):
    def __iter__(self):
        yield rec("a")
        yield rec("b")
        os._exit(9)  # killed after two rows went into the open transaction

sink = SqliteSink(OutputSpec(type="sqlite", path=Path(sys.argv[1])), "survey-topics")
sink.upsert(Dying())
"""


def test_a_process_killed_mid_transaction_leaves_nothing(tmp_path: Path) -> None:
    """SQLite rolls back the torn transaction; the re-apply then writes each row once."""
    db = tmp_path / "out/results.db"
    done = subprocess.run([sys.executable, "-c", KILLED_MID_UPSERT, str(db)], cwd=REPO, check=False)
    assert done.returncode == 9
    assert rows(tmp_path) == []
    s = SqliteSink(output(tmp_path), "survey-topics")
    s.upsert([rec("a"), rec("b"), rec("c")])
    s.close()
    assert [r["input_key"] for r in rows(tmp_path)] == ["a", "b", "c"]


class Exploding(Sequence[ResultRecord]):
    """A batch whose third record cannot be read: the upsert fails half-way through."""

    def __init__(self, records: list[ResultRecord]) -> None:
        self.records = records

    @overload
    def __getitem__(self, i: int) -> ResultRecord: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[ResultRecord]: ...
    def __getitem__(self, i: int | slice) -> ResultRecord | Sequence[ResultRecord]:
        if isinstance(i, int) and i == 2:
            raise RuntimeError("crash")
        return self.records[i]

    def __len__(self) -> int:
        return len(self.records)


def test_a_failed_upsert_writes_none_of_its_batch(sink: SqliteSink, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="crash"):
        sink.upsert(Exploding([rec("a"), rec("b"), rec("c")]))
    assert rows(tmp_path) == []
    sink.upsert([rec("a")])  # and the connection is usable afterwards
    assert len(rows(tmp_path)) == 1


def test_a_changed_result_replaces_the_row(sink: SqliteSink, tmp_path: Path) -> None:
    sink.upsert([rec("a", "old", cid="c1")])
    (old,) = rows(tmp_path)
    sink.upsert([rec("a", "new", cid="c2")])
    (new,) = rows(tmp_path)
    assert (new["custom_id"], new["text"]) == ("c2", "new")
    assert new["updated_at"] > old["updated_at"]


def test_same_custom_id_with_other_content_still_updates(sink: SqliteSink, tmp_path: Path) -> None:
    """Re-attached results (recover) may differ only in provenance: the row follows."""
    sink.upsert([rec("a")])
    sink.upsert([ResultRecord(**{**rec("a").__dict__, "batch_id": "msgbatch_2"})])
    assert rows(tmp_path)[0]["batch_id"] == "msgbatch_2"


# ---------------------------------------------------------------------------------------
# Dead letters


def test_dead_letters_get_their_own_table(sink: SqliteSink, tmp_path: Path) -> None:
    sink.upsert_dead([dead("a")])
    sink.upsert_dead([dead("a")])
    (row,) = rows(tmp_path, "survey_topics_dead_letters")
    assert (row["input_key"], row["error_type"], row["attempts"]) == (
        "a",
        "invalid_request_error",
        2,
    )
    assert row["updated_at"] == "2026-11-24T06:00:01Z"  # the second put changed nothing
    sink.upsert_dead([dead("a", "worse")])
    (row,) = rows(tmp_path, "survey_topics_dead_letters")
    assert row["error_message"] == "worse"


def test_success_deletes_the_dead_letter(sink: SqliteSink, tmp_path: Path) -> None:
    sink.upsert_dead([dead("a"), dead("b")])
    sink.upsert([rec("a")])
    assert [r["input_key"] for r in rows(tmp_path, "survey_topics_dead_letters")] == ["b"]
    assert [r["input_key"] for r in rows(tmp_path)] == ["a"]


def test_a_dead_letter_deletes_the_result_row(sink: SqliteSink, tmp_path: Path) -> None:
    """An input has a result or a dead letter, never both (as in the JSONL sink)."""
    sink.upsert([rec("a"), rec("b")])
    sink.upsert_dead([dead("a")])
    assert [r["input_key"] for r in rows(tmp_path)] == ["b"]
    assert [r["input_key"] for r in rows(tmp_path, "survey_topics_dead_letters")] == ["a"]


def test_close_is_idempotent_and_later_writes_fail(tmp_path: Path) -> None:
    s = SqliteSink(output(tmp_path), "job")
    s.flush()
    s.close()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.upsert([rec()])


def test_a_foreign_table_of_the_same_name_is_refused(tmp_path: Path) -> None:
    """Never write into a user's own table: say so, and leave it alone."""
    (tmp_path / "out").mkdir()
    with closing(sqlite3.connect(tmp_path / "out/results.db")) as conn:
        conn.execute("CREATE TABLE job (id INTEGER PRIMARY KEY, note TEXT)")
        conn.commit()
    with pytest.raises(BatchrunError, match="table 'job' exists with other columns"):
        SqliteSink(output(tmp_path), "job")


def test_an_unopenable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out/results.db").mkdir(parents=True)
    with pytest.raises(BatchrunError, match="cannot open the sqlite output"):
        SqliteSink(output(tmp_path), "job")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/results.db").write_bytes(b"this is not sqlite, it is a text file" * 10)
    with pytest.raises(BatchrunError, match=r"cannot use the sqlite output .*not a database"):
        SqliteSink(output(tmp_path), "job")


# ---------------------------------------------------------------------------------------
# Columns of an output schema and of output.include (runner/sinks/columns.py)


def _typed_sink(tmp_path: Path, schema: dict[str, Any], include: Sequence[str] = ()) -> SqliteSink:
    from runner.sinks.columns import extra_columns

    output = OutputSpec("sqlite", tmp_path / "r.db", table="labels")
    return SqliteSink(output, "job", columns=extra_columns(include, schema))


def _props(**types: str) -> dict[str, Any]:
    return {"type": "object", "properties": {k: {"type": t} for k, t in types.items()}}


def test_each_property_is_a_typed_column(tmp_path: Path) -> None:
    sink = _typed_sink(
        tmp_path, _props(topic="string", n="integer", ok="boolean", kw="array"), ["region"]
    )
    data = {"topic": "billing", "n": 3, "ok": True, "kw": ["a", "b"]}
    sink.upsert([replace(rec(), data=data, include={"region": "north"})])
    sink.close()
    with closing(sqlite3.connect(tmp_path / "r.db")) as db:
        row = db.execute(
            "SELECT region, topic, n, ok, kw, typeof(n), typeof(ok) FROM labels"
        ).fetchone()
        types = {r[1]: r[2] for r in db.execute("PRAGMA table_info(labels)")}
    assert row == ("north", "billing", 3, 1, '["a","b"]', "integer", "integer")
    assert (types["topic"], types["n"], types["ok"], types["kw"], types["region"]) == (
        "TEXT", "INTEGER", "INTEGER", "TEXT", "",
    )  # fmt: skip


def test_the_table_follows_a_changed_schema_and_loses_nothing(tmp_path: Path) -> None:
    """A new property adds its column; a dropped one keeps its column and its values."""
    first = _typed_sink(tmp_path, _props(topic="string", mood="string"))
    first.upsert([replace(rec("a"), data={"topic": "x", "mood": "sad"})])
    first.upsert([replace(rec("b"), data={"topic": "y", "mood": "glad"})])
    first.close()
    second = _typed_sink(tmp_path, _props(topic="string", score="integer"))
    second.upsert([replace(rec("a", cid="c2"), data={"topic": "z", "score": 5})])
    second.close()
    with closing(sqlite3.connect(tmp_path / "r.db")) as db:
        names = [r[1] for r in db.execute("PRAGMA table_info(labels)")]
        rows = db.execute("SELECT input_key, topic, mood, score FROM labels ORDER BY 1").fetchall()
    assert names[-3:] == ["topic", "mood", "score"]
    assert rows == [("a", "z", "sad", 5), ("b", "y", "glad", None)]
