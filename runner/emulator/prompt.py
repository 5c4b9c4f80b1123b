"""What the emulator needs from a request's prompt, computed once at create time so the
parsed body can be dropped: the token approximation, the cache breakpoints with a hash of
the prefix each one closes, a digest, and the words that prove results map to inputs.

Token rule (docs/emulator.md; the runner's estimator follows it): ceil(characters / 4) for
each text, 1,600 per image, 3,000 per non-text document, ceil(compact JSON length / 4) for
each tool definition and any other block. No per-message overhead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

IMAGE_TOKENS = 1_600
DOCUMENT_TOKENS = 3_000
WORDS_ECHOED = 8
LOOKBACK_BLOCKS = 20  # block boundaries the cache lookup checks before a breakpoint
HEADS_KEPT = 8  # distinct request heads a batch's intake keeps summarised

Block = tuple[Mapping[str, Any], int, str, bytes]  # a block, its tokens, its text, its part


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
    texts: tuple[str, ...]
    digest: str
    last_user_words: str

    @property
    def text(self) -> str:
        """Every text of the prompt, one after the other: what `prompt_contains` searches.
        Joined only when asked for: most batches have no responses rules."""
        return "\n".join(self.texts)


def text_tokens(text: str) -> int:
    return -(-len(text) // 4)


def analyze(params: Mapping[str, Any], heads: Heads | None = None) -> Prompt:
    """Summarise a params mapping whose shape `params.check` has accepted. With `heads`
    (one per batch), requests that share a head summarise it once."""
    turns = list(_turn_blocks(params))
    top = params.get("cache_control")
    auto = top if isinstance(top, dict) else None
    if not turns:
        chain = _head(params, auto)  # the head holds the last block: automatic mode marks it
    else:
        chain = heads.chain(params) if heads is not None else _head(params)
    # Boundary hashes are only worth computing when something in the request is cached,
    # and never for the last block: no marker follows it to look back at it. (A head
    # computes its own always: kept by `heads`, it may serve requests that cache.)
    cached = auto is not None or bool(chain.marks) or any(_marker(b) is not None for b, *_ in turns)
    chain.add_all(turns, auto, boundaries=len(turns) - 1 if cached else 0)
    digest = chain.hasher.hexdigest()[:12]
    words = _last_user_words(params)
    return Prompt(chain.tokens, tuple(chain.marks), tuple(chain.texts), digest, words)


class Heads:
    """The summaries of the recent distinct heads (model, tools and system: what comes
    before the messages) of one batch's requests. A batch nearly always repeats one head,
    such as a 6 KB cached system prompt in each of 28k requests: it is then serialised,
    hashed and counted once instead of once per request.

    A head is reused only when it is `==` to the new one, which proves them identical only
    for strings (1, 1.0 and true are equal but serialise, so hash, differently); so only
    heads made of strings alone, the usual system prompt, are kept. At most HEADS_KEPT,
    the most recently used first: a miss costs a few comparisons that stop at the first
    differing length or character.
    """

    def __init__(self) -> None:
        self._kept: list[tuple[tuple[Any, Any, Any], _Chain]] = []

    def chain(self, params: Mapping[str, Any]) -> _Chain:
        """A new chain holding the head of `params`, for its messages to be added to."""
        key = (params.get("model"), params.get("tools"), params.get("system"))
        for i, (seen, chain) in enumerate(self._kept):
            if seen == key:
                if i:
                    self._kept.insert(0, self._kept.pop(i))
                return chain.copy()
        chain = _head(params)
        if _strings_only(key):
            self._kept.insert(0, (key, chain))
            del self._kept[HEADS_KEPT:]
        return chain.copy()


def _strings_only(value: Any) -> bool:
    if isinstance(value, str) or value is None:
        return True
    if isinstance(value, dict):
        return all(_strings_only(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_strings_only(v) for v in value)
    return False


class _Chain:
    """A prompt summarised block by block in cache prefix order: its tokens and texts so
    far, the breakpoints closed so far, the block boundaries since the last one (for the
    lookback of the next) and the hash of the prefix."""

    __slots__ = ("boundaries", "hasher", "marks", "texts", "tokens")

    def __init__(self, model: Any) -> None:
        self.hasher = hashlib.sha256(str(model).encode())
        self.tokens = 0
        self.texts: list[str] = []
        self.marks: list[Breakpoint] = []
        self.boundaries: list[tuple[int, str]] = []

    def copy(self) -> _Chain:
        new = _Chain.__new__(_Chain)
        new.hasher = self.hasher.copy()
        new.tokens = self.tokens
        new.texts = self.texts.copy()
        new.marks = self.marks.copy()
        # Only the lookback's reach is ever read back.
        new.boundaries = self.boundaries[-LOOKBACK_BLOCKS:]
        return new

    def add_all(
        self, blocks: Sequence[Block], auto: Mapping[str, Any] | None, boundaries: int
    ) -> None:
        """Add `blocks`, the last one marked by `auto` unless it has a marker of its own;
        the boundaries of the first `boundaries` unmarked ones are kept."""
        last = len(blocks) - 1
        for i, (block, tokens, text, part) in enumerate(blocks):
            self.tokens += tokens
            if text:
                self.texts.append(text)
            self.hasher.update(part + b"\0")
            self.hasher.update(_canonical(block))
            marker = _marker(block)
            if marker is None and i == last:
                marker = auto
            if marker is not None:
                ttl = "1h" if marker.get("ttl") == "1h" else "5m"
                lookback = tuple(reversed(self.boundaries[-LOOKBACK_BLOCKS:]))
                self.marks.append(Breakpoint(self.tokens, _prefix_id(self.hasher), ttl, lookback))
                self.boundaries = []
            elif i < boundaries:
                self.boundaries.append((self.tokens, _prefix_id(self.hasher)))


def _head(params: Mapping[str, Any], auto: Mapping[str, Any] | None = None) -> _Chain:
    """The chain of the tools and system blocks; `auto` marks the last of them (for a
    request whose messages have no block)."""
    chain = _Chain(params.get("model"))
    blocks = list(_head_blocks(params))
    chain.add_all(blocks, auto, boundaries=len(blocks))
    return chain


def markers(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every cache_control marker: on blocks, then the top-level one (automatic mode).
    `cache_control: null` marks nothing."""
    found = [m for m in map(_marker, _dict_blocks(params)) if m is not None]
    top = params.get("cache_control")
    return [*found, top] if isinstance(top, dict) else found


def _dict_blocks(params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The blocks that can carry a marker (a string prompt cannot), in prefix order, without
    the cost of summarising them."""
    yield from (tool for tool in params.get("tools") or () if isinstance(tool, dict))
    system = params.get("system")
    if isinstance(system, list):
        yield from (block for block in system if isinstance(block, dict))
    for message in params.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from (block for block in content if isinstance(block, dict))


def _marker(block: Mapping[str, Any]) -> Mapping[str, Any] | None:
    marker = block.get("cache_control")
    return marker if isinstance(marker, dict) else None


def _prefix_id(hasher: Any) -> str:
    # 128 bits identify a prefix well enough and halve what each boundary costs in memory.
    return str(hasher.copy().hexdigest()[:32])


def _head_blocks(params: Mapping[str, Any]) -> Iterator[Block]:
    """Tools, then system: the head of the order the API builds its cache prefix in. Each
    block comes with the part of the prompt it sits in (tools, system, or the message's
    role), which the prefix hash includes: the same text as a system prompt or as a user
    turn, or in a user or an assistant turn, is a different prompt."""
    for tool in params.get("tools") or ():
        if isinstance(tool, dict):
            yield tool, _json_tokens(tool), "", b"tools"
    system = params.get("system")
    if isinstance(system, str):
        yield {"type": "text", "text": system}, text_tokens(system), system, b"system"
    elif isinstance(system, list):
        yield from (_content_block(b, b"system") for b in system if isinstance(b, dict))


def _turn_blocks(params: Mapping[str, Any]) -> Iterator[Block]:
    """Then the messages' blocks, in order."""
    for message in params.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content, role = message.get("content"), str(message.get("role")).encode()
        if isinstance(content, str):
            yield {"type": "text", "text": content}, text_tokens(content), content, role
        elif isinstance(content, list):
            yield from (_content_block(b, role) for b in content if isinstance(b, dict))


def _content_block(block: Mapping[str, Any], part: bytes) -> Block:
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
            # Only the start is needed; splitting a long prompt whole would cost real time,
            # and so would splitting the whole start: the words after the first few are left
            # in one piece.
            start = _message_text(message)[:400]
            return " ".join(start.split(maxsplit=WORDS_ECHOED)[:WORDS_ECHOED])
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
