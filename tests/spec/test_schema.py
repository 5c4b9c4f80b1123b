"""schemas/job.schema.json: one source of truth, valid 2020-12, every property described."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.spec import schema as spec_schema
from tests.conftest import REPO

SCHEMA_FILE = REPO / "schemas" / "job.schema.json"


def _properties(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every (path, schema) declared under a `properties` keyword, at any depth; an `if`
    only tests a value and declares nothing."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{path}.{name}", sub
        for key, sub in node.items():
            if key != "if":
                yield from _properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{path}[{i}]")


def test_schema_command_prints_the_schema_file() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == SCHEMA_FILE.read_text("utf-8")


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_property_has_a_description() -> None:
    """The reference docs are generated from the descriptions. A `true` schema only
    re-allows, per output type, a property described once at the top of `output`."""
    missing = [
        path
        for path, sub in _properties(spec_schema.schema())
        if sub is not True and not (isinstance(sub, dict) and _described(sub))
    ]
    assert missing == []


def _described(sub: dict[str, Any]) -> bool:
    if "description" in sub:
        return True
    ref = sub.get("$ref", "")
    return (
        bool(ref) and "description" in spec_schema.schema()["$defs"][ref.removeprefix("#/$defs/")]
    )


@pytest.mark.parametrize("sink", ["jsonl", "files", "sqlite"])
def test_each_output_type_allows_only_known_properties(sink: str) -> None:
    output = spec_schema.schema()["$defs"]["output"]
    branch = next(b for b in output["allOf"] if b["if"]["properties"]["type"]["const"] == sink)
    assert set(branch["then"]["properties"]) <= set(output["properties"])


def test_error_messages_never_leak_jsonschema_wording() -> None:
    """Every translated message of every invalid case is free of jsonschema's phrasing."""
    for expected in (REPO / "tests" / "jobs" / "invalid").glob("*.expected"):
        text = expected.read_text("utf-8")
        for phrase in ("is valid under", "is not valid under", "{'", "Additional properties"):
            assert phrase not in text, expected.name
