"""Schema-valid answers (contract 10b): a request with `output_config.format` gets JSON text
that validates against its schema, and forced tool use gets a `tool_use` block whose input
fits the tool's `input_schema`.

Deterministic: the same schema and seed (the prompt's digest) always give the same value,
and different prompts pick different enum members and array lengths, so a test can tell
inputs apart. Every property is given (required or not), in the schema's order; `$ref` is
followed locally; `anyOf` takes a branch chosen by the seed, `allOf` merges its branches.
Constraints the API itself refuses (`minimum`, `minLength`, ...) are still honoured when
they are cheap to, so a schema sent past the runner's checks still gets a valid answer.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
import uuid
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

MAX_DEPTH = 6  # a recursive schema stops growing here (the API refuses them anyway)

_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


def output_schema(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON Schema of `output_config.format`, when the request asks for one."""
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, Mapping) else None
    return None


def forced_tool(params: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(name, input_schema) of the tool the request forces (`tool_choice` of type `tool`,
    or `any`: the first tool), or None."""
    choice = params.get("tool_choice")
    tools = [t for t in params.get("tools") or () if isinstance(t, Mapping)]
    if not isinstance(choice, Mapping) or not tools:
        return None
    if choice.get("type") == "tool":
        tool = next((t for t in tools if t.get("name") == choice.get("name")), None)
    elif choice.get("type") == "any":
        tool = tools[0]
    else:
        return None
    if tool is None or not isinstance(tool.get("name"), str):
        return None
    schema = tool.get("input_schema")
    return tool["name"], schema if isinstance(schema, Mapping) else {"type": "object"}


def answer_text(schema: Mapping[str, Any], seed: str) -> str:
    """The answer's text: `instance` as compact JSON, keys in the schema's order."""
    return json.dumps(instance(schema, seed), ensure_ascii=False, separators=(",", ":"))


def instance(schema: Mapping[str, Any], seed: str) -> Any:
    """A value valid against `schema`, determined by `schema` and `seed`."""
    return _Maker(schema, seed).make(schema, "$", 0)


class _Maker:
    def __init__(self, root: Mapping[str, Any], seed: str) -> None:
        self.root, self.seed = root, seed
        self._base = zlib.crc32(f"{seed}\0".encode())

    def pick(self, where: str, n: int) -> int:
        """A number in [0, n) fixed by the seed and the place in the schema. CRC-32, not a
        cryptographic hash: only spread matters here, and a 100k batch makes ~1M picks."""
        return zlib.crc32(where.encode(), self._base) % max(n, 1)

    def make(self, schema: Any, where: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if not isinstance(schema, Mapping):
            return None  # `true` or a schema we cannot read: anything goes
        if "allOf" in schema:
            return self.make(self.merged(schema), where, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[self.pick(where, len(options))]
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list) and branches:
            return self.make(self.branch(branches, where, depth), where + "|", depth)
        return self.typed(schema, self.type_of(schema, where, depth), where, depth)

    def resolve(self, schema: Any, seen: int = 0) -> Any:
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and seen < 32:
            target: Any = self.root
            for part in schema["$ref"].removeprefix("#").strip("/").split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, Mapping) and rest else target
            seen += 1
        return schema

    def merged(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """One schema that satisfies every `allOf` branch: properties met in several
        branches must satisfy each, and a branch closed by `additionalProperties: false`
        admits only its own properties."""
        out: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        props: dict[str, list[Any]] = {}
        allowed: set[str] | None = None
        for part in [out, *schema["allOf"]]:
            part = self.resolve(part)
            if not isinstance(part, Mapping):
                continue
            if "allOf" in part:
                part = self.merged(part)
            own = part.get("properties") if isinstance(part.get("properties"), Mapping) else {}
            for name, sub in own.items():
                props.setdefault(name, []).append(sub)
            if part.get("additionalProperties") is False:
                allowed = set(own) if allowed is None else allowed & set(own)
            for key, value in part.items():
                if key == "required":
                    out["required"] = [*out.get("required", []), *value]
                elif key not in ("properties", "additionalProperties"):
                    out.setdefault(key, value)
        names = [n for n in props if allowed is None or n in allowed]
        out["properties"] = {
            n: props[n][0] if len(props[n]) == 1 else {"allOf": props[n]} for n in names
        }
        out["required"] = [r for r in out.get("required", []) if r in out["properties"]]
        return out

    def branch(self, branches: list[Any], where: str, depth: int) -> Any:
        if depth >= MAX_DEPTH:  # stop a recursion: prefer a branch that ends it
            for b in branches:
                b = self.resolve(b)
                if isinstance(b, Mapping) and b.get("type") in ("null", "string", "integer"):
                    return b
        return branches[self.pick(where, len(branches))]

    def type_of(self, schema: Mapping[str, Any], where: str, depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            kinds = [t for t in declared if isinstance(t, str)]
            if depth >= MAX_DEPTH and "null" in kinds:
                return "null"
            useful = [t for t in kinds if t != "null"] or kinds or ["null"]
            return useful[self.pick(where + "#type", len(useful))]
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def typed(self, schema: Mapping[str, Any], kind: str, where: str, depth: int) -> Any:
        if kind == "object":
            return self.obj(schema, where, depth)
        if kind == "array":
            return self.array(schema, where, depth)
        if kind == "integer":
            return self.integer(schema, where)
        if kind == "number":
            return (
                self.integer(schema, where) + 0.5
                if self._room(schema)
                else self.integer(schema, where)
            )
        if kind == "boolean":
            return self.pick(where, 2) == 1
        if kind == "null":
            return None
        return self.string(schema, where)

    def obj(self, schema: Mapping[str, Any], where: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = [r for r in schema.get("required") or () if isinstance(r, str)]
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if depth >= MAX_DEPTH and name not in required:
                continue
            out[name] = self.make(sub, f"{where}.{name}", depth + 1)
        for name in required:  # required but not declared: any value will do
            if name not in out:
                out[name] = self.make(schema.get("additionalProperties", {}), where, depth + 1)
        return out

    def array(self, schema: Mapping[str, Any], where: str, depth: int) -> list[Any]:
        prefix = [
            self.make(s, f"{where}[{i}]", depth + 1)
            for i, s in enumerate(schema.get("prefixItems") or ())
        ]
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), 3)
        count = low if depth >= MAX_DEPTH else max(low, min(high, 1 + self.pick(where, 3)))
        items = schema.get("items", {})
        out = list(prefix)
        attempt = 0
        while len(out) < max(count, len(prefix)) and attempt < count + 8:
            value = self.make(items, f"{where}[{len(out)}~{attempt}]", depth + 1)
            attempt += 1
            if schema.get("uniqueItems") and value in out:
                continue
            out.append(value)
        return out

    def integer(self, schema: Mapping[str, Any], where: str) -> int:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        lo = math.ceil(low) + (1 if "exclusiveMinimum" in schema else 0) if _num(low) else 0
        hi = (
            math.floor(high) - (1 if "exclusiveMaximum" in schema else 0) if _num(high) else lo + 99
        )
        if _num(low) and not _num(high):
            hi = lo + 99
        if not _num(low) and _num(high):
            lo = min(0, hi)
        value = lo + self.pick(where, max(hi - lo + 1, 1))
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            value = -(-value // step) * step
        return value

    def _room(self, schema: Mapping[str, Any]) -> bool:
        """Whether x.5 stays inside the bounds (a number need not be an integer)."""
        return "multipleOf" not in schema and not _num(schema.get("maximum"))

    def string(self, schema: Mapping[str, Any], where: str) -> str:
        fmt = schema.get("format")
        if fmt == "uuid":
            return str(
                uuid.UUID(bytes=hashlib.sha256(f"{self.seed}{where}".encode()).digest()[:16])
            )
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            found = _matching(pattern)
            if found is not None:
                return found
        word = _WORDS[self.pick(where, len(_WORDS))]
        low = _int(schema.get("minLength"), 0)
        high = _int(schema.get("maxLength"), 10_000)
        text = (word * (1 + low // len(word)))[: max(low, min(len(word), high))]
        return text[:high]


_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------
# A string matching a simple pattern (the API accepts patterns without backreferences or
# lookaround): the shortest the parse tree allows, checked with re.search before use.


# The regex parser `re` itself uses (private, but stable since 3.11 and without the
# deprecation warning of its old name `sre_parse`); typed Any, as typeshed has no stub.
_SRE: Any = importlib.import_module("re._parser")


def _matching(pattern: str) -> str | None:
    try:
        tree = _SRE.parse(pattern)
        text = "".join(_emit(tree, _SRE))
    except Exception:  # any pattern this walk cannot follow falls back to a word
        return None
    return text if re.search(pattern, text) else None


def _emit(tree: Any, sre: Any) -> Iterator[str]:
    c = sre  # the opcode constants live on the parser module
    for op, arg in tree:
        if op is c.LITERAL:
            yield chr(arg)
        elif op is c.NOT_LITERAL:
            yield "a" if arg != ord("a") else "b"
        elif op is c.ANY:
            yield "a"
        elif op is c.IN:
            yield _in(arg, c)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, _high, sub = arg
            for _ in range(low):
                yield from _emit(sub, sre)
        elif op is c.SUBPATTERN:
            yield from _emit(arg[-1], sre)
        elif op is c.BRANCH:
            yield from _emit(arg[1][0], sre)
        elif op is c.AT:
            continue
        elif op is c.CATEGORY:
            yield _category(arg, c)
        else:
            raise ValueError(op)


def _in(items: Any, c: Any) -> str:
    negate = bool(items) and items[0][0] is c.NEGATE
    if negate:
        banned = set()
        for op, arg in items[1:]:
            if op is c.LITERAL:
                banned.add(chr(arg))
            elif op is c.RANGE:
                banned.update(chr(x) for x in range(arg[0], arg[1] + 1))
        return next(ch for ch in "aZ0_ -" if ch not in banned)
    op, arg = items[0]
    if op is c.LITERAL:
        return chr(arg)
    if op is c.RANGE:
        return chr(arg[0])
    if op is c.CATEGORY:
        return _category(arg, c)
    raise ValueError(op)


def _category(arg: Any, c: Any) -> str:
    return {
        c.CATEGORY_DIGIT: "0",
        c.CATEGORY_NOT_DIGIT: "a",
        c.CATEGORY_SPACE: " ",
        c.CATEGORY_NOT_SPACE: "a",
        c.CATEGORY_WORD: "a",
        c.CATEGORY_NOT_WORD: "-",
    }[arg]
