"""The synchronous half of create (contract section 4): parse the body once with orjson,
check the request count and every custom_id, then turn each request into a compact
`Record` so the parsed params can be freed. Params problems do not fail the create; they
become errored records (asynchronous validation)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from runner.emulator import errors
from runner.emulator.config import ResponseRule
from runner.emulator.gcpause import gc_paused
from runner.emulator.params import Context
from runner.emulator.prompt import Heads
from runner.emulator.responder import Record, make_record

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def parse(body: bytes, max_requests: int) -> tuple[list[Any], list[str]]:
    """The `requests` list of a create body and its custom_ids, or a 400 naming the first
    problem."""
    with gc_paused():
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
        if not CUSTOM_ID.fullmatch(custom_id):
            raise _bad_id(custom_id, i)
        if custom_id in seen:
            raise errors.invalid(
                f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}': custom_id must "
                "be unique within a batch"
            )
        seen.add(custom_id)
        ids.append(custom_id)
    return ids


def _bad_id(custom_id: str, index: int) -> errors.ApiError:
    """The 400 for a custom_id the pattern refuses, naming the first rule it breaks. (Only
    then is the message built: the check itself runs once per request.)"""
    where = f"requests.{index}.custom_id"
    if not custom_id:
        return errors.invalid(f"{where}: String should have at least 1 character")
    if len(custom_id) > 64:
        return errors.invalid(f"{where}: String should have at most 64 characters")
    return errors.invalid(f"{where}: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")


def records(requests: list[Any], ctx: Context, rules: Sequence[ResponseRule]) -> list[Record]:
    """Summarise every request, releasing each parsed params as soon as it is summarised."""
    heads = Heads()
    out = []
    with gc_paused():
        for i, request in enumerate(requests):
            out.append(make_record(request["custom_id"], request["params"], ctx, rules, heads))
            requests[i] = None
    return out
