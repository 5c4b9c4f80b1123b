"""The JSON Schema an output schema may use: draft 2020-12, an object at the root, and only
what structured outputs accept (api-contract 10b). Each finding names the node and the fix.

Pure: takes the schema as data and returns `Finding`s with JSON paths inside the schema;
`runner.spec.structured` places them in the job file or the schema file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

Path = tuple[str | int, ...]

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
FORMATS = (
    "date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid",
)  # fmt: skip

_DOWNSTREAM = "move the constraint into the description, or validate it downstream"
_UNSUPPORTED: dict[str, str] = {
    **dict.fromkeys(
        ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"), _DOWNSTREAM
    ),
    **dict.fromkeys(("minLength", "maxLength"), _DOWNSTREAM),
    **dict.fromkeys(
        ("maxItems", "uniqueItems", "contains", "minContains", "maxContains"), _DOWNSTREAM
    ),
    **dict.fromkeys(("minProperties", "maxProperties", "dependentRequired"), _DOWNSTREAM),
    "oneOf": "use `anyOf`, which structured outputs support",
    "not": "describe the exclusion in the description instead",
    **dict.fromkeys(("if", "then", "else"), "describe the condition in the description instead"),
    "dependentSchemas": "describe the dependency in the description instead",
    "prefixItems": "use `items` with one schema, or an object with named properties",
    **dict.fromkeys(
        ("patternProperties", "propertyNames", "unevaluatedProperties"),
        "list every property under `properties`, with `additionalProperties: false`",
    ),
    "unevaluatedItems": "use `items`",
    **dict.fromkeys(
        ("$dynamicRef", "$dynamicAnchor", "$anchor", "$recursiveRef", "$recursiveAnchor"),
        "use a local `$ref` to `#/$defs/NAME`",
    ),
    **dict.fromkeys(
        ("contentEncoding", "contentMediaType", "contentSchema"), "describe it in the description"
    ),
}
_KNOWN = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties", "items",
        "anyOf", "allOf", "$ref", "$defs", "definitions", "format", "pattern", "minItems",
        "title", "description", "default", "examples", "$comment", "$schema", "$id",
        "deprecated", "readOnly", "writeOnly", "$vocabulary",
    }
) | frozenset(_UNSUPPORTED)  # fmt: skip
# Regex features structured outputs do not support (api-contract 10b: "complex pattern").
_PATTERN_FEATURES = (
    (re.compile(r"\(\?<?[=!]"), "lookaround"),
    (re.compile(r"\\[1-9]|\(\?P=|\\k<"), "backreferences"),
    (re.compile(r"\\[bB]"), "word boundaries (\\b)"),
)


@dataclass(frozen=True)
class Finding:
    """One problem at `path` inside the schema; `key`: at the keyword itself, not its value."""

    path: Path
    message: str
    key: bool = False
    severity: str = "error"


def problems(schema: Any) -> list[Finding]:
    """Every problem of `schema` as an output schema, in document order of discovery."""
    if not isinstance(schema, Mapping):
        return [Finding((), f"an output schema is a mapping (a JSON Schema), got {_kind(schema)}")]
    found = list(_root(schema))
    found += _Walker(schema).walk(schema, ())
    seen = {(f.path, f.key) for f in found}
    for err in jsonschema.Draft202012Validator(
        jsonschema.Draft202012Validator.META_SCHEMA
    ).iter_errors(schema):
        path = tuple(err.absolute_path)
        if (path, False) in seen or (path[:-1], True) in seen or (path, True) in seen:
            continue  # already said better
        seen.add((path, False))
        found.append(Finding(path, f"not valid JSON Schema (draft 2020-12): {err.message}"))
    return found


def _root(schema: Mapping[str, Any]) -> Iterator[Finding]:
    why = (
        "the root of an output schema must be `type: object`: the answer is one JSON object, "
        "whose properties become the result's fields (put a list or a value in a property)"
    )
    if "type" not in schema:
        yield Finding((), why)
    elif schema["type"] != "object":
        yield Finding(("type",), why)


class _Walker:
    """Checks each schema node of the document once, and follows `$ref`s for cycles."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.found: list[Finding] = []

    def walk(self, node: Any, path: Path) -> list[Finding]:
        self._node(node, path)
        self._refs(self.root, (), ())
        unique = {(f.path, f.message): f for f in self.found}  # a cycle met along two paths
        return list(unique.values())

    def add(self, path: Path, message: str, *, key: bool = True, severity: str = "error") -> None:
        self.found.append(Finding(path, message, key, severity))

    def _node(self, node: Any, path: Path) -> None:
        if not isinstance(node, Mapping):
            return  # `true`/`false` schemas, or a wrong value the meta-schema reports
        for keyword, value in node.items():
            self._keyword(str(keyword), value, (*path, keyword))
        for name in ("properties", "$defs", "definitions"):
            children = node.get(name)
            if isinstance(children, Mapping):
                for child, sub in children.items():
                    self._node(sub, (*path, name, child))
        for name in ("anyOf", "allOf"):
            for i, sub in enumerate(
                node.get(name) or () if isinstance(node.get(name), list) else ()
            ):
                self._node(sub, (*path, name, i))
        if isinstance(node.get("items"), Mapping):
            self._node(node["items"], (*path, "items"))
        self._required(node, path)

    def _keyword(self, keyword: str, value: Any, path: Path) -> None:
        if keyword in _UNSUPPORTED:
            self.add(
                path, f"`{keyword}` is not supported by structured outputs: {_UNSUPPORTED[keyword]}"
            )
            return
        check = _CHECKS.get(keyword)
        if check is not None:
            message = check(value)
            if message:
                self.add(path, message, key=False)
        elif keyword not in _KNOWN and not keyword.startswith("x-"):
            close = difflib.get_close_matches(keyword, sorted(_KNOWN), n=1, cutoff=0.75)
            hint = f"did you mean `{close[0]}`?" if close else "JSON Schema ignores it"
            self.add(path, f"unknown keyword `{keyword}`: {hint}", severity="warning")

    def _required(self, node: Mapping[str, Any], path: Path) -> None:
        required, props = node.get("required"), node.get("properties")
        if not isinstance(required, list) or not isinstance(props, Mapping):
            return
        for i, name in enumerate(required):
            if isinstance(name, str) and name not in props:
                close = difflib.get_close_matches(name, [str(p) for p in props], n=1)
                hint = f"did you mean {close[0]!r}?" if close else "add it under `properties`"
                self.add(
                    (*path, "required", i),
                    f"required property {name!r} is not under `properties`: {hint}",
                    key=False,
                )

    def _refs(self, node: Any, path: Path, stack: tuple[str, ...]) -> None:
        """Resolve every local `$ref` reachable from the root; a cycle is a recursive schema."""
        if isinstance(node, list):
            for i, sub in enumerate(node):
                self._refs(sub, (*path, i), stack)
            return
        if not isinstance(node, Mapping):
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            self._ref(ref, (*path, "$ref"), stack)
        for key, sub in node.items():
            if key not in ("$defs", "definitions", "$ref", "enum", "const", "default", "examples"):
                self._refs(sub, (*path, key), stack)

    def _ref(self, ref: str, path: Path, stack: tuple[str, ...]) -> None:
        if not ref.startswith("#"):
            self.add(
                path,
                f"external `$ref` {ref!r} is not supported by structured outputs: "
                "copy the schema under `$defs` and refer to it as `#/$defs/NAME`",
                key=False,
            )
            return
        if ref in stack:
            self.add(
                path,
                f"`$ref` {ref!r} refers back to itself: recursive schemas are not "
                "supported by structured outputs; give the nesting a fixed depth",
                key=False,
            )
            return
        target = _pointer(self.root, ref)
        if target is None:
            defs = (
                sorted(self.root.get("$defs") or {})
                if isinstance(self.root.get("$defs"), Mapping)
                else []
            )
            known = f" (defined: {', '.join(defs)})" if defs else ""
            self.add(path, f"`$ref` {ref!r} does not resolve: no such definition{known}", key=False)
            return
        if len(stack) < 64:  # each target is walked at its own place, for its own paths
            self._refs(target, _pointer_path(ref), (*stack, ref))


def _pointer_path(ref: str) -> Path:
    parts = ref.removeprefix("#").split("/")[1:] if ref != "#" else []
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in parts)


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    target: Any = root
    for part in ref.removeprefix("#").split("/")[1:] if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return None
    return target


def _type(value: Any) -> str | None:
    if not isinstance(value, str | list):
        return f"`type` is a type name or a list of them ({', '.join(TYPES)}), got {_kind(value)}"
    for t in value if isinstance(value, list) else [value]:
        if isinstance(t, str) and t not in TYPES:
            close = difflib.get_close_matches(t, TYPES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return f"{t!r} is not a JSON Schema type: {hint}use one of {', '.join(TYPES)}"
    return None


def _enum(value: Any) -> str | None:
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return (
            "structured outputs support only strings, numbers, booleans and null in `enum`: "
            "describe complex values with `anyOf` of objects instead"
        )
    return None


def _format(value: Any) -> str | None:
    if isinstance(value, str) and value not in FORMATS:
        return (
            f"format {value!r} is not supported by structured outputs: use one of "
            f"{', '.join(FORMATS)}, or describe the format in the description"
        )
    return None


def _pattern(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        re.compile(value)
    except re.error as exc:
        return f"pattern `{value}` is not a valid regular expression: {exc}"
    for rx, feature in _PATTERN_FEATURES:
        if rx.search(value):
            return (
                f"pattern `{value}` uses {feature}, which structured outputs do not support: "
                "simplify it, or validate it downstream"
            )
    return None


def _min_items(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 1:
        return (
            f"`minItems: {value}` is not supported by structured outputs (only 0 or 1): "
            + _DOWNSTREAM
        )
    return None


def _additional(value: Any) -> str | None:
    if value is not False:
        return (
            "structured outputs support only `additionalProperties: false`: list every "
            "property under `properties`"
        )
    return None


_CHECKS = {
    "type": _type,
    "enum": _enum,
    "format": _format,
    "pattern": _pattern,
    "minItems": _min_items,
    "additionalProperties": _additional,
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"a number ({value})"
