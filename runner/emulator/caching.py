"""Prompt caching (contract section 8.1): a prefix closed by a cache_control breakpoint at or
above the model's minimum length is written on first use and read by later requests while
its TTL lasts; a read refreshes the TTL. Input tokens are those after the last breakpoint."""

from __future__ import annotations

from runner.emulator import catalog, prompt
from runner.emulator.prompt import Breakpoint
from runner.emulator.responder import Record
from runner.emulator.usage import Usage

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


class PromptCache:
    """Prefix hash -> emulated time its entry expires. Shared by all batches, as a real
    organisation's cache is."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def usage(self, record: Record, now: float) -> Usage:
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
        return Usage(
            record.prompt_tokens - cached,
            record.output_tokens,
            writes["5m"],
            writes["1h"],
            read,
            record.inference_geo,
            prompt.text_tokens(record.thinking) if record.thinking else 0,
        )

    def _live(self, mark: Breakpoint, now: float) -> bool:
        return bool(self._expiry.get(mark.prefix_hash, 0.0) > now)
