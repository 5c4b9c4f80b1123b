"""Usage figures follow the prompt-caching rules (section 8) and the documented token rule;
scripted responses come from config `responses:` rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from anthropic import Anthropic

from runner.emulator import Emulator
from tests.emulator.conftest import sdk

SYSTEM = "s" * 6000  # 1,500 tokens: above Sonnet 4.5's 1,024-token minimum


def _cached(custom_id: str, question: str, ttl: str = "5m", system: str = SYSTEM) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "system": [
                {"type": "text", "text": system, "cache_control": {"type": "ephemeral", "ttl": ttl}}
            ],
            "messages": [{"role": "user", "content": question}],
        },
    }


def _usages(client: Anthropic, reqs: list[Any]) -> dict[str, Any]:
    batch = client.messages.batches.create(requests=reqs)
    lines = client.messages.batches.results(batch.id)
    return {line.custom_id: line.result.message.usage for line in lines}  # type: ignore[union-attr]


def test_first_use_writes_later_reads(client: Anthropic) -> None:
    usages = _usages(client, [_cached("a", "q" * 40), _cached("b", "q" * 80)])
    a, b = usages["a"], usages["b"]
    assert a.cache_creation_input_tokens == 1500 and a.cache_read_input_tokens == 0
    assert a.cache_creation is not None and a.cache_creation.ephemeral_5m_input_tokens == 1500
    assert a.cache_creation.ephemeral_1h_input_tokens == 0
    assert a.input_tokens == 10  # only the tokens after the last breakpoint
    assert b.cache_read_input_tokens == 1500 and b.cache_creation_input_tokens == 0
    assert b.input_tokens == 20 and b.service_tier == "batch"


def test_ttl_expiry_and_one_hour_split(client: Anthropic, emu: Emulator) -> None:
    """After 6 minutes a 5m entry is gone; a 1h entry is still read."""
    _usages(client, [_cached("a", "x"), _cached("h", "x", ttl="1h", system="h" * 6000)])
    emu.advance(360)
    usages = _usages(client, [_cached("b", "y"), _cached("i", "y", ttl="1h", system="h" * 6000)])
    assert usages["b"].cache_creation_input_tokens == 1500
    assert usages["i"].cache_read_input_tokens == 1500
    first = _usages(client, [_cached("j", "z", ttl="1h", system="j" * 6000)])["j"]
    assert first.cache_creation.ephemeral_1h_input_tokens == 1500
    assert first.cache_creation.ephemeral_5m_input_tokens == 0


def test_below_minimum_is_not_cached(client: Anthropic) -> None:
    usages = _usages(
        client, [_cached("a", "x", system="s" * 400), _cached("b", "x", system="s" * 400)]
    )
    for usage in usages.values():
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
        assert usage.input_tokens == 101


def test_automatic_mode_top_level_cache_control(client: Anthropic) -> None:
    """A top-level cache_control caches the whole prompt up to the last block."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "user", "content": "w" * 8000}],
    }
    usages = _usages(client, [{"custom_id": c, "params": params} for c in ("a", "b")])
    assert usages["a"].cache_creation_input_tokens == 2000 and usages["a"].input_tokens == 0
    assert usages["b"].cache_read_input_tokens == 2000


def test_max_tokens_truncates(client: Anthropic) -> None:
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 2,
        "messages": [{"role": "user", "content": "hi"}],
    }
    batch = client.messages.batches.create(requests=[{"custom_id": "t", "params": params}])
    (line,) = client.messages.batches.results(batch.id)
    message = line.result.message  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_cost_follows_batch_prices(client: Anthropic, emu: Emulator) -> None:
    """Sonnet 4.5: $3/$15 per MTok, halved for batches; 5m writes at 1.25x, reads at 0.1x."""
    usages = _usages(client, [_cached("a", "q" * 40), _cached("b", "q" * 40)])
    out = sum(u.output_tokens for u in usages.values())
    expected = 0.5 * (20 * 3 + 1500 * 3 * 1.25 + 1500 * 0.30 + out * 15) / 1e6
    assert emu.stats()["cost_usd"] == pytest.approx(expected)


def test_response_rules(emulator_factory: Callable[..., Emulator]) -> None:
    """Rules script text, stop_reason or an errored type, by custom_id regex or prompt."""
    emu = emulator_factory(
        {
            "responses": [
                {"custom_id": "^txt-", "text": "scripted answer"},
                {"prompt_contains": "refuse me", "text": "no", "stop_reason": "refusal"},
                {"custom_id": "^err-", "errored": "overloaded_error"},
            ]
        }
    )
    reqs = [
        {
            "custom_id": cid,
            "params": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": text}],
            },
        }
        for cid, text in [("txt-1", "a"), ("r-1", "please refuse me"), ("err-1", "b"), ("n", "c")]
    ]
    with sdk(emu, max_retries=0) as client:
        batch = client.messages.batches.create(requests=reqs)
        results = {
            line.custom_id: line.result for line in client.messages.batches.results(batch.id)
        }
    assert results["txt-1"].message.content[0].text == "scripted answer"  # type: ignore[union-attr]
    assert results["r-1"].message.stop_reason == "refusal"  # type: ignore[union-attr]
    assert results["err-1"].error.error.type == "overloaded_error"  # type: ignore[union-attr]
    assert "Emulated reply" in results["n"].message.content[0].text  # type: ignore[union-attr]


def test_extended_thinking_block_first(client: Anthropic) -> None:
    """With thinking on, a thinking block precedes the text and counts as output."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "think first"}],
    }
    bad = {**params, "thinking": {"type": "enabled", "budget_tokens": 5000}}
    batch = client.messages.batches.create(
        requests=[{"custom_id": "t", "params": params}, {"custom_id": "b", "params": bad}]
    )
    results = {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}
    message = results["t"].message  # type: ignore[union-attr]
    assert [block.type for block in message.content] == ["thinking", "text"]
    details = message.usage.output_tokens_details
    assert details is not None and 0 < details.thinking_tokens < message.usage.output_tokens
    assert "budget_tokens" in results["b"].error.error.message  # type: ignore[union-attr]
