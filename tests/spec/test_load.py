"""runner.spec: loading job files into a frozen JobSpec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runner import spec
from runner.spec import load as spec_load
from runner.spec import schema as spec_schema
from runner.spec import validate, yaml_source
from runner.spec.model import Template
from tests.conftest import REPO
from tests.jobkit import write_job


def test_quickstart_loads_with_absolute_paths() -> None:
    """Paths in a job resolve relative to the job file, not the working folder."""
    job = spec.load_job(REPO / "jobs" / "quickstart.yaml")
    assert job.name == "quickstart"
    assert job.output.path == (REPO / "out" / "quickstart.jsonl").resolve()
    assert job.system is not None and job.system.cache == "1h"
    assert job.prompt is not None and "input.text" in job.prompt.source


def test_jobspec_is_frozen() -> None:
    job = spec.load_job(REPO / "jobs" / "quickstart.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("250ms", 0.25)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert spec_schema.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("256MB", 256_000_000), ("256MiB", 268_435_456), (1024, 1024), ("1 KiB", 1024)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert spec_schema.parse_size(text) == size


def _loaded(text: str) -> yaml_source.LoadedYaml:
    return yaml_source.load_yaml(text, "job.yaml")


@pytest.mark.parametrize(
    ("text", "line", "col", "exact"),
    [
        ("prompt: |\n  a\n  b\n", 2, 3, True),
        ("prompt: |-  # a comment\n\n    a\n", 2, 5, True),
        ("prompt: >\n  a\n  b\n", 1, 9, False),
        ('prompt: "a {{ x }}"\n', 1, 9, False),
        ("x: 1\nprompt: a {{ x }}\n", 2, 9, False),
    ],
)
def test_text_start_of_each_scalar_style(text: str, line: int, col: int, exact: bool) -> None:
    """Only literal blocks map the template's lines one to one onto the file's."""
    start = _loaded(text).text_starts["$.prompt"]
    assert (start.line, start.col, start.exact) == (line, col, exact)


def test_template_position_in_a_literal_block() -> None:
    loaded = _loaded("a: 1\nprompt: |\n  one\n  two {{ x }\n")
    template = Template.inline(
        Path("job.yaml"), "$.prompt", "one\ntwo", loaded.positions, loaded.text_starts
    )
    assert template.position(1) == (3, 3)
    assert template.position(2) == (4, 3)


def test_template_position_in_a_quoted_scalar_stays_at_the_scalar() -> None:
    template = spec.Template("a\nb", Path("job.yaml"), 4, "$.prompt", 9, line_exact=False)
    assert template.position(2) == (4, 9)


def test_key_positions_are_recorded() -> None:
    loaded = _loaded("input:\n  glb: x\n")
    assert loaded.key_positions["$.input.glb"] == (2, 3)
    assert loaded.positions["$.input.glb"] == (2, 8)


def test_dates_stay_strings() -> None:
    assert _loaded("name: 2026-01-01\n").data == {"name": "2026-01-01"}


def test_build_spec_without_text_starts_still_places_templates() -> None:
    """Callers of the original three-argument form keep working."""
    path = REPO / "jobs" / "quickstart.yaml"
    result = validate.check_file(path)
    assert result.document is not None
    job = spec_load.build_spec(path, result.document, result.positions)
    assert job.prompt is not None and job.prompt.line == 16


def test_inline_prompt_template_starts_after_the_block_header() -> None:
    job = spec.load_job(REPO / "jobs" / "quickstart.yaml")
    assert job.prompt is not None
    assert (job.prompt.line, job.prompt.col, job.prompt.line_exact) == (17, 3, True)


def test_example_jobs_load_with_their_input_kinds() -> None:
    pdfs = spec.load_job(REPO / "jobs" / "pdf-summaries.yaml")
    assert (pdfs.input.kind, pdfs.input.as_) == ("glob", "document")
    records = spec.load_job(REPO / "jobs" / "records.yaml")
    assert records.input.kind == "jsonl"
    assert records.input.path == REPO / "jobs" / "data" / "answers.jsonl"
    assert records.input.key is not None and records.input.key.source == "{{ record.id }}"
    survey = spec.load_job(REPO / "jobs" / "survey-topics.yaml")
    assert survey.system is not None and survey.system.cache == "1h"
    assert survey.system.template.origin == REPO / "jobs" / "prompts" / "framework.md"
    assert survey.betas == ("output-300k-2026-03-24",)
    assert survey.max_bytes == 256_000_000


# ---------------------------------------------------------------------------------------
# output_schema


def test_output_schema_is_merged_into_output_config(tmp_path: Path) -> None:
    """The schema joins any other output_config keys, as the API's format object."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    job = write_job(
        tmp_path,
        {"data/x.txt": "x"},
        output_schema=schema,
        params={"output_config": {"effort": "low"}, "stop_sequences": ["END"]},
    )
    assert job.output_schema == schema
    assert job.params["output_config"] == {
        "effort": "low",
        "format": {"type": "json_schema", "schema": schema},
    }
    assert job.params["stop_sequences"] == ["END"]


def test_a_schema_file_is_read_and_its_content_is_in_the_spec_hash(tmp_path: Path) -> None:
    """Editing the schema file changes spec_hash (and so the fingerprint) and every
    custom_id, as editing an inline schema would."""
    from runner.compile import iter_requests

    files: dict[str, str | bytes] = {
        "data/x.txt": "x",
        "s.json": '{"type": "object", "properties": {}}',
    }
    first = write_job(tmp_path, files, output_schema="s.json")
    assert first.params["output_config"]["format"]["schema"] == {"type": "object", "properties": {}}
    (tmp_path / "s.json").write_text('{"type": "object", "properties": {"b": {"type": "integer"}}}')
    second = spec.load_job(first.path)
    assert first.spec_hash != second.spec_hash
    ids = [r.custom_id for r in iter_requests(first)], [r.custom_id for r in iter_requests(second)]
    assert ids[0] != ids[1]


def test_a_schema_passed_through_params_is_the_jobs_schema(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "schema": schema}
    job = write_job(tmp_path, {"data/x.txt": "x"}, params={"output_config": {"format": fmt}})
    assert job.output_schema == schema and job.params["output_config"] == {"format": fmt}
