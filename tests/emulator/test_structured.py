"""Structured outputs in the emulator (contract 10b): schema-valid answers, forced tool use,
scripted rules that still override, and the fields the SDKs type as always present."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import jsonschema
import orjson
from anthropic import Anthropic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.emulator import Emulator, structured
from tests.emulator.conftest import request, results_of, sdk

SURVEY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "enum": ["checkout", "billing", "other"]},
        "sentiment": {"$ref": "#/$defs/sentiment"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "integer"},
        "urgent": {"type": "boolean"},
        "who": {
            "type": "object",
            "properties": {"email": {"type": "string", "format": "email"}},
            "required": ["email"],
            "additionalProperties": False,
        },
    },
    "required": ["topic", "sentiment", "keywords", "score", "urgent", "who"],
    "additionalProperties": False,
    "$defs": {"sentiment": {"enum": ["positive", "neutral", "negative"]}},
}


def _format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    cls = jsonschema.Draft202012Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# ---------------------------------------------------------------------------------------
# A corpus of schemas within the API's subset: every generated answer validates

_names = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
_primitives = st.one_of(st.text(max_size=5), st.integers(-5, 5), st.booleans(), st.none())
_leaves = st.one_of(
    st.sampled_from(["string", "integer", "number", "boolean", "null"]).map(lambda t: {"type": t}),
    st.lists(_primitives, min_size=1, max_size=4, unique=True).map(lambda e: {"enum": e}),
    _primitives.map(lambda c: {"const": c}),
    st.sampled_from(["date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6"]).map(
        lambda f: {"type": "string", "format": f}
    ),
    st.sampled_from([r"^[A-Z]{3}-\d{2,4}$", r"[a-c]+x", r"^(yes|no)$", r"\w+@\w+\.com"]).map(
        lambda p: {"type": "string", "pattern": p}
    ),
    st.just({"type": ["string", "null"]}),
)


def _closed(props: dict[str, Any], required: set[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": sorted(required),
        "additionalProperties": False,
    }


def _object(children: Any) -> Any:
    return st.dictionaries(_names, children, max_size=4).flatmap(
        lambda props: st.sets(st.sampled_from(sorted(props)) if props else st.nothing()).map(
            lambda required: _closed(props, required)
        )
    )


def _renamed(schema: dict[str, Any], suffix: str) -> dict[str, Any]:
    """An open object with its properties renamed: two of them can be `allOf`ed."""
    return {
        "type": "object",
        "properties": {k + suffix: v for k, v in schema["properties"].items()},
        "required": [r + suffix for r in schema["required"]],
    }


def _extend(children: Any) -> Any:
    return st.one_of(
        _object(children),
        st.tuples(children, st.sampled_from([0, 1])).map(
            lambda t: {"type": "array", "items": t[0], "minItems": t[1]}
        ),
        st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b}),
        st.tuples(_object(children), _object(children)).map(
            lambda t: {"allOf": [_renamed(t[0], ""), _renamed(t[1], "_2")]}
        ),
    )


_roots = st.dictionaries(_names, st.recursive(_leaves, _extend, max_leaves=10), max_size=5).map(
    lambda props: _closed(props, set(props))
)


def _with_defs(root: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {
            "a": {"$ref": "#/$defs/thing"},
            "b": {"type": "array", "items": {"$ref": "#/$defs/thing"}},
        },
        {"a", "b"},
    ) | {"$defs": {"thing": root}}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_roots, st.text(max_size=8), st.booleans())
def test_every_generated_answer_validates(schema: dict[str, Any], seed: str, defs: bool) -> None:
    """Whatever the schema (within the subset) and the prompt, the answer text is JSON that
    validates, formats included, and the same inputs give the same text."""
    if defs:
        schema = _with_defs(schema)
    text = structured.answer_text(schema, seed)
    _validator(schema).validate(orjson.loads(text))
    assert structured.answer_text(schema, seed) == text


def test_recursive_schema_still_ends() -> None:
    """The API refuses recursive schemas, but an answer to one still ends and validates."""
    schema = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["children"],
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"],
    }
    _validator(schema).validate(orjson.loads(structured.answer_text(schema, "x")))


def test_answers_differ_between_prompts() -> None:
    texts = {structured.answer_text(SURVEY, f"prompt {i}") for i in range(8)}
    assert len(texts) > 1


# ---------------------------------------------------------------------------------------
# Through the server, read by the official SDK with strict validation


def test_structured_request_gets_schema_valid_json(client: Anthropic) -> None:
    """Keys in the schema's order, every required one, `$ref` followed."""
    results = results_of(client, [request("s1", **_format(SURVEY))])
    message = results["s1"].message
    assert message.stop_reason == "end_turn"
    data = orjson.loads(message.content[0].text)
    _validator(SURVEY).validate(data)
    assert list(data) == list(SURVEY["properties"])
    assert message.usage.output_tokens == -(-len(message.content[0].text) // 4)


def test_scripted_rule_overrides_the_schema(emulator_factory: Callable[..., Emulator]) -> None:
    """Rules still script truncated and refused answers; a refusal carries stop_details."""
    emu = emulator_factory(
        {
            "responses": [
                {"prompt_contains": "cut", "text": '{"topic": "chec', "stop_reason": "max_tokens"},
                {"prompt_contains": "refuse", "stop_reason": "refusal"},
            ]
        }
    )
    with sdk(emu, max_retries=0) as client:
        reqs = [
            request("cut", "please cut", **_format(SURVEY)),
            request("no", "please refuse", **_format(SURVEY)),
        ]
        results = results_of(client, reqs)
    cut, refused = results["cut"].message, results["no"].message
    assert (cut.stop_reason, cut.content[0].text) == ("max_tokens", '{"topic": "chec')
    assert refused.stop_reason == "refusal" and refused.stop_details is not None
    assert refused.stop_details.type == "refusal"


def test_small_max_tokens_cuts_the_json(client: Anthropic) -> None:
    results = results_of(client, [request("s", max_tokens=3, **_format(SURVEY))])
    message = results["s"].message
    assert message.stop_reason == "max_tokens" and len(message.content[0].text) == 12


def test_forced_tool_use_gets_a_fitting_tool_use_block(client: Anthropic) -> None:
    tool = {"name": "record_label", "description": "Record a label", "input_schema": SURVEY}
    other = {"name": "other", "input_schema": {"type": "object"}}
    results = results_of(
        client,
        [
            request("t", tools=[other, tool], tool_choice={"type": "tool", "name": "record_label"}),
            request("auto", tools=[tool], tool_choice={"type": "auto"}),
        ],
    )
    message = results["t"].message
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "record_label"
    assert block.id.startswith("toolu_") and block.caller is not None
    _validator(SURVEY).validate(block.input)
    assert results["auto"].message.content[0].type == "text"


def test_always_present_fields_are_sent_as_null(client: Anthropic) -> None:
    """What the TypeScript SDK types as always present reaches the wire, null when empty."""
    batch = client.messages.batches.create(requests=[request("a", **_format(SURVEY))])
    raw = client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)
    message = orjson.loads(raw.content.splitlines()[0])["result"]["message"]
    for name in ("container", "diagnostics", "stop_details", "stop_sequence"):
        assert name in message and message[name] is None, name
    assert message["content"][0]["citations"] is None
    for name in ("server_tool_use", "speed", "inference_geo", "output_tokens_details"):
        assert name in message["usage"] and message["usage"][name] is None, name
    model = client.get("/v1/models/claude-sonnet-4-6", cast_to=httpx2.Response).json()
    assert model["deprecated_at"] is None and model["retires_at"] is None
    assert model["capabilities"]["structured_outputs"] == {"supported": True}
    assert client.models.retrieve("claude-sonnet-4-6").capabilities is not None


def test_malformed_output_config_is_an_errored_result(client: Anthropic) -> None:
    bad = {"output_config": {"format": {"type": "json_object"}}}
    results = results_of(client, [request("x", **bad)])
    assert results["x"].type == "errored"
    assert "output_config.format.type" in results["x"].error.error.message


def test_beta_batches_get_the_beta_messages_fields(client: Anthropic) -> None:
    """A batch created with an anthropic-beta header is answered as BetaMessages are."""
    batch = client.beta.messages.batches.create(
        requests=[request("b")], betas=["output-300k-2026-03-24"]
    )
    raw = client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)
    message = orjson.loads(raw.content.splitlines()[0])["result"]["message"]
    assert "context_management" in message and message["context_management"] is None
    assert message["usage"]["iterations"] is None and message["usage"]["fallback_credit"] is None
    [line] = client.beta.messages.batches.results(batch.id)
    assert line.result.type == "succeeded"
