"""Prompt caching (contract section 8.1): a prefix closed by a cache_control breakpoint at or
above the model's minimum length is written on first use and read by later requests while
its TTL lasts; a read refreshes the TTL. Input tokens are those after the last breakpoint."""

from __future__ import annotations

from typing import Any

from runner.emulator import catalog
from runner.emulator.responder import Record

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


class PromptCache:
    """Prefix hash -> emulated time its entry expires. Shared by all batches, as a real
    organisation's cache is."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def usage(self, record: Record, now: float) -> dict[str, Any]:
        """Usage of one succeeded request processed at `now`, updating the cache."""
        model = catalog.find(record.model)
        minimum = model.cache_min if model else 1024
        marks = [b for b in record.breakpoints if b.tokens >= minimum]
        hit = next((i for i in range(len(marks) - 1, -1, -1) if self._live(marks[i], now)), -1)
        read = marks[hit].tokens if hit >= 0 else 0
        writes = {"5m": 0, "1h": 0}
        previous = read
        for i, mark in enumerate(marks):
            if i > hit:
                writes[mark.ttl] += mark.tokens - previous
                previous = mark.tokens
            self._expiry[mark.prefix_hash] = max(
                self._expiry.get(mark.prefix_hash, 0.0), now + TTL_SECONDS[mark.ttl]
            )
        cached = marks[-1].tokens if marks else 0
        return {
            "input_tokens": record.prompt_tokens - cached,
            "output_tokens": record.output_tokens,
            "cache_creation_input_tokens": writes["5m"] + writes["1h"],
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": writes["5m"],
                "ephemeral_1h_input_tokens": writes["1h"],
            },
            "service_tier": "batch",
            "inference_geo": record.inference_geo,
        }

    def _live(self, mark: Any, now: float) -> bool:
        return bool(self._expiry.get(mark.prefix_hash, 0.0) > now)
