"""JSON Schema errors as messages a new user understands, each saying what to write instead.

jsonschema's own wording ("is valid under each of", reprs of whole mappings) never reaches
the user: every error is translated here from its keyword, its instance and the schema. A
schema node may carry an `errorMessage` (the editor convention) describing the allowed forms.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from runner.errors import Diagnostic
from runner.spec import schema as job_schema
from runner.spec import yaml_hints
from runner.spec.yaml_source import LoadedYaml, Positions, json_path

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "nothing",
}


@dataclass(frozen=True)
class _Where:
    """What a translation needs besides the error: the file name and node positions."""

    file: str
    positions: Positions
    key_positions: Positions

    def at(self, path: str, message: str, *, key: bool = False) -> Diagnostic:
        found = self.key_positions.get(path) if key else None
        line, col = found or self.positions.get(path) or (1, 1)
        return Diagnostic(self.file, line, col, path, message)


def schema_diagnostics(doc: Any, loaded: LoadedYaml, file: str) -> list[Diagnostic]:
    """Every schema error in `doc`, translated and located, without duplicates."""
    where = _Where(file, loaded.positions, loaded.key_positions)
    validator = jsonschema.Draft202012Validator(job_schema.schema())
    found: dict[tuple[str, str], Diagnostic] = {}
    for err in validator.iter_errors(doc):
        for diag in _translate(err, where):
            found.setdefault((diag.path, diag.message), diag)
    return list(found.values())


def _translate(err: ValidationError, where: _Where) -> Iterator[Diagnostic]:
    path = _path_of(err)
    if "propertyNames" in err.relative_schema_path:
        key_path = json_path(path, str(err.instance))
        message = f"key {err.instance!r} is not allowed here: {err.schema.get('errorMessage')}"
        yield where.at(key_path, message, key=True)
        return
    handler = _HANDLERS.get(str(err.validator))
    if handler is not None:
        yield from handler(err, path, where)
        return
    if path == "$.notify.webhook_env":  # most likely the webhook URL itself: a secret
        yield where.at(path, f"this is not allowed: {err.schema.get('errorMessage')}")
        return
    yield where.at(path, _value_message(err))


def _path_of(err: ValidationError) -> str:
    path = "$"
    for part in err.absolute_path:
        path = json_path(path, part)
    return path


# ---------------------------------------------------------------------------------------
# One handler per keyword that needs more than a one-line message


def _unknown_keys(err: ValidationError, path: str, where: _Where) -> Iterator[Diagnostic]:
    allowed = sorted(err.schema.get("properties", {}))
    for key in err.instance:
        if key in allowed or not isinstance(key, str):
            continue  # a non-string key is reported by the YAML layer
        key_path = json_path(path, key)
        if path == "$.output" and "then" in err.relative_schema_path:
            message = _unknown_output_key(key, allowed, err.instance.get("type"))
        else:
            hint = yaml_hints.misplaced_key(key, path, where.key_positions)
            message = f"unknown key {key!r}: {hint or _suggest(key, allowed)}"
        yield where.at(key_path, message, key=True)


def _unknown_output_key(key: str, allowed: list[str], sink: Any) -> str:
    owners = [
        branch["if"]["properties"]["type"]["const"]
        for branch in job_schema.schema()["$defs"]["output"]["allOf"]
        if key in branch["then"]["properties"]
    ]
    message = f"unknown key {key!r} for an output of type {sink!r}"
    if owners:
        return f"{message}: {key!r} is only for type {' or '.join(map(repr, owners))}"
    return f"{message}: {_suggest(key, allowed)}"


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"valid keys here are {', '.join(allowed)}"


def _missing_keys(err: ValidationError, path: str, where: _Where) -> Iterator[Diagnostic]:
    properties = err.schema.get("properties", {})
    if path == "$.output" and "then" in err.relative_schema_path:  # a sink's own keys
        properties = job_schema.schema()["$defs"]["output"]["properties"]
    for key in err.validator_value:
        if key not in err.instance:
            hint = _first_sentence(properties.get(key, {}))
            yield where.at(path, f"missing required key {key!r}{hint}")


def _first_sentence(prop: dict[str, Any]) -> str:
    ref = prop.get("$ref", "")
    if ref.startswith("#/$defs/") and "description" not in prop:
        prop = job_schema.schema()["$defs"][ref.removeprefix("#/$defs/")]
    text = str(prop.get("description", "")).split(". ")[0].split(": ")[0].rstrip(".")
    return f" ({text[0].lower()}{text[1:]})" if text else ""


def _exactly_one(err: ValidationError, path: str, where: _Where) -> Iterator[Diagnostic]:
    choices = [b["required"][0] for b in err.validator_value if "required" in b]
    if not isinstance(err.instance, dict) or len(choices) != len(err.validator_value):
        return  # a wrong type, reported by its own `type` error
    given = [c for c in choices if c in err.instance]
    listed = ", ".join(choices)
    if not given:
        if not _misspelt(choices, err.instance):
            yield where.at(path, f"none of {listed} is given: give exactly one of them")
        return
    later = max(given, key=lambda c: where.key_positions.get(json_path(path, c), (0, 0)))
    both = " and ".join(given)
    message = f"{both} are both given: give exactly one of {listed}"
    yield where.at(json_path(path, later), message, key=True)


def _misspelt(choices: list[str], instance: dict[str, Any]) -> bool:
    """True when an unknown key is a typo of a choice: its own error says it all."""
    unknown = [k for k in instance if isinstance(k, str)]
    return any(difflib.get_close_matches(c, unknown, n=1, cutoff=0.6) for c in choices)


def _wrong_type(err: ValidationError, path: str, where: _Where) -> Iterator[Diagnostic]:
    wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    names = " or ".join(_TYPE_NAMES.get(str(w), str(w)) for w in wanted)
    hint = yaml_hints.section_as_string(path, err.instance)
    yield where.at(path, f"expected {names}, got {describe(err.instance)}{hint}")


def _one_line(message: Callable[[ValidationError], str]) -> _Handler:
    def handler(err: ValidationError, path: str, where: _Where) -> Iterator[Diagnostic]:
        yield where.at(path, message(err))

    return handler


def _value_message(err: ValidationError) -> str:
    """A value of the right type but not an allowed one (enum, const, pattern...)."""
    custom = err.schema.get("errorMessage")
    if custom:
        return f"{_show(err.instance)} is not allowed: {custom}"
    if err.validator == "enum":
        options = ", ".join(_show(v) for v in err.validator_value)
        return f"{_show(err.instance)} is not allowed: use one of {options}"
    if err.validator == "const":
        return f"{_show(err.instance)} is not allowed: use {_show(err.validator_value)}"
    return f"{_show(err.instance)} is not allowed here"


def _duplicates(err: ValidationError) -> str:
    seen: list[Any] = []
    for item in err.instance:
        if item in seen:
            return f"{_show(item)} is listed more than once: list each item once"
        seen.append(item)
    return "an item is listed more than once: list each item once"


_Handler = Callable[[ValidationError, str, _Where], Iterator[Diagnostic]]

_HANDLERS: dict[str, _Handler] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "oneOf": _exactly_one,
    "type": _wrong_type,
    "minimum": _one_line(lambda e: f"must be at least {e.validator_value}, got {e.instance}"),
    "maximum": _one_line(lambda e: f"must be at most {e.validator_value}, got {e.instance}"),
    "exclusiveMinimum": _one_line(
        lambda e: f"must be more than {e.validator_value}, got {e.instance}"
    ),
    "minLength": _one_line(lambda e: "must not be empty"),
    "minItems": _one_line(lambda e: "must not be an empty list: give at least one item"),
    "minProperties": _one_line(
        lambda e: (
            "must not be empty: give at least one of "
            + ", ".join(sorted(e.schema.get("properties", {})))
        )
    ),
    "uniqueItems": _one_line(_duplicates),
}


# ---------------------------------------------------------------------------------------
# Showing values


def describe(value: Any) -> str:
    """A value's YAML type, and the value itself when short: `a string ('1024')`."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    return "a mapping" if isinstance(value, dict) else "a list"


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: `false`, `2`, `'30 sec'`; long text cut short."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict | list):
        return describe(value)
    return repr(value)
