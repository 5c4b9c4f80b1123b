"""What the emulator needs from a request's prompt, computed once at create time so the
parsed body can be dropped: the token approximation, the cache breakpoints with a hash of
the prefix each one closes, a digest, and the words that prove results map to inputs.

Token rule (docs/emulator.md; the runner's estimator follows it): ceil(characters / 4) for
each text, 1,600 per image, 3,000 per non-text document, ceil(compact JSON length / 4) for
each tool definition and any other block. No per-message overhead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

IMAGE_TOKENS = 1_600
DOCUMENT_TOKENS = 3_000
WORDS_ECHOED = 8
LOOKBACK_BLOCKS = 20  # block boundaries the cache lookup checks before a breakpoint


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A cache_control marker: the prompt up to and including its block.

    `lookback` holds the earlier block boundaries the cache lookup also checks (contract
    8.1: about 20 blocks back from each breakpoint), nearest first, as (tokens, prefix
    hash). Only those after the previous marker are kept: that marker's own lookback
    reaches further back than this one's would.
    """

    tokens: int
    prefix_hash: str
    ttl: str
    lookback: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Prompt:
    tokens: int
    breakpoints: tuple[Breakpoint, ...]
    text: str
    digest: str
    last_user_words: str


def text_tokens(text: str) -> int:
    return -(-len(text) // 4)


def analyze(params: Mapping[str, Any]) -> Prompt:
    """Summarise a params mapping whose shape `params.check` has accepted."""
    hasher = hashlib.sha256(str(params.get("model")).encode())
    blocks = list(_blocks(params))
    auto = params.get("cache_control") if isinstance(params.get("cache_control"), dict) else None
    # Boundary hashes are only worth computing when something in the request is cached.
    cached = auto is not None or any(_marker(block) is not None for block, *_ in blocks)
    total, texts, marks = 0, [], []
    boundaries: list[tuple[int, str]] = []  # since the previous marker
    for i, (block, tokens, text, part) in enumerate(blocks):
        total += tokens
        if text:
            texts.append(text)
        hasher.update(part + b"\0")
        hasher.update(_canonical(block))
        marker = _marker(block)
        if marker is None and i == len(blocks) - 1:
            marker = auto
        if marker is not None:
            ttl = "1h" if marker.get("ttl") == "1h" else "5m"
            lookback = tuple(reversed(boundaries[-LOOKBACK_BLOCKS:]))
            marks.append(Breakpoint(total, _prefix_id(hasher), ttl, lookback))
            boundaries = []
        elif cached:
            boundaries.append((total, _prefix_id(hasher)))
    digest = hasher.hexdigest()[:12]
    return Prompt(total, tuple(marks), "\n".join(texts), digest, _last_user_words(params))


def markers(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every cache_control marker: on blocks, then the top-level one (automatic mode).
    `cache_control: null` marks nothing."""
    found = [m for m in (_marker(block) for block, *_ in _blocks(params)) if m is not None]
    top = params.get("cache_control")
    return [*found, top] if isinstance(top, dict) else found


def _marker(block: Mapping[str, Any]) -> Mapping[str, Any] | None:
    marker = block.get("cache_control")
    return marker if isinstance(marker, dict) else None


def _prefix_id(hasher: Any) -> str:
    # 128 bits identify a prefix well enough and halve what each boundary costs in memory.
    return str(hasher.copy().hexdigest()[:32])


def _blocks(params: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], int, str, bytes]]:
    """Tools, then system, then messages: the order the API builds its cache prefix in.
    Each block comes with the part of the prompt it sits in (tools, system, or the
    message's role), which the prefix hash includes: the same text as a system prompt or
    as a user turn, or in a user or an assistant turn, is a different prompt."""
    for tool in params.get("tools") or ():
        if isinstance(tool, dict):
            yield tool, _json_tokens(tool), "", b"tools"
    system = params.get("system")
    if isinstance(system, str):
        yield {"type": "text", "text": system}, text_tokens(system), system, b"system"
    elif isinstance(system, list):
        yield from (_content_block(b, b"system") for b in system if isinstance(b, dict))
    for message in params.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content, role = message.get("content"), str(message.get("role")).encode()
        if isinstance(content, str):
            yield {"type": "text", "text": content}, text_tokens(content), content, role
        elif isinstance(content, list):
            yield from (_content_block(b, role) for b in content if isinstance(b, dict))


def _content_block(
    block: Mapping[str, Any], part: bytes
) -> tuple[Mapping[str, Any], int, str, bytes]:
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return block, text_tokens(block["text"]), block["text"], part
    if kind == "image":
        return block, IMAGE_TOKENS, "", part
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            data = str(source.get("data", ""))
            return block, text_tokens(data), data, part
        return block, DOCUMENT_TOKENS, "", part
    return block, _json_tokens(block), "", part


def _json_tokens(block: Mapping[str, Any]) -> int:
    return -(-len(_canonical(block)) // 4)


def _canonical(block: Mapping[str, Any]) -> bytes:
    # The marker does not change the cached content, so it is left out of the prefix hash.
    if "cache_control" in block:
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return orjson.dumps(block, option=orjson.OPT_SORT_KEYS)


def _last_user_words(params: Mapping[str, Any]) -> str:
    for message in reversed(params.get("messages") or ()):
        if isinstance(message, dict) and message.get("role") == "user":
            # Only the start is needed; splitting a long prompt whole would cost real time.
            return " ".join(_message_text(message)[:400].split()[:WORDS_ECHOED])
    return ""


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""
