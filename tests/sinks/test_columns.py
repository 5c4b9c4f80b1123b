"""runner.sinks.columns: the extra columns of a job's results, their names and types."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runner.sinks.columns import Column, csv_value, extra_columns, sql_type, sql_value
from tests.sinks.test_sqlite import rec

ROOT: dict[str, Any] = {"$defs": {"level": {"enum": [1, 2, 3]}}}


def test_types_follow_the_schema() -> None:
    cases: dict[str, list[dict[str, Any]]] = {
        "INTEGER": [{"type": "integer"}, {"type": "boolean"}, {"$ref": "#/$defs/level"}],
        "REAL": [{"type": "number"}, {"type": ["integer", "number"]}, {"enum": [1, 2.5]}],
        "TEXT": [
            {"type": "string"},
            {"type": ["string", "null"]},
            {"type": "array"},
            {"type": "object"},
            {"enum": ["a", "b"]},
            {"const": "x"},
            {"anyOf": [{"type": "string"}, {"type": "null"}]},
        ],
        "": [
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            {},
            {"type": ["string", "integer"]},
        ],
    }
    for expected, schemas in cases.items():
        for schema in schemas:
            assert sql_type(schema, ROOT) == expected, schema


def test_included_fields_then_properties_with_prefixes_on_clashes() -> None:
    schema = {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "text": {"type": "string"}, "region": {}},
    }
    columns = extra_columns(["region", "Model"], schema)
    assert [(c.name, c.source, c.field) for c in columns] == [
        ("region", "include", "region"),
        ("input_Model", "include", "Model"),
        ("topic", "data", "topic"),
        ("data_text", "data", "text"),
        ("data_region", "data", "region"),
    ]


def test_values_as_sqlite_and_csv_hold_them() -> None:
    assert [sql_value(v) for v in (True, [1, "a"], {"k": None}, 2.5, None)] == [
        1, '[1,"a"]', '{"k":null}', 2.5, None,
    ]  # fmt: skip
    assert [csv_value(v) for v in (False, [2**70])] == ["false", f"[{2**70}]"]


def test_a_column_reads_its_value_from_data_or_include() -> None:
    record = replace(rec(), data={"x": 1}, include={"x": "in"})
    assert Column("x", "data", "x", "").value(record) == 1
    assert Column("input_x", "include", "x", "").value(record) == "in"
    assert Column("y", "data", "y", "").value(rec()) is None  # no data at all: null
