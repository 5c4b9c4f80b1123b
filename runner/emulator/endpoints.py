"""Routing: which endpoint a method and path name (the names http_faults use), and the
handlers of the smaller endpoints (count_tokens, models, emulator control)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from runner.emulator import catalog, errors, params, prompt
from runner.emulator.clock import rfc3339

ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v1/messages/batches"), "create"),
    ("GET", re.compile(r"/v1/messages/batches"), "list"),
    ("GET", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)"), "retrieve"),
    ("POST", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/cancel"), "cancel"),
    ("DELETE", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)"), "delete"),
    ("GET", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/results"), "results"),
    ("POST", re.compile(r"/v1/messages/count_tokens"), "count_tokens"),
    ("GET", re.compile(r"/v1/models"), "models"),
    ("GET", re.compile(r"/v1/models/(?P<id>[^/]+)"), "models"),
    ("POST", re.compile(r"/_emulator/clock/advance"), "clock_advance"),
    ("GET", re.compile(r"/_emulator/stats"), "stats"),
]


def route(method: str, path: str) -> tuple[str, str | None]:
    """(endpoint name, path id) or a 404 for anything the API does not have."""
    for verb, pattern, name in ROUTES:
        match = pattern.fullmatch(path)
        if match and verb == method:
            return name, match.groupdict().get("id")
    raise errors.not_found(f"{method} {path}: no such endpoint")


def json_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise errors.invalid(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.invalid("body: Input should be a valid dictionary")
    return data


def count_tokens(body: bytes, ctx: params.Context) -> dict[str, Any]:
    """`{"input_tokens": N}` by the same approximation the batch usage uses."""
    data = json_body(body)
    model = data.get("model")
    if not isinstance(model, str) or catalog.find(model) is None:
        raise errors.not_found(f"model: {model}")
    problem = params.check_prompt(data, ctx)
    if problem is not None:
        raise errors.invalid(problem)
    return {"input_tokens": prompt.analyze(data).tokens}


def model_info(model: catalog.Model) -> dict[str, Any]:
    return {
        "id": model.id,
        "type": "model",
        "display_name": model.display_name,
        # Release dates are not in the contract; the SDK documents epoch for "unknown".
        "created_at": rfc3339(0),
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "line": model.line,
        "max_input_tokens": model.context,
        "max_tokens": model.max_tokens,
        "capabilities": _CAPABILITIES,
    }


def _yes(supported: bool = True) -> dict[str, bool]:
    return {"supported": supported}


# What `capabilities` holds for every model the emulator knows (all support structured
# outputs, contract 10b); the keys are those the SDK types as always present.
_CAPABILITIES: dict[str, Any] = {
    "batch": _yes(),
    "citations": _yes(),
    "code_execution": _yes(),
    "context_management": {
        "supported": True,
        "clear_thinking_20251015": _yes(),
        "clear_tool_uses_20250919": _yes(),
        "compact_20260112": None,
    },
    "effort": {
        "supported": True,
        **{level: _yes() for level in ("low", "medium", "high", "max")},
        "xhigh": None,
    },
    "image_input": _yes(),
    "pdf_input": _yes(),
    "server_tools": {"supported": True, "code_execution": _yes(), "web_search": _yes()},
    "structured_outputs": _yes(),
    "thinking": {
        "supported": True,
        "types": {
            "adaptive": _yes(),
            "between_tools": _yes(),
            "disabled": _yes(),
            "enabled": _yes(),
        },
    },
}


def models(model_id: str | None, query: Mapping[str, list[str]]) -> dict[str, Any]:
    if model_id is not None:
        model = catalog.find(model_id)
        if model is None:
            raise errors.not_found(f"model: {model_id}")
        return model_info(model)
    lifecycle = query.get("lifecycle[]") or query.get("lifecycle") or ["active", "deprecated"]
    items = [model_info(m) for m in catalog.all_models() if "active" in lifecycle]
    limit = int_param(query, "limit", 20)
    if not 1 <= limit <= 1000:
        raise errors.invalid("limit: Input should be between 1 and 1000")
    ids = [m["id"] for m in items]
    after, before = first(query, "after_id"), first(query, "before_id")
    if after is not None and before is not None:
        raise errors.invalid("Only one of after_id and before_id may be given")
    if after is not None:
        items = items[ids.index(after) + 1 :] if after in ids else []
        chosen, more = items[:limit], len(items) > limit
    elif before is not None:
        items = items[: ids.index(before)] if before in ids else []
        chosen, more = items[-limit:], len(items) > limit
    else:
        chosen, more = items[:limit], len(items) > limit
    first_id = chosen[0]["id"] if chosen else None
    last_id = chosen[-1]["id"] if chosen else None
    return {"data": chosen, "has_more": more, "first_id": first_id, "last_id": last_id}


def first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    value = first(query, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise errors.invalid(f"{name}: Input should be a valid integer") from exc


def advance_seconds(body: bytes) -> float:
    seconds = json_body(body).get("seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise errors.invalid("seconds: a number >= 0 is required")
    return float(seconds)
