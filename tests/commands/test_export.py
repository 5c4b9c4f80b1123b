"""runner.export: current results as JSONL or CSV, streamed, round-trippable."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.commands.export import (
    CSV_COLUMNS,
    csv_row,
    export,
    export_file,
    neutralise,
    record_from_json,
    record_to_json,
)
from runner.records import ResultRecord

TRICKY = [
    "plain",
    "comma, inside",
    'a "quoted" word',
    "two\nlines",
    "windows\r\nline",
    "lone\rcarriage",
    "=SUM(A1:A2)",
    "ünïcødé ✓ 日本",
    "",
    " leading and trailing ",
]


def rec(key: str = "a", text: str = "hello", **overrides: Any) -> ResultRecord:
    fields: dict[str, Any] = {
        "input_key": key,
        "input_path": f"data/{key}.txt",
        "custom_id": f"cid-{key}",
        "text": text,
        "message": {
            "id": "m",
            "stop_reason": "end_turn",
            "content": [{"type": "text", "text": text}],
        },
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 30},
            "service_tier": "batch",
        },
        "cost_usd": 0.1 + 0.2,  # not exactly representable: must still read back equal
        "batch_id": "msgbatch_1",
        "model": "claude-sonnet-4-6",
        "spec_hash": "h",
        "attempts": 2,
        "collected_at": "2026-11-24T06:00:00Z",
    }
    fields.update(overrides)
    return ResultRecord(**fields)


def records() -> list[ResultRecord]:
    return [rec(f"k{i}", text) for i, text in enumerate(TRICKY)]


def test_jsonl_round_trips_to_equal_records() -> None:
    out = io.BytesIO()
    assert export(records(), "jsonl", out) == len(TRICKY)
    back = [record_from_json(line) for line in out.getvalue().splitlines()]
    assert back == records()


def test_jsonl_keeps_nulls_and_odd_values() -> None:
    odd = rec("k", input_path=None, cost_usd=None, usage={}, message={})
    assert record_from_json(record_to_json(odd)) == odd


def test_jsonl_lines_are_one_per_record() -> None:
    """Newlines inside answers are escaped, so each line is one whole record."""
    out = io.BytesIO()
    export(records(), "jsonl", out)
    assert out.getvalue().count(b"\n") == len(TRICKY)


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_round_trips_through_the_csv_module() -> None:
    """With raw=True (`--raw`) every cell reads back exactly as it was."""
    out = io.BytesIO()
    assert export(records(), "csv", out, raw=True) == len(TRICKY)
    back = read_csv(out.getvalue())
    assert [row["text"] for row in back] == TRICKY
    assert back == [dict(zip(CSV_COLUMNS, csv_row(r), strict=True)) for r in records()]


def test_csv_flattens_usage_and_formats_values() -> None:
    out = io.BytesIO()
    export([rec("k", input_path=None, cost_usd=None)], "csv", out)
    (row,) = read_csv(out.getvalue())
    assert row["usage.input_tokens"] == "10"
    assert row["usage.cache_creation.ephemeral_1h_input_tokens"] == "30"
    assert row["usage.service_tier"] == "batch"
    assert row["stop_reason"] == "end_turn"
    assert (row["input_path"], row["cost_usd"], row["attempts"]) == ("", "", "2")
    assert list(row) == list(CSV_COLUMNS)


def test_csv_float_cost_reads_back_exactly() -> None:
    out = io.BytesIO()
    export([rec()], "csv", out)
    assert float(read_csv(out.getvalue())[0]["cost_usd"]) == 0.1 + 0.2


def test_missing_usage_fields_are_empty_cells() -> None:
    row = dict(zip(CSV_COLUMNS, csv_row(rec(usage={"input_tokens": 1})), strict=True))
    assert (
        row["usage.output_tokens"] == ""
        and row["usage.cache_creation.ephemeral_5m_input_tokens"] == ""
    )


@given(st.text())
def test_any_text_survives_csv(text: str) -> None:
    """Raw, exactly; neutralised, exactly but for the one leading quote."""
    raw, safe = io.BytesIO(), io.BytesIO()
    export([rec("k", text)], "csv", raw, raw=True)
    export([rec("k", text)], "csv", safe)
    assert read_csv(raw.getvalue())[0]["text"] == text
    assert read_csv(safe.getvalue())[0]["text"] == neutralise(text)
    assert neutralise(text).removeprefix("'") == text or neutralise(text) == text


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_text_streams_work_too(fmt: Any) -> None:
    binary, text = io.BytesIO(), io.StringIO(newline="")
    export(records(), fmt, binary)
    export(records(), fmt, text)
    assert text.getvalue().encode("utf-8") == binary.getvalue()


def test_no_records_gives_a_header_or_nothing() -> None:
    jsonl, csv_out = io.BytesIO(), io.BytesIO()
    assert export([], "jsonl", jsonl) == 0 and export([], "csv", csv_out) == 0
    assert jsonl.getvalue() == b""
    assert csv_out.getvalue().decode() == ",".join(CSV_COLUMNS) + "\r\n"


def test_export_streams_without_reading_ahead() -> None:
    """Each record is written before the next is asked for: memory stays flat."""
    out = io.BytesIO()
    seen: list[int] = []

    def lazy() -> Iterator[ResultRecord]:
        for i in range(3):
            seen.append(out.tell())
            yield rec(f"k{i}")

    export(lazy(), "csv", out)
    assert seen[0] < seen[1] < seen[2]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export([], "xml", io.BytesIO())  # type: ignore[arg-type]


def test_jsonl_line_is_the_jsonl_sinks_line() -> None:
    """The JSONL sink writes `orjson.dumps(record)`: export gives the same bytes."""
    record = rec("k", "text")
    assert record_to_json(record) == orjson.dumps(record) + b"\n"


def test_export_file_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "exports/results.csv"
    assert export_file(records(), "csv", target, raw=True) == len(TRICKY)
    assert [row["text"] for row in read_csv(target.read_bytes())] == TRICKY
    assert list(target.parent.iterdir()) == [target]  # no temp file left behind


def test_a_failed_export_file_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_bytes(b"old\n")

    def failing() -> Iterator[ResultRecord]:
        yield rec("k1")
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError, match="store went away"):
        export_file(failing(), "jsonl", target)
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain = text", "plain = text"),
        ("", ""),
    ],
)
def test_csv_neutralises_cells_a_spreadsheet_would_run(text: str, cell: str) -> None:
    """Formula injection: an answer (or an input key) starting like a formula gets a
    leading ' unless --raw; everything else is left alone."""
    out = io.BytesIO()
    export([rec("k", text)], "csv", out)
    assert read_csv(out.getvalue())[0]["text"] == cell


def test_csv_neutralises_every_column_not_only_the_answer() -> None:
    out = io.BytesIO()
    export([rec("=cmd|' /C calc'!A0", "ok")], "csv", out)
    assert read_csv(out.getvalue())[0]["input_key"] == "'=cmd|' /C calc'!A0"


def test_csv_has_the_jobs_extra_columns_after_its_own() -> None:
    """Included fields, then output schema properties, as the SQLite sink's table has."""
    from runner.sinks.columns import extra_columns

    schema = {"properties": {"topic": {"type": "string"}, "ok": {"type": "boolean"},
                             "kw": {"type": "array"}, "text": {"type": "string"}}}  # fmt: skip
    columns = extra_columns(["region"], schema)
    record = rec(data={"topic": "billing", "ok": True, "kw": ["a"], "text": "t"},
                 include={"region": "north"})  # fmt: skip
    out = io.BytesIO()
    export([record, rec("b")], "csv", out, columns)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert list(rows[0])[len(CSV_COLUMNS) :] == ["region", "topic", "ok", "kw", "data_text"]
    assert [rows[0][c] for c in ("region", "topic", "ok", "kw", "data_text")] == [
        "north", "billing", "true", '["a"]', "t",
    ]  # fmt: skip
    assert [rows[1][c] for c in ("region", "topic")] == ["", ""]  # no data: empty cells


def test_jsonl_lines_of_older_results_read_back() -> None:
    """A line written before `data` and `include` existed still reads into a record."""
    line = orjson.loads(record_to_json(rec()))
    del line["data"], line["include"]
    assert record_from_json(orjson.dumps(line)) == rec()


def test_extra_columns_neutralise_text_but_not_numbers() -> None:
    from runner.sinks.columns import extra_columns

    schema = {"properties": {"n": {"type": "integer"}, "s": {"type": "string"}}}
    out = io.BytesIO()
    export([rec(data={"n": -3, "s": "=1+2"})], "csv", out, extra_columns([], schema))
    [row] = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert (row["n"], row["s"]) == ("-3", "'=1+2")
