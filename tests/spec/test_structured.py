"""runner.spec.structured: which models take structured outputs; the schema subset checks
themselves are covered by the validate corpus (tests/jobs/invalid/output-schema-*)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.spec import validate
from runner.spec.schema_subset import problems
from runner.spec.structured import supports_structured_outputs


@pytest.mark.parametrize(
    ("model", "supported"),
    [
        ("claude-sonnet-4-5", True),
        ("claude-sonnet-4-5-20250929", True),
        ("claude-haiku-4-5", True),
        ("claude-opus-4-8", True),
        ("claude-sonnet-5", True),
        ("claude-fable-5-2", True),
        ("claude-mythos-preview", True),
        ("claude-opus-4-1", False),
        ("claude-opus-4", False),
        ("claude-sonnet-4-20250514", False),
        ("claude-3-5-haiku-20241022", False),
        ("claude-3-haiku-20240307", False),
        ("my-fine-tune", None),
    ],
)
def test_models_from_claude_4_5_support_structured_outputs(
    model: str, supported: bool | None
) -> None:
    assert supports_structured_outputs(model) is supported


def test_a_schema_within_the_subset_has_no_problems() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "a": {"type": "string", "format": "uuid", "pattern": "^[a-z]+-[0-9]{2}$"},
            "b": {"anyOf": [{"$ref": "#/definitions/b"}, {"type": "null"}]},
            "c": {"type": "array", "items": {"enum": [1, "x", None, True]}, "minItems": 1},
            "d": {"allOf": [{"$ref": "#/$defs/d"}], "default": {}},
        },
        "required": ["a"],
        "additionalProperties": False,
        "definitions": {"b": {"const": "b"}},
        "$defs": {"d": {"type": "object", "properties": {}, "additionalProperties": False}},
    }
    assert problems(schema) == []


def test_an_output_schema_url_is_refused(tmp_path: Path) -> None:
    """validate and every load read the schema: it must be a file at hand, not a URL."""
    job = tmp_path / "j.yaml"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("x")
    job.write_text(
        "version: 1\nname: j\ninput: {glob: data/*.txt}\nmodel: claude-sonnet-4-6\n"
        "max_tokens: 10\nprompt: hi\noutput_schema: s3://bucket/schema.json\n"
        "output: {type: jsonl, path: out/j.jsonl}\n"
    )
    found = [d for d in validate.check_file(job).diagnostics if d.path == "$.output_schema"]
    assert any("not a URL: copy the schema into the repository" in d.message for d in found)
