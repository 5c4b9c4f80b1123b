"""Intake summarises a batch's requests with shared work (one summary per distinct prompt
head, see `prompt.Heads`): every record must equal the one summarised on its own."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from runner.emulator import intake, prompt
from runner.emulator.config import load_config
from runner.emulator.params import Context
from runner.emulator.responder import make_record

CTX = Context("2023-06-01", frozenset())
SYSTEM = "You classify documents. résumé 日本 emoji🙂 " * 200  # ~1,800 tokens, non-ASCII
SAME_LENGTH = "x" * len(SYSTEM)


def _system(text: str = SYSTEM, ttl: str | None = "1h") -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if ttl is not None:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return [block]


def _tool(maximum: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": maximum}}}
    return {"name": "count", "description": "counts", "input_schema": schema}


def _params(i: int, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": _system(),
        "messages": [{"role": "user", "content": f"Classify this document: {i} naïve"}],
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


# Heads that look alike but summarise differently; each follows a request whose head a
# careless cache would hand back instead.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"model": "claude-sonnet-4-5"},  # same system, another model
    {"system": _system(SAME_LENGTH)},  # same length and tokens, other text
    {"system": _system(ttl="5m")},
    {"system": _system(ttl=None)},
    {"system": SYSTEM},  # the same text as a string
    {"system": None},
    {"tools": [_tool(1)]},
    {"tools": [_tool(1.0)]},  # == the previous one, but "1.0" is longer JSON than "1"
    {"tools": [_tool(True)]},
    {"cache_control": {"type": "ephemeral"}},  # automatic mode marks the last turn
    {"messages": [{"role": "user", "content": []}]},  # ...or, with no turn, the system
    {
        "system": _system(ttl=None),
        "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "user", "content": []}],
    },
    {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "again", "cache_control": {}}]},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "again", "cache_control": {"type": "ephemeral"}}
                ],
            },
        ]
    },
    {"max_tokens": 0},  # invalid: an errored record
]


def _batch() -> list[dict[str, Any]]:
    """Every variant after a plain request and repeated, so each is both a cache hit and a
    neighbour of a head it must not be confused with."""
    out = []
    for round_ in range(2):
        for k, variant in enumerate(VARIANTS):
            for i in (2 * k, 2 * k + 1):
                params = _params(i, **variant) if i % 2 else _params(i)
                out.append({"custom_id": f"r{round_}-{i}", "params": params})
    return out


def test_analyze_with_heads_equals_analyze_alone() -> None:
    """Token counts, breakpoints (prefix hashes, TTLs, lookbacks), texts and digest of
    every request match the uncached computation, whatever came before it."""
    heads = prompt.Heads()
    for request in _batch():
        params = request["params"]
        if params.get("max_tokens") == 0:
            continue
        assert prompt.analyze(params, heads) == prompt.analyze(params), params


@pytest.mark.parametrize(
    "rules",
    [None, {"responses": [{"prompt_contains": "emoji🙂 \nClassify", "text": "scripted"}]}],
)
def test_records_equal_requests_summarised_one_by_one(rules: Any) -> None:
    reqs = _batch()
    responses = load_config(rules).responses
    alone = [make_record(r["custom_id"], r["params"], CTX, responses) for r in reqs]
    assert intake.records(copy.deepcopy(reqs), CTX, responses) == alone
    assert any(r.breakpoints for r in alone) and any(r.error_type for r in alone)
    assert any(r.text == "scripted" for r in alone) == (rules is not None)


def test_a_repeated_head_counts_as_often_as_it_appears() -> None:
    """The shared system prompt is counted once per request, not once per batch."""
    heads = prompt.Heads()
    first, second = (prompt.analyze(_params(i), heads) for i in (1, 2))
    system_tokens = prompt.text_tokens(SYSTEM)
    assert first.breakpoints[0].tokens == second.breakpoints[0].tokens == system_tokens
    assert second.tokens == system_tokens + prompt.text_tokens("Classify this document: 2 naïve")


def test_heads_are_bounded() -> None:
    heads = prompt.Heads()
    for i in range(3 * prompt.HEADS_KEPT):
        prompt.analyze(_params(i, system=f"system prompt number {i}"), heads)
    assert len(heads._kept) == prompt.HEADS_KEPT


def test_heads_with_numbers_are_not_kept() -> None:
    """`==` cannot tell 1 from 1.0 or true, so such heads are summarised every time."""
    heads = prompt.Heads()
    prompt.analyze(_params(1, tools=[_tool(1)]), heads)
    assert heads._kept == []


def test_automatic_mode_marks_the_system_prompt_when_no_turn_has_a_block() -> None:
    params = _params(
        1,
        system=_system(ttl=None),
        cache_control={"type": "ephemeral"},
        messages=[{"role": "user", "content": []}],
    )
    (mark,) = prompt.analyze(params, prompt.Heads()).breakpoints
    assert mark.tokens == prompt.text_tokens(SYSTEM) and mark.ttl == "5m"
