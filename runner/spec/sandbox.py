"""The bounded template sandbox: Jinja2's `SandboxedEnvironment` with the bounds of
runner.spec.bounds on every render (loops counted, operators, calls, filters and `~`
checked), and `static_problems`, which finds for `validate` what constants alone already
decide (`{{ 'x' * 10**10 }}`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment

from runner.spec.bounds import (
    FILTER_CHECKS,
    MAX_DEPTH,
    MAX_SIZE,
    TemplateBudgetError,
    bounded_filter,
    bounded_lipsum,
    budget,
    check_binop,
    check_size,
    check_str_method,
    size_error,
    start_render,
    step,
)

__all__ = ["BoundedEnvironment", "TemplateBudgetError", "start_render", "static_problems"]


# ---------------------------------------------------------------------------------------
# Code generation: loops and `~` go through the budget


# The filter every `{% for %}` iterable is passed through (added to the parsed template):
# a name the template syntax cannot spell, so no template calls it itself.
STEPS_FILTER = "batchrun-steps"


def _counted(iterable: Any) -> Iterator[Any]:
    """A loop's iterable, one step per item."""
    for item in iterable:
        step()
        yield item


def _count_loops(ast: nodes.Template) -> nodes.Template:
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, STEPS_FILTER, [], [], None, None, lineno=loop.lineno)
    return ast


class _CodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        try:
            self.write(repr(node.as_const(frame.eval_ctx)))  # constants stay folded
            return
        except nodes.Impossible:
            pass
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with the bounds of this module on every render."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: bounded_filter(name, fn) for name, fn in self.filters.items()}
        self.filters[STEPS_FILTER] = _counted
        self.globals["lipsum"] = bounded_lipsum(self.globals["lipsum"])  # type: ignore[arg-type]

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _count_loops(super()._parse(source, name, filename))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        step()
        check_binop(operator, left, right)
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        step()
        # The sandbox hands out str.format as a wrapper of the bound method.
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str | bytes):
            check_str_method(owner, getattr(method, "__name__", ""), args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise TemplateBudgetError(
                    f"calls nested more than {MAX_DEPTH} deep (a macro or loop that recurses "
                    "without end?)"
                )
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        if isinstance(owner, list | dict | set):
            check_size(owner)  # append, extend, update grow their owner in place
        return check_size(result)

    def bounded_join(self, parts: Iterable[Any]) -> str:
        """`a ~ b`: refused past MAX_SIZE."""
        texts = [str(p) for p in parts]
        size = sum(map(len, texts))
        if size > MAX_SIZE:
            raise size_error("a concatenation (~)", size)
        return "".join(texts)

    def bounded_concat(self, parts: Iterable[str]) -> str:
        """A template's (or a block's, a macro's) output: refused past MAX_SIZE."""
        out: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > MAX_SIZE:
                raise size_error("the rendered text", size)
            out.append(part)
        return "".join(out)

    concat = bounded_concat


# ---------------------------------------------------------------------------------------
# The same bounds, found before rendering: `validate` reports what constants alone decide


class _NotConstant(Exception):
    pass


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "*": lambda a, b: a * b, "**": lambda a, b: a**b, "+": lambda a, b: a + b,
    "-": lambda a, b: a - b, "%": lambda a, b: a % b, "//": lambda a, b: a // b,
}  # fmt: skip


def _constant(node: nodes.Node) -> Any:
    """The value of a constant expression, computed within the bounds; else _NotConstant."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Neg):
        return -_constant(node.node)
    if isinstance(node, nodes.Tuple):
        return tuple(_constant(item) for item in node.items)
    if isinstance(node, nodes.List):
        return [_constant(item) for item in node.items]
    if isinstance(node, nodes.BinExpr) and node.operator in _OPERATORS:
        left, right = _constant(node.left), _constant(node.right)
        check_binop(node.operator, left, right)
        try:
            return _OPERATORS[node.operator](left, right)
        except Exception as exc:  # a TypeError or a ZeroDivisionError: the render's to report
            raise _NotConstant from exc
    raise _NotConstant


def _static_check(node: nodes.Node) -> None:
    if isinstance(node, nodes.BinExpr):
        _constant(node)
    elif isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS:
        value = _constant(node.node) if isinstance(node.node, nodes.Const) else ""
        args, kwargs = _constant_args(node)
        FILTER_CHECKS[node.name](value, *args, **kwargs)
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
        if node.node.name == "range" and node.args:
            bound = max(_constant(arg) for arg in node.args)
            if isinstance(bound, int) and bound > MAX_RANGE:
                raise TemplateBudgetError(
                    f"range() of {bound:,} items, past the sandbox's {MAX_RANGE:,}"
                )
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        owner = _constant(node.node.node)
        if isinstance(owner, str | bytes):
            args, kwargs = _constant_args(node)
            check_str_method(owner, node.node.attr, args, kwargs)


def _constant_args(node: nodes.Filter | nodes.Call) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(_constant(arg) for arg in node.args)
    kwargs = {str(kw.key): _constant(kw.value) for kw in node.kwargs}
    return args, kwargs


def static_problems(ast: nodes.Template) -> Iterator[tuple[int, str]]:
    """(template line, message) for each expression whose constants alone already pass a
    bound: the render would refuse it, whatever the input."""
    reported: set[int] = set()
    for node in ast.find_all((nodes.BinExpr, nodes.Filter, nodes.Call)):
        if node.lineno in reported:
            continue
        try:
            _static_check(node)
        except TemplateBudgetError as exc:
            reported.add(node.lineno)
            yield node.lineno, f"{exc}: the template sandbox refuses it when rendering"
        except Exception:  # noqa: S112 - not constant, or an error the render will report
            continue
