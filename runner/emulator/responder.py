"""Deterministic answers. A request becomes a compact `Record` at create time (the parsed
body is then dropped): the same params always give the same message, and the default text
echoes the model, a prompt digest and the first words of the last user turn so a test can
see that each result belongs to its input."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from runner.emulator import params as params_check
from runner.emulator import prompt as prompt_mod
from runner.emulator import structured
from runner.emulator.config import ResponseRule
from runner.emulator.prompt import Breakpoint


@dataclass(frozen=True, slots=True)
class Record:
    """One request as the emulator keeps it: enough to answer, bill and persist."""

    custom_id: str
    model: str
    error_type: str | None = None
    error_message: str | None = None
    text: str = ""
    stop_reason: str = "end_turn"
    output_tokens: int = 0
    prompt_tokens: int = 0
    breakpoints: tuple[Breakpoint, ...] = ()
    inference_geo: str | None = None
    message_id: str = ""
    thinking: str | None = None
    tool_name: str | None = None  # forced tool use: `text` is the tool's input as JSON
    beta: bool = False  # sent with an anthropic-beta header: answered as a BetaMessage

    def to_row(self) -> list[Any]:
        bps = [[b.tokens, b.prefix_hash, b.ttl, b.lookback] for b in self.breakpoints]
        return [*(getattr(self, n) for n in _ROW_FIELDS), bps]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Record:
        bps = tuple(
            Breakpoint(bp[0], bp[1], bp[2], tuple((t, h) for t, h in bp[3]) if bp[3:] else ())
            for bp in row[-1]
        )
        # A row saved before a field was added is shorter: the missing fields default.
        fields = _ROW_FIELDS[: len(row) - 1]
        return cls(**dict(zip(fields, row[:-1], strict=True)), breakpoints=bps)


_ROW_FIELDS = (
    "custom_id",
    "model",
    "error_type",
    "error_message",
    "text",
    "stop_reason",
    "output_tokens",
    "prompt_tokens",
    "inference_geo",
    "message_id",
    "thinking",
    "tool_name",
    "beta",
)


def make_record(
    custom_id: str,
    params: Any,
    ctx: params_check.Context,
    rules: Sequence[ResponseRule],
    heads: prompt_mod.Heads | None = None,
) -> Record:
    """Validate and summarise one request; an invalid one becomes an errored record.
    `heads` is shared by the requests of one batch (see `prompt.Heads`)."""
    problem = params_check.check(params, ctx)
    if problem is not None:
        model = params.get("model") if isinstance(params, dict) else None
        return Record(custom_id, str(model), "invalid_request_error", problem)
    prompt = prompt_mod.analyze(params, heads)
    rule = _rule(rules, custom_id, prompt)
    model = params["model"]
    if rule is not None and rule.errored:
        message = rule.message or f"Emulated {rule.errored} (scripted by a responses rule)"
        return Record(custom_id, model, rule.errored, message)
    max_tokens = params["max_tokens"]
    thinking = _thinking(params, prompt)
    if thinking is not None:
        thinking = thinking[: max_tokens * 4]  # thinking counts against max_tokens too
    spent = prompt_mod.text_tokens(thinking or "")
    text, stop, tool_name = _answer(model, prompt, params, rule, max_tokens - spent)
    geo = params.get("inference_geo")
    return Record(
        custom_id,
        model,
        text=text,
        stop_reason=stop,
        output_tokens=max(1, spent + prompt_mod.text_tokens(text)),
        prompt_tokens=prompt.tokens,
        breakpoints=prompt.breakpoints,
        inference_geo=geo if isinstance(geo, str) else None,
        message_id="msg_emu" + hashlib.sha256(f"{prompt.digest}\0{text}".encode()).hexdigest()[:20],
        thinking=thinking,
        tool_name=tool_name,
        beta=bool(ctx.betas),
    )


def _answer(
    model: str,
    prompt: prompt_mod.Prompt,
    params: dict[str, Any],
    rule: ResponseRule | None,
    max_tokens: int,
) -> tuple[str, str, str | None]:
    """(text, stop_reason, the forced tool's name when the answer is its tool_use)."""
    tool = structured.forced_tool(params) if rule is None or rule.text is None else None
    text, stop = _reply(_default_text(model, prompt, params, tool), prompt, rule, max_tokens)
    if tool is not None and stop == "end_turn":
        return text, "tool_use", tool[0]
    return text, stop, None


def _default_text(
    model: str,
    prompt: prompt_mod.Prompt,
    params: dict[str, Any],
    tool: tuple[str, Mapping[str, Any]] | None,
) -> str:
    """The unscripted answer: the forced tool's input, JSON valid against the output
    schema, or the echo of the prompt (contract 10b)."""
    schema = tool[1] if tool is not None else structured.output_schema(params)
    if schema is not None:
        return structured.answer_text(schema, prompt.digest)
    return f"Emulated reply from {model} to prompt {prompt.digest}: {prompt.last_user_words}"


def _rule(
    rules: Sequence[ResponseRule], custom_id: str, prompt: prompt_mod.Prompt
) -> ResponseRule | None:
    if not rules:
        return None
    text = prompt.text  # joined once, and only for a batch that has rules
    return next((r for r in rules if r.matches(custom_id, text)), None)


def _thinking(params: dict[str, Any], prompt: prompt_mod.Prompt) -> str | None:
    """With extended thinking on, a thinking block comes first, as it does from the API:
    a runner that takes `content[0]` as the answer must fail here."""
    config = params.get("thinking")
    if isinstance(config, dict) and config.get("type") in ("enabled", "adaptive"):
        return f"Emulated thinking about prompt {prompt.digest}."
    return None


def _reply(
    text: str, prompt: prompt_mod.Prompt, rule: ResponseRule | None, max_tokens: int
) -> tuple[str, str]:
    if rule is not None and rule.text is not None:
        text = rule.text
    # Even scripted text obeys max_tokens: output_tokens never exceed it.
    if prompt_mod.text_tokens(text) > max_tokens:
        return text[: max_tokens * 4], "max_tokens"
    if rule is not None and rule.stop_reason is not None:
        return text, rule.stop_reason
    return text, "end_turn"


def message(record: Record, usage: Mapping[str, Any]) -> dict[str, Any]:
    """The succeeded result's Message (contract section 7). Every field the official SDKs
    type as always present is sent, null when empty (contract 10b)."""
    return {
        "id": record.message_id,
        "type": "message",
        "role": "assistant",
        "model": record.model,
        "content": _content(record),
        "stop_reason": record.stop_reason,
        "stop_sequence": None,
        "stop_details": _stop_details(record),
        "container": None,
        "diagnostics": None,
        "usage": usage,
    } | (_beta_fields(usage) if record.beta else {})


def _beta_fields(usage: Mapping[str, Any]) -> dict[str, Any]:
    """What a BetaMessage has besides a Message's fields, null when empty (contract 10b)."""
    return {
        "context_management": None,
        "usage": {**usage, "iterations": None, "fallback_credit": None},
    }


def _stop_details(record: Record) -> dict[str, Any] | None:
    if record.stop_reason != "refusal":
        return None
    return {"type": "refusal", "category": None, "explanation": None}


def _content(record: Record) -> list[dict[str, Any]]:
    text: dict[str, Any]
    if record.tool_name is not None:
        text = {
            "type": "tool_use",
            "id": "toolu_emu" + record.message_id.removeprefix("msg_emu"),
            "name": record.tool_name,
            "input": orjson.loads(record.text),
            "caller": {"type": "direct"},
        }
    else:
        text = {"type": "text", "text": record.text, "citations": None}
    if record.thinking is None:
        return [text]
    signature = "emu" + record.message_id.removeprefix("msg_emu")
    thinking = {"type": "thinking", "thinking": record.thinking, "signature": signature}
    # max_tokens ran out while thinking: there is no answer text to return.
    return [thinking, text] if record.text else [thinking]
