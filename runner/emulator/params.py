"""Validation of one request's `params`. The API does this asynchronously: a bad request
does not fail the create, it ends `errored` with `invalid_request_error` once the whole
batch has ended (contract section 4). Messages follow the API's `field: problem` style."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.emulator import catalog, prompt

MAX_BREAKPOINTS = 4
MIN_THINKING_BUDGET = 1024
VERSION_WITHOUT_SAMPLING = "2026-10-21"  # temperature/top_p/top_k removed in this version
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")


@dataclass(frozen=True)
class Context:
    """What the batch's HTTP request adds to each of its requests."""

    api_version: str
    betas: frozenset[str]
    user_profile_id: str | None = None


def check(params: Any, ctx: Context) -> str | None:
    """The invalid_request_error message for bad params of a batch request, or None when
    they are acceptable."""
    return _run(params, ctx, (_model_and_tokens, _forbidden, _output_config, *PROMPT_STEPS))


def check_prompt(body: Any, ctx: Context) -> str | None:
    """The same for a count_tokens body: the prompt's shape only. It has no max_tokens and
    is not a batch request, so `speed` and the like are the Messages API's business."""
    return _run(body, ctx, PROMPT_STEPS)


def _run(params: Any, ctx: Context, steps: tuple[Step, ...]) -> str | None:
    if not isinstance(params, dict):
        return "params: Input should be a valid dictionary"
    for step in steps:
        problem = step(params, ctx)
        if problem:
            return problem
    return None


def _model_and_tokens(params: Mapping[str, Any], ctx: Context) -> str | None:
    model_id = params.get("model")
    if not isinstance(model_id, str) or not model_id:
        return "model: Field required"
    model = catalog.find(model_id)
    if model is None:
        return f"model: {model_id}"
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return (
            "max_tokens: Field required"
            if max_tokens is None
            else "max_tokens: Input should be a valid integer"
        )
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    cap = catalog.output_cap(model, ctx.betas)
    if max_tokens > cap:
        return (
            f"max_tokens: {max_tokens} > {cap}, which is the maximum allowed number of "
            f"output tokens for {model_id}"
        )
    return None


def _forbidden(params: Mapping[str, Any], ctx: Context) -> str | None:
    if params.get("stream") not in (None, False):
        return "stream: streaming is not supported in Message Batches requests"
    if params.get("speed") == "fast":
        return "speed: fast mode is not available with the Message Batches API"
    if ctx.api_version >= VERSION_WITHOUT_SAMPLING:
        for name in SAMPLING_PARAMS:
            if name in params:
                return f"{name}: Extra inputs are not permitted in API version {ctx.api_version}"
    profile = params.get("user_profile_id")
    if ctx.user_profile_id and profile is not None and profile != ctx.user_profile_id:
        return "user_profile_id: does not match the anthropic-user-profile-id header"
    return None


def _output_config(params: Mapping[str, Any], _: Context) -> str | None:
    """The shape of structured outputs' `output_config.format` (contract 10b)."""
    config = params.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return "output_config: Input should be a valid dictionary"
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return "output_config.format.type: Input should be 'json_schema'"
    if not isinstance(fmt.get("schema"), dict):
        return "output_config.format.schema: Input should be a valid dictionary"
    return None


def _thinking(params: Mapping[str, Any], _: Context) -> str | None:
    thinking = params.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        return (
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}"
        )
    max_tokens = params.get("max_tokens")  # absent in count_tokens
    if isinstance(max_tokens, int) and budget >= max_tokens:
        return "max_tokens must be greater than thinking.budget_tokens"
    return None


def _messages(params: Mapping[str, Any], _: Context) -> str | None:
    messages = params.get("messages")
    if not isinstance(messages, list):
        return (
            "messages: Field required"
            if messages is None
            else "messages: Input should be a valid list"
        )
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        problem = _message(message, f"messages.{i}")
        if problem:
            return problem
    return None


def _message(message: Any, where: str) -> str | None:
    if not isinstance(message, dict):
        return f"{where}: Input should be a valid dictionary"
    if message.get("role") not in ("user", "assistant"):
        return f"{where}.role: Input should be 'user' or 'assistant'"
    return _content(message.get("content"), f"{where}.content")


def _system(params: Mapping[str, Any], _: Context) -> str | None:
    system = params.get("system")
    if system is None:
        return None
    return _content(system, "system")


def _tools(params: Mapping[str, Any], _: Context) -> str | None:
    tools = params.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"tools.{i}: Input should be a valid dictionary"
    return None


def _content(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a valid string or list of content blocks"
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"{where}.{i}: Input should be a content block with a `type`"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{i}.text: Field required"
    return None


def _cache(params: Mapping[str, Any], _: Context) -> str | None:
    found = prompt.markers(params)
    if len(found) > MAX_BREAKPOINTS:
        return (
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(found)}."
        )
    for marker in found:
        if marker.get("type") != "ephemeral":
            return "cache_control.type: Input should be 'ephemeral'"
        if marker.get("ttl") not in (None, "5m", "1h"):
            return "cache_control.ttl: Input should be '5m' or '1h'"
    return None


Step = Callable[[Mapping[str, Any], Context], "str | None"]
PROMPT_STEPS: tuple[Step, ...] = (_thinking, _messages, _system, _tools, _cache)
