"""Rendering: the job's templates (runner.spec.templating) turn items into Messages API params.

Template context (DESIGN.md): `input` (files: path, name, stem, text, bytes; records:
record, line), `vars`, `job` (name, model). Every template that renders per input (prompt,
messages, key) also sees the `input` fields at the top level, so `{{ record.body }}` works
in a prompt as `key: "{{ record.id }}"` does.

Templates are compiled once per job and the system prompt is rendered once per job: only
the per-input templates run for each item.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from runner.errors import InputError
from runner.inputs import InputItem, iter_inputs
from runner.spec.model import JobSpec, Template
from runner.spec.templating import CORE_PARAMS, CompiledTemplate, job_context

# `{{ record.id }}`: most key templates name one value; looked up directly, they render
# many times faster than through Jinja, with the same result (see `_lookup`).
_DOTTED_NAME = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
_DICT_ATTRIBUTES = frozenset(dir(dict))


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> str | None:
    """The value at `path` as Jinja would render it, or None to let Jinja decide: only plain
    dict items (not shadowed by a dict attribute, as `record.items` would be) holding a
    string or an int, whose text Jinja renders with `str` too."""
    value: Any = context
    for name in path:
        if type(value) is not dict or name in _DICT_ATTRIBUTES or name not in value:
            return None
        value = value[name]
    if type(value) is str:
        return value
    return str(value) if type(value) is int else None


class _Template:
    """A `CompiledTemplate` with a fast path for the usual shape of a prompt: text with
    `{{ dotted.name }}` substitutions only. Those render by joining the text with the looked
    up values (`_lookup`), many times faster than through Jinja; anything else, and any
    value `_lookup` leaves to Jinja, renders through Jinja, so the result is the same."""

    def __init__(self, template: Template) -> None:
        self.compiled = CompiledTemplate(template)
        self._parts = _plain_parts(template.source)

    def render(self, context: Mapping[str, Any], who: str) -> str:
        if self._parts is not None:
            out: list[str] = []
            for part in self._parts:
                if isinstance(part, str):
                    out.append(part)
                elif (value := _lookup(context, part)) is not None:
                    out.append(value)
                else:
                    break
            else:
                return "".join(out)
        return self.compiled.render(context, who)


def _plain_parts(source: str) -> list[str | tuple[str, ...]] | None:
    """`source` as text and dotted names, or None when it holds anything else Jinja reads
    (a block, a comment, a filter, an expression) or text Jinja would change (a `\r`, whose
    line endings it normalises)."""
    parts: list[str | tuple[str, ...]] = []
    at = 0
    for m in _DOTTED_NAME.finditer(source):
        parts += [source[at : m.start()], tuple(m.group(1).split("."))]
        at = m.end()
    parts.append(source[at:])
    text = "".join(p for p in parts if isinstance(p, str))
    if any(mark in text for mark in ("{{", "}}", "{%", "%}", "{#", "#}", "\r")):
        return None
    return [p for p in parts if p != ""]


class KeyRenderer:
    """Renders `input.key` for an item: the input fields at the top level, plus the usual
    `input`, `vars` and `job`."""

    def __init__(self, job: JobSpec) -> None:
        assert job.input.key is not None
        self._template = CompiledTemplate(job.input.key)
        self._globals = {"vars": job.vars, "job": job_context(job)}
        match = _DOTTED_NAME.fullmatch(job.input.key.source)
        self._path = tuple(match.group(1).split(".")) if match else None

    def render(self, item: InputItem) -> str:
        """The item's key. Raises `InputError` when it renders to an empty string."""
        context = {**item.context, **self._globals, "input": item.context}
        key = _lookup(context, self._path) if self._path else None
        if key is None:
            key = self._template.render(context, f"input {item.origin}")
        if not key:
            raise InputError(f"{item.origin}: input.key rendered to an empty string")
        return key


class Renderer:
    """Turns items of one job into Messages API params; build once per job."""

    def __init__(self, job: JobSpec) -> None:
        clash = [k for k in CORE_PARAMS if k in job.params]
        if clash:
            raise InputError(
                f"{job.path}: params.{clash[0]} is set by the job's own `{clash[0]}` field: "
                "remove it from params"
            )
        self.job = job
        self._globals: dict[str, Any] = {"vars": job.vars, "job": job_context(job)}
        self.system = self._render_system()
        self._prompt = _Template(job.prompt) if job.prompt is not None else None
        self._messages = tuple((m.role, _Template(m.content)) for m in (job.messages or ()))

    def _render_system(self) -> list[dict[str, Any]] | None:
        """The system blocks, once per job: the system prompt sees `vars` and `job` only."""
        spec = self.job.system
        if spec is None:
            return None
        text = CompiledTemplate(spec.template).render(self._globals, "system prompt")
        block: dict[str, Any] = {"type": "text", "text": text}
        if spec.cache is not None:
            block["cache_control"] = {"type": "ephemeral", "ttl": spec.cache}
        return [block]

    def params(self, item: InputItem) -> dict[str, Any]:
        """The Messages API params of one item: model, max_tokens, system, messages, then
        the job's `params` in their own order."""
        job = self.job
        out: dict[str, Any] = {"model": job.model, "max_tokens": job.max_tokens}
        if self.system is not None:
            out["system"] = self.system
        out["messages"] = self._render_messages(item)
        out.update(job.params)
        return out

    def _render_messages(self, item: InputItem) -> list[dict[str, Any]]:
        # The input's own fields at the top level too, as in the key template.
        context = {**item.context, **self._globals, "input": item.context}
        who = f"input {item.key!r}"
        if self._prompt is not None:
            text = self._prompt.render(context, who)
            return [{"role": "user", "content": _content(item, text, who)}]
        turns = [(role, t.render(context, who)) for role, t in self._messages]
        users = [i for i, (role, _) in enumerate(turns) if role == "user"]
        last_user = users[-1] if users else len(turns) - 1
        # Document/image blocks go with the last user turn: few-shot turns come before it,
        # and the input under consideration is the one the model answers about.
        return [
            {"role": role, "content": _content(item, text, who) if i == last_user else text}
            for i, (role, text) in enumerate(turns)
        ]


def _content(item: InputItem, text: str, who: str) -> str | list[dict[str, Any]]:
    """A user turn's content: plain text, or the item's blocks followed by the text."""
    if not item.blocks:
        if not text.strip():
            raise InputError(f"{who}: the prompt rendered to empty text, which the API refuses")
        return text
    if not text.strip():
        return list(item.blocks)
    return [*item.blocks, {"type": "text", "text": text}]


def keyed_inputs(job: JobSpec) -> Iterator[InputItem]:
    """The job's inputs, each keyed by its `input.key` template (or by its path or line)."""
    key = KeyRenderer(job).render if job.input.key is not None else None
    return iter_inputs(job, key=key)
