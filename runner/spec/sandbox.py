"""The template sandbox's bounds: what one render may allocate and compute.

Jinja2's `SandboxedEnvironment` stops templates from reaching Python internals, but not
from asking for a 10 GB string (`'x' * 10**10`, `|center(2000000000)`), a number of
millions of digits (`9 ** (9 ** 9)`) or a loop of 10^10 steps. A template comes from a job
file, which `validate` reads from pull requests: so each render here has a budget.

- size: no string, list or other sized value a template builds may exceed `MAX_SIZE`
  items; operations whose result size is known beforehand (repetition, padding, joins,
  replacements, format widths) are refused before they allocate, the rest are checked after.
- numbers: no integer a template computes may exceed `MAX_INT_BITS` bits.
- steps: loop iterations and calls together may not exceed `MAX_STEPS`.
- depth: macro and recursive-loop calls may not nest deeper than `MAX_DEPTH`.

A render that passes a bound raises `TemplateBudgetError`, which rendering reports as an
input error naming the input, the template and its line; `static_problems` finds for
`validate` what constants alone already decide (`{{ 'x' * 10**10 }}`).
"""

from __future__ import annotations

import functools
import re
import string
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment
from jinja2.utils import _PassArg

MAX_SIZE = 32_000_000  # a Messages request may hold 32 MB: no template needs more
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
MAX_STEPS = 2_000_000  # loop iterations and calls in one render: about a second
MAX_DEPTH = 64
MAX_WIDTH = 100_000  # a format width or precision (`%5d`, `{:>5}`)


class TemplateBudgetError(TemplateRuntimeError):
    """A render went past one of the sandbox's bounds."""


class _Budget(threading.local):
    steps = 0
    depth = 0


_budget = _Budget()


def start_render() -> None:
    """Reset the budget: call before each render."""
    _budget.steps = 0
    _budget.depth = 0


def _step(count: int = 1) -> None:
    _budget.steps += count
    if _budget.steps > MAX_STEPS:
        raise TemplateBudgetError(
            f"the template ran more than {MAX_STEPS:,} steps (loop iterations and calls): "
            "it would not finish in reasonable time"
        )


def _size_error(what: str, size: int, unit: str = "characters") -> TemplateBudgetError:
    return TemplateBudgetError(
        f"{what} would be {size:,} {unit} long, past the sandbox's {MAX_SIZE:,}"
    )


_SIZED = frozenset({str, list, tuple, dict, set, bytes})


def _check_size(value: Any, what: str = "the result") -> Any:
    """`value`, unless it is past a bound. Runs after every filter and call: the builtin
    types are tested first, by identity, as `isinstance` on an ABC costs more."""
    kind = type(value)
    if kind in _SIZED or (isinstance(value, Sized) and kind is not range):
        if len(value) > MAX_SIZE:
            raise _size_error(what, len(value), _unit(value))
    elif kind is int and value.bit_length() > MAX_INT_BITS:
        raise _int_error()
    return value


def _unit(value: Any) -> str:
    return (
        "characters" if isinstance(value, str) else "bytes" if isinstance(value, bytes) else "items"
    )


def _int_error() -> TemplateBudgetError:
    return TemplateBudgetError(
        f"a number of more than {MAX_INT_BITS:,} bits (about {MAX_INT_BITS * 3 // 10:,} "
        "digits), past the sandbox's bound"
    )


def _length(value: Any) -> int:
    return len(value) if isinstance(value, Sized) else len(str(value))


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


# ---------------------------------------------------------------------------------------
# Operators


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before computing it, an operation whose result would be past a bound."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            sized = isinstance(seq, str | bytes | list | tuple) and isinstance(times, int)
            if sized and len(seq) * max(times, 0) > MAX_SIZE:
                raise _size_error("a repetition", len(seq) * times, _unit(seq))
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise _int_error()
    elif operator == "**":
        ints = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
        if ints and _int_bits(left) * right > MAX_INT_BITS:
            raise _int_error()
    elif operator == "+":
        sized = isinstance(left, str | bytes | list | tuple) and isinstance(right, Sized)
        if sized and len(left) + len(right) > MAX_SIZE:
            raise _size_error("a concatenation", len(left) + len(right), _unit(left))
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left, right)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(fmt: str, args: Any) -> None:
    """`'%5d' % x` and `|format`: widths and precisions of at most MAX_WIDTH."""
    stars = iter(args if isinstance(args, tuple) else (args,))
    for match in _PERCENT_SPEC.finditer(fmt):
        for group in match.groups():
            if group is None:
                continue
            width = next(stars, 0) if group == "*" else int(group)
            _check_width(width)


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise TemplateBudgetError(
            f"a width or precision of {width:,} is past the sandbox's {MAX_WIDTH:,}"
        )


def _check_brace_format(fmt: str, *args: Any, **kwargs: Any) -> None:
    """`'{:>5}'.format(x)`: widths and precisions of at most MAX_WIDTH, nested ones too."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _text, _field, spec, _conversion in parsed:
        if not spec:
            continue
        for number in re.findall(r"\d+", spec):
            _check_width(int(number))
        if "{" in spec:  # a nested width (`{:>{w}}`): any number passed could be it
            for value in (*args, *kwargs.values()):
                _check_width(value)


# ---------------------------------------------------------------------------------------
# Calls: str methods whose result size their arguments decide


def _width_arg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    return args[0] if args else kwargs.get(name, 0)


def _check_str_method(
    text: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The methods of str and bytes whose result size their arguments decide."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _width_arg(args, kwargs, "width")
        if isinstance(width, int) and width > MAX_SIZE:
            raise _size_error(f"str.{name}", width)
    elif name == "expandtabs":
        size = _width_arg(args, kwargs, "tabsize") or 8
        tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        if isinstance(size, int) and size * (tabs + 1) + len(text) > MAX_SIZE:
            raise _size_error("str.expandtabs", size * tabs)
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "join" and args:
        _check_join(text, args[0])
    elif name == "format" and isinstance(text, str):
        _check_brace_format(text, *args, **kwargs)
    elif name == "format_map" and isinstance(text, str) and args and isinstance(args[0], dict):
        _check_brace_format(text, **args[0])


def _check_replace(text: str | bytes, old: Any, new: Any, count: Any) -> None:
    if type(old) is not type(text) or type(new) is not type(text):
        return
    haystack: Any = text  # old is of text's own type (checked above)
    found = len(text) + 1 if not old else haystack.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    size = len(text) + found * (len(new) - len(old))
    if size > MAX_SIZE:
        raise _size_error("a replacement", size)


def _check_join(separator: str | bytes, items: Any) -> None:
    if isinstance(items, Sized) and len(items) > 1 and len(separator) * len(items) > MAX_SIZE:
        raise _size_error("a join", len(separator) * len(items))


# ---------------------------------------------------------------------------------------
# Filters


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its arguments checked first (for the filters that pad or repeat) and its
    result checked after. Not a step: without a loop or a call (both counted) a template
    applies each of its filters once."""
    check = _FILTER_CHECKS.get(name)
    passed = 1 if _PassArg.from_obj(fn) is not None else 0  # a context comes first
    what = f"the {name} filter's result"

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[passed:], **kwargs)
        result = fn(*args, **kwargs)
        if type(result) is str and len(result) <= MAX_SIZE:
            return result  # the common case, without a call: half the wrapper's cost
        return _check_size(result, what)

    return bounded


def _filter_center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if isinstance(width, int) and width > MAX_SIZE:
        raise _size_error("the center filter's result", width)


def _filter_indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    lines = str(value).count("\n") + 1
    pad = width if isinstance(width, int) else len(str(width))
    if pad * lines + _length(value) > MAX_SIZE:
        raise _size_error("the indent filter's result", pad * lines)


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_percent_format(value, kwargs or args)


def _filter_join(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(d, str) and isinstance(value, Sized):
        _check_join(d, value)


def _filter_replace(value: Any, old: Any = "", new: Any = "", count: Any = None, **_: Any) -> None:
    _check_replace(str(value), old, new, -1 if count is None else count)


def _filter_wordwrap(value: Any, width: Any = 79, *_: Any, **__: Any) -> None:
    if isinstance(width, int) and width < 1:
        raise TemplateBudgetError("wordwrap needs a width of at least 1")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "format": _filter_format,
    "join": _filter_join,
    "replace": _filter_replace,
    "wordwrap": _filter_wordwrap,
}


def _bounded_lipsum(fn: Callable[..., Any]) -> Callable[..., Any]:
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        if n * max > MAX_SIZE // 10:  # words of up to ~10 characters
            raise _size_error("lipsum's text", n * max * 10)
        return fn(n, html, min, max)

    return lipsum


# ---------------------------------------------------------------------------------------
# Code generation: loops and `~` go through the budget


# The filter every `{% for %}` iterable is passed through (added to the parsed template):
# a name the template syntax cannot spell, so no template calls it itself.
STEPS_FILTER = "batchrun-steps"


def _counted(iterable: Any) -> Iterator[Any]:
    """A loop's iterable, one step per item."""
    for item in iterable:
        _step()
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
        self.filters = {name: _bounded_filter(name, fn) for name, fn in self.filters.items()}
        self.filters[STEPS_FILTER] = _counted
        self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])  # type: ignore[arg-type]

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _count_loops(super()._parse(source, name, filename))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        # The sandbox hands out str.format as a wrapper of the bound method.
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str | bytes):
            _check_str_method(owner, getattr(method, "__name__", ""), args, kwargs)
        _budget.depth += 1
        try:
            if _budget.depth > MAX_DEPTH:
                raise TemplateBudgetError(
                    f"calls nested more than {MAX_DEPTH} deep (a macro or loop that recurses "
                    "without end?)"
                )
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            _budget.depth -= 1
        if isinstance(owner, list | dict | set):
            _check_size(owner)  # append, extend, update grow their owner in place
        return _check_size(result)

    def bounded_join(self, parts: Iterable[Any]) -> str:
        """`a ~ b`: refused past MAX_SIZE."""
        texts = [str(p) for p in parts]
        size = sum(map(len, texts))
        if size > MAX_SIZE:
            raise _size_error("a concatenation (~)", size)
        return "".join(texts)

    def bounded_concat(self, parts: Iterable[str]) -> str:
        """A template's (or a block's, a macro's) output: refused past MAX_SIZE."""
        out: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > MAX_SIZE:
                raise _size_error("the rendered text", size)
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
        _check_binop(node.operator, left, right)
        try:
            return _OPERATORS[node.operator](left, right)
        except Exception as exc:  # a TypeError or a ZeroDivisionError: the render's to report
            raise _NotConstant from exc
    raise _NotConstant


def _static_check(node: nodes.Node) -> None:
    if isinstance(node, nodes.BinExpr):
        _constant(node)
    elif isinstance(node, nodes.Filter) and node.name in _FILTER_CHECKS:
        value = _constant(node.node) if isinstance(node.node, nodes.Const) else ""
        args, kwargs = _constant_args(node)
        _FILTER_CHECKS[node.name](value, *args, **kwargs)
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
            _check_str_method(owner, node.node.attr, args, kwargs)


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
