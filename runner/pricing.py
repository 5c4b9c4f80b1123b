"""Prices and the cost of a result (api-contract 8.3 and 8.4).

The table is package data (`runner/data/prices.json`) with its as-of date and a source
label per row. An unknown model has no price: callers show "cost unknown", never a guess.

Haiku 5.5 tier rule (the contract leaves the boundary unconfirmed): a request whose total
prompt (input + cache writes + cache reads) is at most 100,000 tokens is billed entirely at
the base tier; above 100,000, entirely at the long-prompt tier.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import orjson

from runner.spec.model import PriceOverride

BATCH_MULTIPLIER = 0.5
US_GEO_MULTIPLIER = 1.1
CACHE_WRITE_5M = 1.25  # x input, when an override leaves a cache price out
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1

_DATE_SUFFIX = re.compile(r"-(\d{8}|latest)$")
_VERSION = re.compile(r"^claude-[a-z]+-(\d+)(?:-(\d{1,2}))?$")


@dataclass(frozen=True)
class Prices:
    """USD per million tokens at standard rates, for one model."""

    model: str
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    us_geo_applies: bool  # the 1.1x US-only inference multiplier (Claude 4.6 and later)
    min_cacheable_tokens: int | None  # None: not known
    source: str
    as_of: str
    long_prompt: Prices | None = None  # Haiku 5.5: the tier above `long_prompt_above`
    long_prompt_above: int | None = None

    def for_prompt(self, prompt_tokens: int) -> Prices:
        """The prices of the tier a request with `prompt_tokens` in total is billed at."""
        above = self.long_prompt_above
        if self.long_prompt is not None and above is not None and prompt_tokens > above:
            return self.long_prompt
        return self


@functools.cache
@functools.cache  # package data: read and parse it once per process
def table() -> dict[str, Any]:
    """The packaged price table, as loaded from runner/data/prices.json."""
    data = resources.files("runner").joinpath("data/prices.json").read_bytes()
    loaded: dict[str, Any] = orjson.loads(data)
    return loaded


def as_of() -> str:
    """The date the price table was checked, e.g. `2026-11`."""
    return str(table()["as_of"])


def canonical_model(model: str) -> str:
    """`claude-haiku-4-5-20251001` -> `claude-haiku-4-5`: dated aliases share a price."""
    return _DATE_SUFFIX.sub("", model)


@functools.lru_cache(maxsize=256)  # called twice per collected result: parse the id once
def us_geo_applies(model: str) -> bool:
    """True for Claude 4.6 and later, read from the model id (`claude-<family>-<major>-<minor>`)."""
    match = _VERSION.match(canonical_model(model))
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2) or 0)) >= (4, 6)


@functools.cache
def _rows() -> dict[str, Mapping[str, Any]]:
    return {model_id: row for row in table()["models"] for model_id in row["ids"]}


def _from_row(model: str, row: Mapping[str, Any]) -> Prices:
    long = row.get("long_prompt")
    prices = Prices(
        model=model,
        input=row["input"],
        output=row["output"],
        cache_write_5m=row["cache_write_5m"],
        cache_write_1h=row["cache_write_1h"],
        cache_read=row["cache_read"],
        us_geo_applies=us_geo_applies(model),
        min_cacheable_tokens=row.get("min_cacheable_tokens"),
        source=row["source"],
        as_of=as_of(),
    )
    if long is None:
        return prices
    tier = replace(
        prices,
        input=long["input"],
        output=long["output"],
        cache_write_5m=long["cache_write_5m"],
        cache_write_1h=long["cache_write_1h"],
        cache_read=long["cache_read"],
    )
    return replace(prices, long_prompt=tier, long_prompt_above=long["above_tokens"])


@functools.lru_cache(maxsize=256)  # per result when collecting; Prices is immutable
def price_for(model: str, override: PriceOverride | None = None) -> Prices | None:
    """The prices of `model`: the job's `pricing:` override when given (missing cache prices
    default to 1.25x / 2x / 0.1x of input), else the table's row, else None (unknown)."""
    canonical = canonical_model(model)
    row = _rows().get(canonical)
    if override is None:
        return _from_row(canonical, row) if row is not None else None
    return Prices(
        model=canonical,
        input=override.input,
        output=override.output,
        cache_write_5m=_or(override.cache_write_5m, override.input * CACHE_WRITE_5M),
        cache_write_1h=_or(override.cache_write_1h, override.input * CACHE_WRITE_1H),
        cache_read=_or(override.cache_read, override.input * CACHE_READ),
        us_geo_applies=us_geo_applies(canonical),
        min_cacheable_tokens=row.get("min_cacheable_tokens") if row is not None else None,
        source="the job's pricing: override",
        as_of="job file",
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _n(usage: Mapping[str, Any], name: str) -> int:
    """A usage counter; null and missing are 0."""
    return int(usage.get(name) or 0)


def cache_writes(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(5m, 1h) cache write tokens; without the `cache_creation` split, all count as 5m."""
    split = usage.get("cache_creation")
    if isinstance(split, Mapping):
        return _n(split, "ephemeral_5m_input_tokens"), _n(split, "ephemeral_1h_input_tokens")
    return _n(usage, "cache_creation_input_tokens"), 0


def cost_usd(
    usage: Mapping[str, Any], prices: Prices, batch: bool = True, *, model: str | None = None
) -> float:
    """The cost in USD of one succeeded result from its `usage` (api-contract 8.4).

    `batch=False` gives what the same call would cost on the standard Messages API. `model`,
    when given, decides whether the US-geo multiplier can apply (else `prices` does).
    """
    return costs(usage, prices, model=model)[0 if batch else 1]


def costs(
    usage: Mapping[str, Any], prices: Prices, *, model: str | None = None
) -> tuple[float, float]:
    """(`cost_usd` at batch prices, `cost_usd` on the standard API) in one pass over `usage`:
    collect prices every result both ways, and reading the usage was most of the work."""
    write_5m, write_1h = cache_writes(usage)
    uncached, read = _n(usage, "input_tokens"), _n(usage, "cache_read_input_tokens")
    tier = prices.for_prompt(uncached + write_5m + write_1h + read)
    geo_applies = us_geo_applies(model) if model is not None else prices.us_geo_applies
    us = geo_applies and usage.get("inference_geo") == "us"
    return tier_costs(tier, (uncached, write_5m, write_1h, read, _n(usage, "output_tokens")), us)


def tier_costs(
    tier: Prices, tokens: tuple[int, int, int, int, int], us: bool
) -> tuple[float, float]:
    """(batch, standard) USD of `tokens` (uncached input, 5m and 1h cache writes, cache
    reads, output) all billed at `tier`; `us`: US-only inference, where it costs more. Costs
    are linear within a tier, so a plan sums the tokens of a tier and prices them once."""
    uncached, write_5m, write_1h, read, output = tokens
    per_million = (
        uncached * tier.input
        + write_5m * tier.cache_write_5m
        + write_1h * tier.cache_write_1h
        + read * tier.cache_read
        + output * tier.output
    )
    batch, standard = BATCH_MULTIPLIER, 1.0
    if us:
        batch *= US_GEO_MULTIPLIER
        standard *= US_GEO_MULTIPLIER
    return batch * per_million / 1e6, standard * per_million / 1e6
