"""A fast yes/no validator for output schemas, compiled once per job into closures.

jsonschema takes ~220 µs to validate a five-property answer (measured on this project's
2-core machine), which at 100k answers is 20 s of a collect aiming at 6.7 µs per result.
Output schemas use a small subset of JSON Schema (api-contract 10b), and that subset
compiles to a few nested closures that answer in a few microseconds. The compiled check
only ever says "valid" when jsonschema would: `compile_check` returns None for a schema
using anything it does not know (numeric bounds, unknown keywords...), and answers.py asks
jsonschema for the wording whenever this check says no, so jsonschema stays the judge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_IGNORED = frozenset(
    {
        "title", "description", "default", "examples", "$comment", "$schema", "$id",
        "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
    }
)  # fmt: skip


class _Unknown(Exception):
    """The schema uses something this compiler does not handle."""


def compile_check(schema: Mapping[str, Any], conforms: Callable[[Any, str], bool]) -> Check | None:
    """A function telling whether a value is valid against `schema`, or None when the
    schema is outside what it handles. `conforms(value, format)` checks a string format
    (jsonschema's own format checker, so both agree)."""
    try:
        return _Compiler(schema, conforms).node(schema)
    except (_Unknown, re.error, TypeError, ValueError, KeyError):
        return None


class _Compiler:
    def __init__(self, root: Mapping[str, Any], conforms: Callable[[Any, str], bool]) -> None:
        self.root, self.conforms = root, conforms
        self.refs: dict[str, Check] = {}

    def node(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if not isinstance(schema, Mapping):
            raise _Unknown(schema)
        checks = [self.keyword(k, v, schema) for k, v in schema.items() if k not in _IGNORED]
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        return lambda value: all(c(value) for c in checks)

    def keyword(self, key: str, value: Any, schema: Mapping[str, Any]) -> Check:
        if key == "type":
            return _type(value)
        if key == "enum":
            options = list(value)
            if all(isinstance(o, str) for o in options):  # the usual case, as a set lookup
                strings = frozenset(options)
                return lambda v: isinstance(v, str) and v in strings
            return lambda v: any(_equal(v, o) for o in options)
        if key == "const":
            return lambda v: _equal(v, value)
        if key == "properties":
            return self.properties(value)
        if key == "required":
            names = list(value)
            return lambda v: not isinstance(v, dict) or all(n in v for n in names)
        if key == "additionalProperties":
            return self.additional(value, schema.get("properties") or {})
        if key == "items":
            item = self.node(value)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if key == "minItems":
            low = int(value)
            return lambda v: not isinstance(v, list) or len(v) >= low
        if key in ("anyOf", "allOf"):
            branches = [self.node(b) for b in value]
            if key == "anyOf":
                return lambda v: any(b(v) for b in branches)
            return lambda v: all(b(v) for b in branches)
        if key == "$ref":
            return self.ref(value)
        if key == "format":
            return self.format(value)
        if key == "pattern":
            rx = re.compile(value)
            return lambda v: not isinstance(v, str) or rx.search(v) is not None
        raise _Unknown(key)

    def properties(self, props: Mapping[str, Any]) -> Check:
        compiled = {name: self.node(sub) for name, sub in props.items()}

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(c(value[n]) for n, c in compiled.items() if n in value)

        return check

    def additional(self, allowed: Any, props: Mapping[str, Any]) -> Check:
        if allowed is True:
            return _always
        if allowed is not False:
            raise _Unknown("additionalProperties")
        names = frozenset(props)
        return lambda v: not isinstance(v, dict) or names.issuperset(v)

    def ref(self, ref: Any) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unknown(ref)
        if ref not in self.refs:
            self.refs[ref] = _always  # a recursive ref meets itself: filled in below
            target: Any = self.root
            for part in ref.removeprefix("#").split("/")[1:]:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            self.refs[ref] = self.node(target)
        refs = self.refs
        return lambda v: refs[ref](v)

    def format(self, fmt: Any) -> Check:
        conforms = self.conforms
        return lambda v: not isinstance(v, str) or conforms(v, fmt)


def _always(_: Any) -> bool:
    return True


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    # JSON Schema counts 1.0 as an integer; jsonschema does too.
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}


def _type(declared: Any) -> Check:
    kinds = [_TYPES[t] for t in (declared if isinstance(declared, list) else [declared])]
    if len(kinds) == 1:
        return kinds[0]
    return lambda v: any(k(v) for k in kinds)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema has it: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)
