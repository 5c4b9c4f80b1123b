"""Prompt caching (contract section 8.1): a prefix closed by a cache_control breakpoint at or
above the model's minimum length is written on first use and read by later requests while
its TTL lasts; a read refreshes the TTL. A lookup tries each breakpoint and the ~20 block
boundaries before it, so a breakpoint that moved forward (automatic mode, a longer
conversation) still reads the prefix an earlier request wrote. Input tokens are those after
the last breakpoint."""

from __future__ import annotations

from runner.emulator import catalog, prompt
from runner.emulator.prompt import Breakpoint
from runner.emulator.responder import Record
from runner.emulator.usage import Usage

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


class PromptCache:
    """Prefix hash -> (emulated time its entry expires, its TTL in seconds). Shared by all
    batches, as a real organisation's cache is."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, float]] = {}

    def usage(self, record: Record, now: float) -> Usage:
        """Usage of one succeeded request processed at `now`, updating the cache."""
        model = catalog.find(record.model)
        minimum = model.cache_min if model else 1024
        marks = [b for b in record.breakpoints if b.tokens >= minimum]
        read, hit = self._lookup(marks, minimum, now)
        writes = {"5m": 0, "1h": 0}
        previous = read
        for mark in marks:
            # Breakpoints inside the prefix just read are neither written nor refreshed:
            # only the entry read is, so they stay misses for a request that stops there.
            if mark.tokens > read:
                writes[mark.ttl] += mark.tokens - previous
                previous = mark.tokens
                self._keep(mark.prefix_hash, now, TTL_SECONDS[mark.ttl])
        if hit is not None:
            self._keep(hit, now, self._entries[hit][1])  # a read refreshes the entry's TTL
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

    def _lookup(self, marks: list[Breakpoint], minimum: int, now: float) -> tuple[int, str | None]:
        """The longest live cached prefix: each breakpoint, then the block boundaries
        before it (nearest first), from the last breakpoint backwards."""
        for mark in reversed(marks):
            for tokens, key in ((mark.tokens, mark.prefix_hash), *mark.lookback):
                if tokens >= minimum and self._live(key, now):
                    return tokens, key
        return 0, None

    def _live(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry[0] > now

    def _keep(self, key: str, now: float, ttl: float) -> None:
        expires = self._entries.get(key, (0.0, ttl))[0]
        self._entries[key] = (max(expires, now + ttl), ttl)
