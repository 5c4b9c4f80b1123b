"""runner.spec.sandbox: the bounds leave ordinary templates exactly as the plain sandbox
renders them, and stop the expensive ones (the hostile corpus has the end-to-end cases)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from runner.errors import InputError
from runner.spec import sandbox, template_check
from runner.spec.model import Template
from runner.spec.template_check import Scope
from runner.spec.templating import CompiledTemplate

CONTEXT: dict[str, Any] = {
    "input": {"text": "Some answer\nover two lines", "record": {"id": 7, "tags": ["a", "b"]}},
    "vars": {"language": "English", "n": 3},
}

ORDINARY = [
    "Classify in {{ vars.language }}: <answer>{{ input.text }}</answer>",
    "{% for k, v in input.record|dictsort %}{{ k }}={{ v }};{% endfor %}",
    "{{ input.text|upper|replace('ANSWER', 'reply')|truncate(12) }} {{ input.text|wordcount }}",
    "{{ '%-8s|%5.2f' % ('x', 3.14159) }} {{ '{:>6}'.format(vars.n) }} {{ 'ab' * 3 }}",
    "{% macro item(x) %}<{{ x }}>{% endmacro %}"
    "{% for t in input.record.tags %}{{ item(t) }}{% endfor %}",
    "{% set ns = namespace(s='') %}"
    "{% for i in range(5) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}",
    "{% for x in [[1, [2]], [3]] recursive %}"
    "[{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}]{% endfor %}",
    "{{ input.text|indent(2, first=true) }}|{{ 'x'|center(9) }}|{{ range(3)|join('-') }}|"
    "{{ 2 ** 10 }}",
    "{% filter upper %}{{ input.text }}{% endfilter %}{{ input.record|tojson }}",
]


def render(source: str, context: dict[str, Any] | None = None) -> str:
    template = Template(source, Path("/jobs/j.yaml"), 1, "$.prompt")
    return CompiledTemplate(template).render(context or CONTEXT, "input 'k'")


@pytest.mark.parametrize("source", ORDINARY)
def test_an_ordinary_template_renders_as_in_the_plain_sandbox(source: str) -> None:
    plain = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    assert render(source) == plain.from_string(source).render(CONTEXT)


def test_steps_are_counted_per_render() -> None:
    """Each render starts with a full budget: three renders of 1M steps each all pass."""
    source = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}ok"
    assert [render(source) for _ in range(3)] == ["ok"] * 3


def test_a_loop_over_the_input_is_bounded_too() -> None:
    text = {"input": {"text": "ab" * 1_500_000}, "vars": {}}
    source = "{% for c in input.text %}{% for d in input.text %}{% endfor %}{% endfor %}"
    with pytest.raises(InputError, match="ran more than 2,000,000 steps"):
        render(source, text)


def test_the_steps_filter_cannot_be_named_in_a_template() -> None:
    """The counting filter's name is not one the template syntax can spell."""
    assert "-" in sandbox.STEPS_FILTER
    with pytest.raises(InputError, match="template syntax error"):
        render("{{ range(3)|" + sandbox.STEPS_FILTER + " }}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x'.encode().ljust(10**10) }}",
        "{{ input.text.encode().center(10**10) }}",
        "{{ input.text.zfill(10**10) }}",
        "{{ input.text.expandtabs(10**9) }}",
    ],
)
def test_str_and_bytes_padding_is_refused_before_allocating(source: str) -> None:
    context = {"input": {"text": "a\tb"}, "vars": {}}
    with pytest.raises(InputError, match="refused by the template sandbox"):
        render(source, context)


ATOMS = ["1", "-1", "'a'", "10**9", "9**9", "input.text", "[1,2]", "(1,)", "none", "range(3)",
         "2000000000", "'%5s'", "'{:>9}'", "-'a'", "1.5", "true", "{'a': 1}"]  # fmt: skip
OPS = [" * ", " ** ", " + ", " % ", " ~ ", " // ", " - "]
FILTERS = ["center", "indent", "format", "join", "replace", "wordwrap", "list", "int",
           "truncate", "batch", "sum", "tojson", "length", "round"]  # fmt: skip
METHODS = ["ljust", "center", "zfill", "replace", "join", "format", "split", "encode"]

expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPS), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(inner, st.sampled_from(FILTERS), st.lists(inner, max_size=2)).map(
            lambda t: f"{t[0]}|{t[1]}({', '.join(t[2])})"
        ),
        st.tuples(inner, st.sampled_from(METHODS), st.lists(inner, max_size=2)).map(
            lambda t: f"{t[0]}.{t[1]}({', '.join(t[2])})"
        ),
        inner.map(lambda e: f"range({e})"),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_any_expression_is_checked_and_rendered_without_a_crash(expression: str) -> None:
    """validate's static check never raises, and a render either works or is an input
    error: never another exception, whatever the expression asks for."""
    template = Template("{{ " + expression + " }}", Path("/jobs/j.yaml"), 1, "$.prompt")
    scope = Scope({"input": None}, {})
    template_check.check_template(template, scope, "j.yaml")
    with contextlib.suppress(InputError):
        CompiledTemplate(template).render({"input": {"text": "hello"}}, "input 'k'")
