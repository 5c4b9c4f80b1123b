"""runner.executor.answers: each structured answer is data, or a dead letter saying why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.emulator import structured
from runner.executor import answers
from runner.spec import JobSpec
from runner.spec.schema_subset import problems
from tests.emulator.test_structured import _roots
from tests.jobkit import write_job

SCHEMA = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "enum": ["checkout", "billing"]},
        "score": {"type": "integer"},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["topic", "score"],
    "additionalProperties": False,
}


@pytest.fixture
def job(tmp_path: Path) -> JobSpec:
    return write_job(tmp_path, {"data/a.txt": "x"}, output_schema=SCHEMA, max_tokens=300)


def msg(text: str, stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "stop_reason": stop, **extra}


def test_a_valid_answer_is_its_parsed_object(job: JobSpec) -> None:
    verdict = answers.read(job, msg('{"topic": "billing", "score": 3}'), "a", "data/a.txt")
    assert verdict.error_type is None
    assert verdict.data == {"topic": "billing", "score": 3}


def test_an_answer_cut_at_max_tokens_says_to_raise_it(job: JobSpec) -> None:
    verdict = answers.read(job, msg('{"topic": "bil', "max_tokens"), "a", None)
    assert verdict.error_type == "invalid_output"
    assert verdict.message == (
        "the answer was cut at max_tokens=300 before its JSON was complete: raise max_tokens"
    )


def test_an_answer_the_schema_rejects_names_each_violation(job: JobSpec) -> None:
    text = '{"topic": "shipping", "score": "high", "when": "yesterday"}'
    verdict = answers.read(job, msg(text), "a", None)
    assert verdict.error_type == "invalid_output"
    assert verdict.message is not None
    assert verdict.message.startswith("the answer does not match the output schema: ")
    assert "$.score: 'high' is not of type 'integer'" in verdict.message
    assert "$.topic: 'shipping' is not one of ['checkout', 'billing']" in verdict.message


def test_prose_is_not_json(job: JobSpec) -> None:
    verdict = answers.read(job, msg("Sure! Here is the JSON you asked for"), "a", None)
    assert verdict.error_type == "invalid_output"
    assert verdict.message is not None and "the answer is not JSON (Expecting value)" in (
        verdict.message
    )


def test_nan_and_huge_integers_are_not_accepted(job: JobSpec) -> None:
    for text in ('{"topic": "billing", "score": NaN}', '{"topic": "billing", "score": 1e999}'):
        assert answers.read(job, msg(text), "a", None).error_type == "invalid_output", text
    huge = '{"topic": "billing", "score": 123456789012345678901234567890}'
    assert answers.read(job, msg(huge), "a", None).error_type == "invalid_output"


def test_a_stop_sequence_that_cut_the_json_is_named(job: JobSpec) -> None:
    verdict = answers.read(
        job, msg('{"topic"', "stop_sequence", stop_sequence="</json>"), "a", None
    )
    assert verdict.message is not None and "'</json>'" in verdict.message


def test_a_refusal_is_its_own_error_type_with_the_details(job: JobSpec) -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "not this one"}
    verdict = answers.read(job, msg("", "refusal", stop_details=details), "a", None)
    assert verdict.error_type == "refusal"
    assert verdict.message == (
        "the model refused to answer (cyber): not this one: rephrase the prompt, or leave "
        "this input out (a refused answer is not retried)"
    )


def test_without_a_schema_answers_are_left_as_text(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/a.txt": "x"})
    verdict = answers.read(job, msg("not json", "max_tokens"), "a", None)
    assert verdict == answers.Verdict()


def test_file_inputs_include_path_name_and_stem(tmp_path: Path) -> None:
    output = {"type": "jsonl", "path": "out/t.jsonl", "include": ["name", "stem", "path"]}
    job = write_job(tmp_path, {"data/a.txt": "x"}, output=output)
    verdict = answers.read(job, msg("hi"), "data/a.txt", "data/a.txt")
    assert verdict.include == {"name": "a.txt", "stem": "a", "path": "data/a.txt"}


def test_records_include_their_fields_null_when_missing(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "data/r.jsonl": '{"id": "r1", "region": "north", "n": 2}\n{"id": "r2"}\n'
    }
    output = {"type": "jsonl", "path": "out/t.jsonl", "include": ["region", "n"]}
    job = write_job(
        tmp_path,
        files,
        input={"jsonl": "data/r.jsonl", "key": "{{ record.id }}"},
        prompt="{{ input.record.id }}",
        output=output,
        output_schema=SCHEMA,
    )
    verdict = answers.read(job, msg('{"topic": "billing", "score": 1}'), "r1", None)
    assert verdict.include == {"region": "north", "n": 2} and verdict.data is not None
    assert answers.read(job, msg("x"), "r2", None).include == {"region": None, "n": None}
    assert answers.read(job, msg("x"), "gone", None).include == {"region": None, "n": None}


@settings(
    max_examples=40,
    deadline=None,
    # the job is only read: one for every example is fine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(schema=_roots, seed=st.text(max_size=6))
def test_the_emulators_answers_pass_validate_and_collect(
    job: JobSpec, schema: dict[str, Any], seed: str
) -> None:
    """Any schema of the emulator's corpus is within the subset `validate` accepts, and the
    emulator's answer to it is data at collect: the two sides agree on the contract."""
    assert [f for f in problems(schema) if f.severity == "error"] == []
    check = answers.AnswerCheck(replace(job, output_schema=schema))
    verdict = check.check(msg(structured.answer_text(schema, seed)))
    assert verdict.error_type is None, verdict.message
