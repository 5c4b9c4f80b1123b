"""The columns a job's results gain beside batchrun's own: one per `output.include` field,
then one per top-level property of the output schema, typed from the schema.

The SQLite sink and `export --format csv` share this list, so a table and a CSV of one job
have the same columns. A name that batchrun already uses for a column of its own (`text`,
`model`...) gets a prefix: `input_` for an included field, `data_` for a property (and a
property that an included field already names gets `data_` too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from runner.records import ResultRecord
from runner.spec.model import JobSpec

# Every column name batchrun itself uses in a results table or CSV export.
RESERVED = frozenset(
    {
        "input_key", "input_path", "custom_id", "outcome", "text", "stop_reason", "model",
        "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens", "cost_usd", "batch_id", "spec_hash", "attempts",
        "collected_at", "updated_at", "message_json", "data", "include", "message", "usage",
    }
)  # fmt: skip

_SQL_TYPES = {
    "integer": "INTEGER",
    "number": "REAL",
    "string": "TEXT",
    "boolean": "INTEGER",
    "object": "TEXT",
    "array": "TEXT",
}


@dataclass(frozen=True)
class Column:
    """One extra column: its name, where its value comes from, and its SQLite type (empty
    for no declared type: SQLite keeps each value as given)."""

    name: str
    source: Literal["include", "data"]
    field: str
    sql_type: str

    def value(self, record: ResultRecord) -> Any:
        """The record's value for this column, as JSON gives it (None when absent)."""
        holder = record.include if self.source == "include" else record.data
        return holder.get(self.field) if isinstance(holder, Mapping) else None


def job_columns(job: JobSpec) -> tuple[Column, ...]:
    """The extra columns of `job`'s results (see `extra_columns`)."""
    return extra_columns(job.output.include, job.output_schema)


def extra_columns(include: Sequence[str], schema: Mapping[str, Any] | None) -> tuple[Column, ...]:
    """The included fields' columns, then the schema properties', in the schema's order."""
    taken = {n.lower() for n in RESERVED}
    out: list[Column] = []
    for field in include:
        name = _free(field, "input_", taken)
        out.append(Column(name, "include", field, ""))
    props = (schema or {}).get("properties")
    for prop, sub in props.items() if isinstance(props, Mapping) else ():
        name = _free(str(prop), "data_", taken)
        out.append(Column(name, "data", str(prop), sql_type(sub, schema or {})))
    return tuple(out)


def _free(name: str, prefix: str, taken: set[str]) -> str:
    """`name`, or `prefix + name` when taken (SQLite compares names case-insensitively)."""
    chosen = name
    while chosen.lower() in taken:
        chosen = prefix + chosen
    taken.add(chosen.lower())
    return chosen


def sql_type(schema: Any, root: Mapping[str, Any]) -> str:
    """The SQLite type of a property: INTEGER, REAL, TEXT (JSON text for arrays and
    objects), or '' when its values may be of several kinds."""
    kinds = _kinds(schema, root, 0) - {"null"}
    if kinds == {"integer", "number"}:
        return "REAL"
    types = {_SQL_TYPES.get(k, "") for k in kinds}
    return types.pop() if len(types) == 1 else ""


def _kinds(schema: Any, root: Mapping[str, Any], depth: int) -> set[str]:
    if not isinstance(schema, Mapping) or depth > 16:
        return {"?"}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for part in ref.removeprefix("#").split("/")[1:]:
            target = target.get(part) if isinstance(target, Mapping) else None
        return _kinds(target, root, depth + 1)
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    values = schema["enum"] if isinstance(schema.get("enum"), list) else None
    if values is None and "const" in schema:
        values = [schema["const"]]
    if values is not None:
        return {_json_kind(v) for v in values}
    for combo in ("anyOf", "allOf"):
        if isinstance(schema.get(combo), list):
            found = [_kinds(s, root, depth + 1) for s in schema[combo]]
            if combo == "anyOf":
                return set().union(*found)
            known = [k for k in found if k != {"?"}]
            return set.intersection(*known) if known else {"?"}
    return {"?"}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def sql_value(value: Any) -> Any:
    """A value as SQLite stores it: booleans as 0/1, lists and objects as JSON text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return _json(value)
    return value


def csv_value(value: Any) -> Any:
    """A value as a CSV cell: booleans as true/false, lists and objects as JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _json(value)
    return value


def _json(value: Any) -> str:
    """Compact JSON, keys in the answer's order; the stdlib for integers past 64 bits."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
