"""Fidelity audit, prompt caching and cost (contract section 8): the lookup, what is written
and read, time order across batches, and cost_usd against hand-computed figures. Tests that
found a divergence say so in their docstring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from anthropic import Anthropic

from runner.emulator import Emulator
from runner.emulator.params import Context
from runner.emulator.responder import Record, make_record
from tests.emulator.conftest import results_of, sdk


def _cached(cid: str, model: str, ttl: str, **extra: Any) -> dict[str, Any]:
    system = [
        {"type": "text", "text": "s" * 6000, "cache_control": {"type": "ephemeral", "ttl": ttl}}
    ]
    params = {
        "model": model,
        "max_tokens": 100,
        "system": system,
        "messages": [{"role": "user", "content": "q" * 40}],
        **extra,
    }
    return {"custom_id": cid, "params": params}


def test_null_cache_control_is_not_a_breakpoint(client: Anthropic) -> None:
    """8.1: `cache_control: null` marks nothing; found: it counted towards the limit of 4."""
    block = {"type": "text", "text": "x", "cache_control": None}
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [block] * 5}],
    }
    assert results_of(client, [{"custom_id": "n", "params": params}])["n"].type == "succeeded"


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ({"type": "persistent"}, "cache_control.type"),
        ({"type": "ephemeral", "ttl": "2h"}, "cache_control.ttl"),
    ],
)
def test_bad_cache_control_is_errored(
    client: Anthropic, marker: dict[str, Any], message: str
) -> None:
    """8.1: `ephemeral` is the only type and the TTL is 5m or 1h. Found: anything was
    accepted, an unknown ttl silently becoming 5m."""
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": marker}]}
        ],
    }
    result = results_of(client, [{"custom_id": "c", "params": params}])["c"]
    assert result.type == "errored" and message in result.error.error.message


def test_automatic_mode_reads_the_earlier_turn(client: Anthropic) -> None:
    """8.1: the automatic breakpoint moves forward with the conversation and the lookup
    checks earlier block boundaries (~20 blocks back), so turn 2 reads what turn 1 wrote.
    Found: only exact breakpoint positions were looked up, so turn 2 never hit."""

    def turn(cid: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "cache_control": {"type": "ephemeral"},
            "messages": messages,
        }
        return {"custom_id": cid, "params": params}

    first = [{"role": "user", "content": "w" * 8000}]
    second = [*first, {"role": "assistant", "content": "okay"}, {"role": "user", "content": "more"}]
    one = results_of(client, [turn("one", first)])["one"].message.usage
    two = results_of(client, [turn("two", second)])["two"].message.usage
    assert one.cache_creation_input_tokens == 2000
    assert two.cache_read_input_tokens == 2000
    assert two.cache_creation_input_tokens == 2 and two.input_tokens == 0


def test_explicit_breakpoint_looks_back_to_an_earlier_write(client: Anthropic) -> None:
    """8.1: a breakpoint on the user turn finds the system prefix another request cached."""
    system = "s" * 6000
    marked = {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
    plain = {"type": "text", "text": system}

    def req(cid: str, sys_block: dict[str, Any], question: dict[str, Any]) -> dict[str, Any]:
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "system": [sys_block],
            "messages": [{"role": "user", "content": [question]}],
        }
        return {"custom_id": cid, "params": params}

    results_of(client, [req("w", marked, {"type": "text", "text": "first"})])
    late = {"type": "text", "text": "q" * 40, "cache_control": {"type": "ephemeral"}}
    usage = results_of(client, [req("r", plain, late)])["r"].message.usage
    assert usage.cache_read_input_tokens == 1500
    assert usage.cache_creation_input_tokens == 10 and usage.input_tokens == 0


def test_same_text_in_another_part_of_the_prompt_is_another_prefix(client: Anthropic) -> None:
    """The prefix is the rendered prompt: a system prompt's text sent as a user turn is not
    a cache hit (found: only block contents were hashed, not where they sit)."""
    text = {"type": "text", "text": "s" * 6000, "cache_control": {"type": "ephemeral"}}
    as_system = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": [text],
        "messages": [{"role": "user", "content": "q"}],
    }
    as_user = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [text]}],
    }
    results_of(client, [{"custom_id": "s", "params": as_system}])
    usage = results_of(client, [{"custom_id": "u", "params": as_user}])["u"].message.usage
    assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == 1500


def test_reading_a_longer_prefix_does_not_create_shorter_entries(client: Anthropic) -> None:
    """A breakpoint inside a prefix that was read costs nothing and is not written, so a
    later request ending there misses. Found: every breakpoint got a free cache entry."""
    system = "s" * 6000
    question = "q" * 6000

    def req(cid: str, on_system: bool, on_question: bool) -> dict[str, Any]:
        mark = {"cache_control": {"type": "ephemeral"}}
        sys_block = {"type": "text", "text": system, **(mark if on_system else {})}
        q_block = {"type": "text", "text": question, **(mark if on_question else {})}
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "system": [sys_block],
            "messages": [{"role": "user", "content": [q_block]}],
        }
        return {"custom_id": cid, "params": params}

    results_of(client, [req("long", False, True)])  # writes system + question (3,000)
    both = results_of(client, [req("both", True, True)])["both"].message.usage
    assert both.cache_read_input_tokens == 3000 and both.cache_creation_input_tokens == 0
    short = results_of(client, [req("short", True, False)])["short"].message.usage
    assert short.cache_read_input_tokens == 0 and short.cache_creation_input_tokens == 1500


def test_lookback_is_bounded_to_20_blocks(client: Anthropic) -> None:
    """A cached prefix more than 20 blocks before the breakpoint is not found."""
    head = [{"role": "user", "content": "w" * 8000}]
    filler = [
        {"role": "assistant" if i % 2 == 0 else "user", "content": f"turn {i}"} for i in range(21)
    ]

    def req(cid: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "cache_control": {"type": "ephemeral"},
            "messages": messages,
        }
        return {"custom_id": cid, "params": params}

    results_of(client, [req("a", head)])
    usage = results_of(client, [req("b", head + filler)])["b"].message.usage
    assert usage.cache_read_input_tokens == 0


def test_cache_follows_emulated_time_across_batches(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """Requests are processed in emulated time order across overlapping batches: the first
    request to reach the cache writes it, whichever batch ends first. Found: the cache was
    updated batch by batch in end order, so a later-ending batch read an entry written at a
    later emulated instant and the earlier request was billed the write."""
    emu = emulator_factory({"latency": {"min_s": 100, "max_s": 100}})
    with sdk(emu, max_retries=0) as client:
        a = client.messages.batches.create(requests=[_cached("a0", "claude-sonnet-4-5", "5m")])
        emu.advance(1)  # b's 100 requests run at 2, 3, ... 101 s; a's one request at 100 s
        b_reqs = [_cached(f"b{i}", "claude-sonnet-4-5", "5m") for i in range(100)]
        b = client.messages.batches.create(requests=b_reqs)
        emu.advance(200)
        usage_a = next(iter(client.messages.batches.results(a.id))).result.message.usage  # type: ignore[union-attr]
        usage_b = {
            line.custom_id: line.result.message.usage  # type: ignore[union-attr]
            for line in client.messages.batches.results(b.id)
        }
    assert usage_b["b0"].cache_creation_input_tokens == 1500
    assert usage_a.cache_read_input_tokens == 1500 and usage_a.cache_creation_input_tokens == 0


def test_record_with_lookback_round_trips_through_state() -> None:
    """--state keeps each breakpoint's lookback, so a batch that ends after a restart
    still finds earlier prefixes; rows from before lookback existed still load."""
    messages = [
        {"role": "user", "content": "a" * 50},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "cache_control": {"type": "ephemeral"},
        "messages": messages,
    }
    record = make_record("x", params, Context("2026-10-21", frozenset()), ())
    assert len(record.breakpoints[0].lookback) == 2
    assert Record.from_row(orjson.loads(orjson.dumps(record.to_row()))) == record
    old_row = record.to_row()
    old_row[-1] = [bp[:3] for bp in old_row[-1]]
    assert Record.from_row(old_row).breakpoints[0].lookback == ()


@pytest.mark.parametrize(
    ("model", "ttl", "extra", "p_in", "p_out", "p_read", "write_x", "m"),
    [
        # Sonnet 4.6, 1h write (2x), inference_geo us (1.1x on Claude 4.6+), read 0.1x.
        ("claude-sonnet-4-6", "1h", {"inference_geo": "us"}, 3, 15, 0.30, 2.0, 0.55),
        # Fable 5.1: reads at the 0.025x exception; 5m write 1.25x.
        ("claude-fable-5-1", "5m", {}, 10, 50, 0.25, 1.25, 0.5),
        # Sonnet 4.5 is before 4.6: inference_geo us costs nothing extra.
        ("claude-sonnet-4-5", "5m", {"inference_geo": "us"}, 3, 15, 0.30, 1.25, 0.5),
    ],
)
def test_cost_by_hand(
    emu: Emulator,
    client: Anthropic,
    model: str,
    ttl: str,
    extra: dict[str, Any],
    p_in: float,
    p_out: float,
    p_read: float,
    write_x: float,
    m: float,
) -> None:
    """One write, one read of a 1,500-token system prompt, 10 input tokens each."""
    results = results_of(client, [_cached("w", model, ttl, **extra)])
    results.update(results_of(client, [_cached("r", model, ttl, **extra)]))
    usage_w, usage_r = results["w"].message.usage, results["r"].message.usage
    assert usage_r.cache_read_input_tokens == 1500 and usage_w.cache_creation_input_tokens == 1500
    out = usage_w.output_tokens + usage_r.output_tokens
    expected = m * (20 * p_in + 1500 * p_in * write_x + 1500 * p_read + out * p_out) / 1e6
    assert emu.stats()["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_haiku_55_long_prompt_tier(emu: Emulator, client: Anthropic) -> None:
    """Haiku 5.5 above 100k prompt tokens bills $0.50/$2.50 (batch: half)."""
    params = {
        "model": "claude-haiku-5-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "z" * 400_008}],
    }
    usage = results_of(client, [{"custom_id": "h", "params": params}])["h"].message.usage
    assert usage.input_tokens == 100_002
    expected = 0.5 * (100_002 * 0.50 + usage.output_tokens * 2.50) / 1e6
    assert emu.stats()["cost_usd"] == pytest.approx(expected, rel=1e-9)
