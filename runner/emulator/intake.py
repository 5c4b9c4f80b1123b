"""The synchronous half of create (contract section 4): parse the body once with orjson,
check the request count and every custom_id, then turn each request into a compact
`Record` so the parsed params can be freed. Params problems do not fail the create; they
become errored records (asynchronous validation)."""

from __future__ import annotations

import contextlib
import gc
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from runner.emulator import errors
from runner.emulator.config import ResponseRule
from runner.emulator.params import Context
from runner.emulator.prompt import Heads
from runner.emulator.responder import Record, make_record

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def parse(body: bytes, max_requests: int) -> tuple[list[Any], list[str]]:
    """The `requests` list of a create body and its custom_ids, or a 400 naming the first
    problem."""
    with _gc_paused():
        return _parse(body, max_requests)


def _parse(body: bytes, max_requests: int) -> tuple[list[Any], list[str]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.invalid("body: Input should be a valid dictionary")
    requests = data.get("requests")
    if not isinstance(requests, list):
        problem = "Field required" if requests is None else "Input should be a valid list"
        raise errors.invalid(f"requests: {problem}")
    if not requests:
        raise errors.invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise errors.invalid(
            f"requests: List should have at most {max_requests} items after validation, "
            f"not {len(requests)}"
        )
    return requests, _check_ids(requests)


class _GcPause:
    """Keeps the cyclic GC out of big parses. A 100k-request body is over a million new
    containers; the collections they trigger (full ones included, each walking every object
    built so far) more than doubled the parse time. A parsed JSON tree has no cycles, so
    nothing is left for the GC to find. Threads parsing at once share one pause, and a GC
    the host process had disabled stays disabled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._restore = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._restore = gc.isenabled()
                gc.disable()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._restore:
                    gc.enable()


_gc_paused = _GcPause()


def _check_ids(requests: Sequence[Any]) -> list[str]:
    seen: set[str] = set()
    ids = []
    for i, request in enumerate(requests):
        if not isinstance(request, dict):
            raise errors.invalid(f"requests.{i}: Input should be a valid dictionary")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str):
            problem = "Field required" if custom_id is None else "Input should be a valid string"
            raise errors.invalid(f"requests.{i}.custom_id: {problem}")
        if "params" not in request:
            raise errors.invalid(f"requests.{i}.params: Field required")
        _check_id(custom_id, i)
        if custom_id in seen:
            raise errors.invalid(
                f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}': custom_id must "
                "be unique within a batch"
            )
        seen.add(custom_id)
        ids.append(custom_id)
    return ids


def _check_id(custom_id: str, index: int) -> None:
    where = f"requests.{index}.custom_id"
    if not custom_id:
        raise errors.invalid(f"{where}: String should have at least 1 character")
    if len(custom_id) > 64:
        raise errors.invalid(f"{where}: String should have at most 64 characters")
    if not CUSTOM_ID.fullmatch(custom_id):
        raise errors.invalid(f"{where}: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")


def records(requests: list[Any], ctx: Context, rules: Sequence[ResponseRule]) -> list[Record]:
    """Summarise every request, releasing each parsed params as soon as it is summarised."""
    heads = Heads()
    out = []
    for i, request in enumerate(requests):
        out.append(make_record(request["custom_id"], request["params"], ctx, rules, heads))
        requests[i] = None
    return out
