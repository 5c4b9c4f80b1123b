"""runner.pricing: the packaged table and the cost formula, against hand-computed figures.

Sonnet 4.6 (USD/MTok): input 3, output 15, 5m write 3.75, 1h write 6, read 0.30.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner import pricing
from runner.spec.model import PriceOverride

SONNET = pricing.price_for("claude-sonnet-4-6")


def _cost(usage: dict[str, Any], **kwargs: Any) -> float:
    assert SONNET is not None
    return pricing.cost_usd(usage, SONNET, **kwargs)


def test_table_is_dated_package_data_with_sources() -> None:
    assert pricing.as_of() == "2026-11"
    for row in pricing.table()["models"]:
        assert row["source"] and row["ids"]


def test_no_cache() -> None:
    """0.5 x (1000 x 3 + 500 x 15) / 1e6."""
    usage = {"input_tokens": 1000, "output_tokens": 500}
    assert _cost(usage) == pytest.approx(0.00525)
    assert _cost(usage, batch=False) == pytest.approx(0.0105)


def test_5m_cache_write() -> None:
    """0.5 x (100 x 3 + 2000 x 3.75 + 10 x 15) / 1e6."""
    usage = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 10,
    }
    assert _cost(usage) == pytest.approx(0.003975)


def test_1h_cache_write() -> None:
    """0.5 x (100 x 3 + 2000 x 6 + 10 x 15) / 1e6."""
    usage = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 10,
    }
    assert _cost(usage) == pytest.approx(0.006225)


def test_cache_write_without_the_split_counts_as_5m() -> None:
    usage = {"input_tokens": 100, "cache_creation_input_tokens": 2000, "output_tokens": 10}
    assert _cost(usage) == pytest.approx(0.003975)


def test_cache_read() -> None:
    """0.5 x (100 x 3 + 2000 x 0.30 + 10 x 15) / 1e6."""
    usage = {"input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 10}
    assert _cost(usage) == pytest.approx(0.000525)


def test_null_counters_are_zero() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 0, "cache_read_input_tokens": None}
    assert _cost({**usage, "cache_creation": None}) == pytest.approx(0.0015)


def test_us_geo_multiplier_for_claude_4_6_and_later() -> None:
    """1.1 x the no-cache figure on Sonnet 4.6; not on Sonnet 4.5 (before 4.6)."""
    usage = {"input_tokens": 1000, "output_tokens": 500, "inference_geo": "us"}
    assert _cost(usage) == pytest.approx(0.005775)
    older = pricing.price_for("claude-sonnet-4-5")
    assert older is not None
    assert pricing.cost_usd(usage, older) == pytest.approx(0.00525)
    assert _cost({**usage, "inference_geo": "global"}) == pytest.approx(0.00525)


def test_model_argument_decides_the_geo_rule() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "inference_geo": "us"}
    assert _cost(usage, model="claude-sonnet-4-5") == pytest.approx(0.00525)


@pytest.mark.parametrize(
    ("model", "applies"),
    [
        ("claude-opus-4-6", True),
        ("claude-sonnet-5", True),
        ("claude-haiku-5-5", True),
        ("claude-opus-4-5-20251101", False),
        ("claude-haiku-4-5", False),
        ("claude-opus-4", False),
        ("claude-mythos-preview", False),
    ],
)
def test_us_geo_applies(model: str, applies: bool) -> None:
    assert pricing.us_geo_applies(model) is applies


def test_unknown_model_has_no_price() -> None:
    assert pricing.price_for("claude-mythos-preview") is None
    assert pricing.price_for("gpt-5") is None


def test_dated_alias_shares_the_price() -> None:
    dated = pricing.price_for("claude-haiku-4-5-20251001")
    assert dated is not None and dated.input == 1 and dated.output == 5
    assert dated.model == "claude-haiku-4-5"


def test_cache_read_exception_from_the_table() -> None:
    """Opus 5.5 reads at 0.05x of input (0.20 of 4), not 0.1x."""
    prices = pricing.price_for("claude-opus-5-5")
    assert prices is not None and prices.cache_read == 0.20


def test_override_with_default_cache_prices() -> None:
    """Input 2, output 8: 5m write 2.5, 1h 4, read 0.2; 0.5 x (2000+2500+200+8000) / 1e6."""
    prices = pricing.price_for("my-model", PriceOverride(input=2, output=8))
    assert prices is not None
    assert (prices.cache_write_5m, prices.cache_write_1h, prices.cache_read) == (2.5, 4, 0.2)
    usage = {
        "input_tokens": 1000,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 1000,
        "output_tokens": 1000,
    }
    assert pricing.cost_usd(usage, prices) == pytest.approx(0.00635)


def test_override_wins_over_the_table() -> None:
    prices = pricing.price_for(
        "claude-sonnet-4-6", PriceOverride(input=1, output=2, cache_read=0.5)
    )
    assert prices is not None and prices.input == 1 and prices.cache_read == 0.5
    assert prices.min_cacheable_tokens == 1024  # still known from the table


def test_haiku_5_5_tiers_by_total_prompt() -> None:
    """At most 100,000 prompt tokens: base tier; above: the whole request at the long tier."""
    prices = pricing.price_for("claude-haiku-5-5")
    assert prices is not None
    base = pricing.cost_usd({"input_tokens": 100_000, "output_tokens": 0}, prices)
    assert base == pytest.approx(0.5 * 100_000 * 0.10 / 1e6)
    usage = {"input_tokens": 1, "cache_read_input_tokens": 100_000, "output_tokens": 10}
    long = pricing.cost_usd(usage, prices)
    assert long == pytest.approx(0.5 * (1 * 0.50 + 100_000 * 0.05 + 10 * 2.50) / 1e6)


def _cost_as_released(
    usage: dict[str, Any], prices: pricing.Prices, batch: bool, model: str
) -> float:
    """The formula as it was before `costs` priced both ways in one pass, kept verbatim:
    stored costs and reports must not move by one ulp."""
    write_5m, write_1h = pricing.cache_writes(usage)
    uncached = int(usage.get("input_tokens") or 0)
    read = int(usage.get("cache_read_input_tokens") or 0)
    tier = prices.for_prompt(uncached + write_5m + write_1h + read)
    multiplier = pricing.BATCH_MULTIPLIER if batch else 1.0
    if pricing.us_geo_applies(model) and usage.get("inference_geo") == "us":
        multiplier *= pricing.US_GEO_MULTIPLIER
    per_million = (
        uncached * tier.input
        + write_5m * tier.cache_write_5m
        + write_1h * tier.cache_write_1h
        + read * tier.cache_read
        + int(usage.get("output_tokens") or 0) * tier.output
    )
    return multiplier * per_million / 1e6


_count = st.one_of(st.none(), st.integers(0, 300_000))


@given(
    model=st.sampled_from(["claude-sonnet-4-6", "claude-haiku-5-5", "claude-haiku-4-5"]),
    counts=st.fixed_dictionaries(
        {"input_tokens": _count, "output_tokens": _count, "cache_read_input_tokens": _count}
    ),
    split=st.one_of(st.none(), st.tuples(st.integers(0, 300_000), st.integers(0, 300_000)), _count),
    geo=st.sampled_from([None, "us", "global"]),
)
def test_costs_are_exactly_the_released_formula(
    model: str, counts: dict[str, Any], split: Any, geo: str | None
) -> None:
    """Both prices of one pass equal, bit for bit, what `cost_usd` computed each way."""
    usage: dict[str, Any] = {**counts, "inference_geo": geo}
    if isinstance(split, tuple):
        five, one = split
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": five,
            "ephemeral_1h_input_tokens": one,
        }
    else:
        usage["cache_creation_input_tokens"] = split
    prices = pricing.price_for(model)
    assert prices is not None
    expected = tuple(_cost_as_released(usage, prices, b, model) for b in (True, False))
    assert pricing.costs(usage, prices, model=model) == expected
    assert pricing.costs(usage, prices) == expected  # the model's own row decides the same
    both = [pricing.cost_usd(usage, prices, b, model=model) for b in (True, False)]
    assert tuple(both) == expected


def test_reported_cache_writes_follow_the_priced_split() -> None:
    """An empty `cache_creation` split prices no cache writes; the report must count none
    either (it used to count cache_creation_input_tokens as 5-minute writes)."""
    from runner.executor.collect import _tokens

    usage = {"input_tokens": 5, "cache_creation_input_tokens": 40, "cache_creation": {}}
    assert _tokens(usage)[1:3] == pricing.cache_writes(usage) == (0, 0)
    older = {"input_tokens": 5, "cache_creation_input_tokens": 40}
    assert _tokens(older)[1:3] == pricing.cache_writes(older) == (40, 0)
