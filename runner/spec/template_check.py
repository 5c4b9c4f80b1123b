"""Static checks of a Jinja2 template: it compiles, and it uses only variables that exist.

Templates are never rendered here: the checks walk jinja2's AST, so a job is checked
without reading a single input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import jinja2
from jinja2 import meta, nodes

from runner.errors import Diagnostic
from runner.spec import sandbox, templating
from runner.spec.model import Template


@dataclass(frozen=True)
class Scope:
    """The variables a template may use.

    `fields` maps each top-level name to the attributes it has, or to None when any
    attribute is fine (a record's own fields). `why_not` explains, per `name` or
    `name.attr`, why a name that looks right is unavailable in this template.
    """

    fields: Mapping[str, frozenset[str] | None]
    why_not: Mapping[str, str]


def check_template(template: Template, scope: Scope, file: str) -> list[Diagnostic]:
    """Every problem in `template`, reported in `file` at the template's own lines."""
    env = templating.environment()
    try:
        ast = env.parse(template.source)
        env.compile(ast)  # unknown filters and tests are only found when compiling
    except jinja2.TemplateSyntaxError as exc:
        return [_at(template, file, exc.lineno, f"template syntax error: {exc.message}")]
    free = meta.find_undeclared_variables(ast) - set(env.globals)  # range, dict, namespace...
    found = [*_other_files(ast), *_unknown_names(ast, free, scope), *sandbox.static_problems(ast)]
    return [_at(template, file, line, message) for line, message in sorted(found)]


def _other_files(ast: nodes.Template) -> Iterator[tuple[int, str]]:
    """The environment has no loader, so include/import/extends could only fail later."""
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = type(node).__name__.lower().replace("fromimport", "from ... import")
        yield node.lineno, f"templates cannot {tag} other templates: write the text in place"


def _at(template: Template, file: str, template_line: int, message: str) -> Diagnostic:
    line, col = template.position(template_line)
    return Diagnostic(file, line, col, template.json_path, message)


def _unknown_names(ast: nodes.Template, free: set[str], scope: Scope) -> Iterator[tuple[int, str]]:
    """(template line, message) for each distinct unknown name or attribute, first use."""
    reported: set[str] = set()
    for node in ast.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        ref = _reference(node, free)
        if ref is None or ref in reported:
            continue
        message = _problem(ref, scope)
        if message is not None:
            reported.add(ref)
            yield node.lineno, message


def _reference(node: nodes.Node, free: set[str]) -> str | None:
    """`name` or `name.attr` for a use of a context variable; None for anything else."""
    if isinstance(node, nodes.Name):
        return node.name if node.ctx == "load" and node.name in free else None
    target = node.node  # type: ignore[attr-defined]
    if not isinstance(target, nodes.Name) or target.name not in free:
        return None
    if isinstance(node, nodes.Getattr):
        return f"{target.name}.{node.attr}"
    arg = node.arg  # type: ignore[attr-defined]
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        return f"{target.name}.{arg.value}"
    return None


def _problem(ref: str, scope: Scope) -> str | None:
    if ref in scope.why_not:
        return scope.why_not[ref]
    name, _, attr = ref.partition(".")
    if name not in scope.fields and attr:
        return None  # reported once, at the name itself
    if name not in scope.fields:
        known = sorted(scope.fields)
        return (
            f"unknown variable {name!r}: {_hint(name, known)}templates can use {', '.join(known)}"
        )
    allowed = scope.fields[name]
    if not attr or allowed is None or attr in allowed:
        return None
    if name == "vars":
        close = _hint(attr, sorted(allowed))
        return f"vars.{attr} is not defined: {close}{'or ' if close else ''}add it under `vars:`"
    listed = ", ".join(sorted(allowed))
    return f"{name} has no field {attr!r}: {_hint(attr, sorted(allowed))}{name} has {listed}"


def _hint(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""
