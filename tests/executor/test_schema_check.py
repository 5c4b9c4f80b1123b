"""runner.executor.schema_check: the compiled yes/no check agrees with jsonschema."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.emulator import structured
from runner.executor.schema_check import compile_check
from tests.emulator.test_structured import _roots

_CLS = jsonschema.Draft202012Validator
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutated(value: Any, data: st.DataObject) -> Any:
    """The value with one part replaced by arbitrary JSON: often invalid, sometimes not."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutated(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        return [*value[:i], _mutated(value[i], data), *value[i + 1 :]]
    return data.draw(_json)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=_roots, data=st.data())
def test_the_compiled_check_agrees_with_jsonschema(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    check = compile_check(schema, _CLS.FORMAT_CHECKER.conforms)
    assert check is not None, schema  # every schema of the subset compiles
    validator = _CLS(schema, format_checker=_CLS.FORMAT_CHECKER)
    valid = structured.instance(schema, data.draw(st.text(max_size=4)))
    for value in (valid, _mutated(valid, data), _mutated(valid, data)):
        assert check(value) == validator.is_valid(value), value


def test_schemas_outside_the_subset_do_not_compile() -> None:
    conforms = _CLS.FORMAT_CHECKER.conforms
    assert compile_check({"type": "integer", "minimum": 1}, conforms) is None
    assert compile_check({"oneOf": [{"type": "string"}]}, conforms) is None
    assert compile_check({"$ref": "https://example.com/x.json"}, conforms) is None


def test_recursive_refs_and_json_equality() -> None:
    schema = {
        "$defs": {
            "n": {
                "type": "object",
                "properties": {"c": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
            }
        },
        "$ref": "#/$defs/n",
    }
    check = compile_check(schema, _CLS.FORMAT_CHECKER.conforms)
    assert check is not None
    assert check({"c": [{"c": []}]}) and not check({"c": [{"c": [5]}]})
    enum = compile_check({"enum": [1, "a", None]}, _CLS.FORMAT_CHECKER.conforms)
    assert enum is not None
    assert enum(1.0) and not enum(True) and enum(None) and not enum("b")
