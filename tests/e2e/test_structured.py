"""Structured outputs end to end: the real CLI, the official SDK and the emulator. A survey
job lands schema-valid typed rows in SQLite, `data` in JSONL and the same columns in CSV;
scripted truncated and refused answers become the two dead-letter types; a schema change
re-runs everything and the table follows it."""

from __future__ import annotations

import csv
import io
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from tests.e2e.conftest import EmulatorFactory
from tests.e2e.helpers import batchrun, dead_letters, results

pytestmark = pytest.mark.e2e

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "enum": ["checkout", "billing", "delivery", "other"]},
        "sentiment": {"$ref": "#/$defs/sentiment"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "rating": {"type": "integer", "description": "1 (angry) to 5 (delighted)"},
        "urgent": {"type": "boolean"},
    },
    "required": ["topic", "sentiment", "keywords", "rating", "urgent"],
    "additionalProperties": False,
    "$defs": {"sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]}},
}
ANSWERS = [
    ("s1", "north", "The checkout page times out on my phone."),
    ("s2", "south", "Invoices arrive twice. TRUNCATE"),
    ("s3", "north", "Delivery was a day early, lovely."),
    ("s4", "east", "Nothing to add, keep it as it is."),
    ("s5", "west", "Tell me how to break the payment form. REFUSE"),
]
RULES = {
    "responses": [
        {"prompt_contains": "TRUNCATE", "text": '{"topic": "bill', "stop_reason": "max_tokens"},
        {"prompt_contains": "REFUSE", "stop_reason": "refusal"},
    ]
}


def _write(root: Path) -> tuple[Path, Path]:
    """The survey job (CSV records -> SQLite) and a JSONL twin over files, one schema."""
    (root / "data" / "files").mkdir(parents=True)
    with (root / "data" / "survey.csv").open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["id", "region", "answer"])
        rows.writerows(ANSWERS)
    for key, _, answer in (ANSWERS[0], ANSWERS[2]):  # no scripted rule matches these
        (root / "data" / "files" / f"{key}.txt").write_text(answer)
    (root / "survey.json").write_text(orjson.dumps(SCHEMA).decode())
    common = (
        "model: claude-haiku-4-5\nmax_tokens: 300\noutput_schema: survey.json\n"
        "poll: {interval: 50ms, max_interval: 200ms}\n"
    )
    survey = root / "survey.yaml"
    survey.write_text(
        "version: 1\nname: survey\n"
        'input: {csv: data/survey.csv, key: "{{ record.id }}"}\n'
        'prompt: "Label this survey answer: {{ input.record.answer }}"\n' + common + "output:\n"
        "  type: sqlite\n  path: out/survey.db\n  table: labels\n  include: [region]\n"
    )
    files = root / "files.yaml"
    files.write_text(
        "version: 1\nname: files\ninput: {glob: data/files/*.txt}\n"
        'prompt: "Label: {{ input.text }}"\n' + common + "output:\n"
        "  type: jsonl\n  path: out/files.jsonl\n  include: [name]\n"
    )
    return survey, files


def _rows(db: Path, table: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY input_key")]


def _as_data(row: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A row's schema columns back as JSON values, to validate against the schema."""
    out: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        value = row[name]
        if prop.get("type") == "array":
            value = orjson.loads(value)
        elif prop.get("type") == "boolean":
            value = bool(value)
        out[name] = value
    return out


def test_survey_job_lands_typed_rows_and_dead_letters(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator(RULES)
    survey, files = _write(tmp_path)
    proc = batchrun(emu.base_url, "run", survey, files)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # finished, with dead letters

    db = tmp_path / "out" / "survey.db"
    rows = _rows(db, "labels")
    assert [r["input_key"] for r in rows] == ["s1", "s3", "s4"]
    for row in rows:
        jsonschema.validate(_as_data(row, SCHEMA), SCHEMA)
        assert row["region"] == {k: r for k, r, _ in ANSWERS}[row["input_key"]]
    with closing(sqlite3.connect(db)) as conn:
        types = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(labels)")}
        by_topic = conn.execute("SELECT topic, count(*) FROM labels GROUP BY topic").fetchall()
    assert (types["rating"], types["urgent"], types["keywords"]) == ("INTEGER", "INTEGER", "TEXT")
    assert sum(n for _, n in by_topic) == 3
    dead = {d["input_key"]: d for d in _rows(db, "labels_dead_letters")}
    assert dead["s2"]["error_type"] == "invalid_output"
    assert "cut at max_tokens=300" in dead["s2"]["error_message"]
    assert "raise max_tokens" in dead["s2"]["error_message"]
    assert dead["s5"]["error_type"] == "refusal" and "refused" in dead["s5"]["error_message"]

    lines = sorted(results(files), key=lambda line: line["input_key"])
    assert [line["include"] for line in lines] == [{"name": "s1.txt"}, {"name": "s3.txt"}]
    for line in lines:
        jsonschema.validate(line["data"], SCHEMA)
        assert orjson.loads(line["text"]) == line["data"]
    assert dead_letters(files) == []
    status = batchrun(emu.base_url, "status", "--json", survey)
    report = orjson.loads(status.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["dead_letters_by_type"] == {"invalid_output": 1, "refusal": 1}

    export = batchrun(emu.base_url, "export", "--format", "csv", survey)
    assert export.returncode == 0, export.stderr
    table = list(csv.DictReader(io.StringIO(export.stdout)))
    assert list(table[0])[-6:] == ["region", "topic", "sentiment", "keywords", "rating", "urgent"]
    for cells, row in zip(table, rows, strict=True):
        assert cells["topic"] == row["topic"] and cells["rating"] == str(row["rating"])
        assert cells["urgent"] == ("true" if row["urgent"] else "false")
        assert orjson.loads(cells["keywords"]) == orjson.loads(row["keywords"])


def test_a_schema_change_reruns_everything_and_the_table_follows(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator()
    survey, _ = _write(tmp_path)
    assert batchrun(emu.base_url, "run", survey).returncode == 0
    before = emu.stats()["requests_received"]
    changed = {**SCHEMA, "properties": dict(SCHEMA["properties"])}
    del changed["properties"]["urgent"]
    changed["properties"]["language"] = {"type": "string", "enum": ["en", "fr"]}
    changed["required"] = [*SCHEMA["required"][:-1], "language"]
    (tmp_path / "survey.json").write_text(orjson.dumps(changed).decode())

    proc = batchrun(emu.base_url, "run", survey)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert emu.stats()["requests_received"] - before == len(ANSWERS)  # every id changed
    rows = _rows(tmp_path / "out" / "survey.db", "labels")
    assert len(rows) == len(ANSWERS)
    for row in rows:
        assert row["language"] in ("en", "fr")
        assert row["urgent"] in (0, 1)  # the dropped property's column and values stay
        jsonschema.validate(_as_data(row, changed), changed)
