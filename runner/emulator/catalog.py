"""The models the emulator knows: output caps, cache minimums, 300k-output eligibility and
batch prices (contract sections 8.1, 8.3 and 10). Kept here rather than shared with
runner.pricing so that the emulator is an independent check on the runner's own figures."""

from __future__ import annotations

from dataclasses import dataclass

from runner.emulator.usage import Usage

OUTPUT_300K_BETA = "output-300k-2026-03-24"
OUTPUT_300K_CAP = 300_000


@dataclass(frozen=True)
class Prices:
    """Standard (not batch) USD per million tokens; writes are 1.25x/2x of `input`."""

    input: float
    output: float
    cache_read: float


@dataclass(frozen=True)
class Model:
    id: str
    display_name: str
    line: str
    max_tokens: int
    cache_min: int
    output_300k: bool
    prices: Prices | None
    geo_multiplier: bool  # inference_geo "us" costs 1.1x from Claude 4.6 on
    context: int = 1_000_000


def _m(
    mid: str,
    name: str,
    cap: int,
    cache_min: int,
    p300k: bool,
    prices: Prices | None,
    geo: bool = True,
) -> Model:
    return Model(mid, name, name.split()[1].lower(), cap, cache_min, p300k, prices, geo)


_MODELS = [
    _m("claude-fable-5-2", "Claude Fable 5.2", 128_000, 512, False, Prices(8, 40, 0.20)),
    _m("claude-mythos-5-2", "Claude Mythos 5.2", 128_000, 512, False, Prices(8, 40, 0.20)),
    _m("claude-haiku-5-5", "Claude Haiku 5.5", 128_000, 512, False, Prices(0.10, 0.50, 0.01)),
    _m("claude-sonnet-5-5", "Claude Sonnet 5.5", 128_000, 512, True, Prices(2, 10, 0.20)),
    _m("claude-fable-5-1", "Claude Fable 5.1", 128_000, 512, False, Prices(10, 50, 0.25)),
    _m("claude-opus-5-5", "Claude Opus 5.5", 128_000, 512, True, Prices(4, 20, 0.20)),
    _m("claude-mythos-5-1", "Claude Mythos 5.1", 128_000, 512, False, Prices(10, 50, 0.25)),
    _m("claude-sonnet-5", "Claude Sonnet 5", 128_000, 1024, True, Prices(2, 10, 0.20)),
    _m("claude-fable-5", "Claude Fable 5", 128_000, 512, False, Prices(10, 50, 1.00)),
    _m("claude-mythos-5", "Claude Mythos 5", 128_000, 512, False, Prices(10, 50, 1.00)),
    _m("claude-opus-5", "Claude Opus 5", 128_000, 512, True, Prices(5, 25, 0.50)),
    _m("claude-opus-4-8", "Claude Opus 4.8", 128_000, 1024, False, Prices(5, 25, 0.50)),
    _m("claude-opus-4-7", "Claude Opus 4.7", 128_000, 2048, True, Prices(5, 25, 0.50)),
    _m("claude-mythos-preview", "Claude Mythos Preview", 128_000, 2048, False, None),
    _m("claude-opus-4-6", "Claude Opus 4.6", 128_000, 4096, True, Prices(5, 25, 0.50)),
    _m("claude-sonnet-4-6", "Claude Sonnet 4.6", 128_000, 1024, True, Prices(3, 15, 0.30)),
    _m("claude-haiku-4-5", "Claude Haiku 4.5", 64_000, 4096, False, Prices(1, 5, 0.10), False),
    _m("claude-opus-4-5", "Claude Opus 4.5", 64_000, 4096, False, Prices(5, 25, 0.50), False),
    _m("claude-sonnet-4-5", "Claude Sonnet 4.5", 64_000, 1024, False, Prices(3, 15, 0.30), False),
]
_ALIASES = {
    "claude-haiku-4-5-20251001": "claude-haiku-4-5",
    "claude-opus-4-5-20251101": "claude-opus-4-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
}
_BY_ID = {m.id: m for m in _MODELS}

# Haiku 5.5 bills prompts above 100k tokens at a higher tier (contract 8.3).
HAIKU_55_LONG = Prices(0.50, 2.50, 0.05)
HAIKU_55_TIER_TOKENS = 100_000


def all_models() -> list[Model]:
    """Newest first, the order the SDK's Model literal lists them in."""
    return list(_MODELS)


def find(model_id: str) -> Model | None:
    """The model for an id or a dated alias; None when unknown."""
    return _BY_ID.get(_ALIASES.get(model_id, model_id))


def output_cap(model: Model, betas: frozenset[str]) -> int:
    """The max_tokens ceiling for a batch request, lifted by the 300k beta where eligible."""
    if OUTPUT_300K_BETA in betas and model.output_300k:
        return OUTPUT_300K_CAP
    return model.max_tokens


def batch_cost_usd(model: Model, usage: Usage) -> float:
    """Contract 8.4: batch halves every category; caching multipliers stack; 0 if unpriced."""
    prices = model.prices
    if prices is None:
        return 0.0
    if model.id == "claude-haiku-5-5" and usage.prompt_tokens > HAIKU_55_TIER_TOKENS:
        prices = HAIKU_55_LONG
    total = (
        usage.input_tokens * prices.input
        + usage.cache_5m * prices.input * 1.25
        + usage.cache_1h * prices.input * 2.0
        + usage.cache_read * prices.cache_read
        + usage.output_tokens * prices.output
    )
    geo_us = usage.inference_geo == "us" and model.geo_multiplier
    return 0.5 * (1.1 if geo_us else 1.0) * total / 1e6
