"""The usage figures of one succeeded request, kept as a compact tuple (a 100k-request
batch holds 100k of them) and expanded to the API's `usage` object only when served."""

from __future__ import annotations

from typing import Any, NamedTuple


class Usage(NamedTuple):
    input_tokens: int
    output_tokens: int
    cache_5m: int
    cache_1h: int
    cache_read: int
    inference_geo: str | None = None
    thinking_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_5m + self.cache_1h + self.cache_read

    def as_json(self) -> dict[str, Any]:
        """The `usage` object of contract section 7."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_5m + self.cache_1h,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_5m,
                "ephemeral_1h_input_tokens": self.cache_1h,
            },
            "service_tier": "batch",
            "inference_geo": self.inference_geo,
            "output_tokens_details": (
                {"thinking_tokens": self.thinking_tokens} if self.thinking_tokens else None
            ),
            # Always present in the SDKs' types, null when empty (contract 10b): batches
            # run no server tools and have no fast mode.
            "server_tool_use": None,
            "speed": None,
        }
