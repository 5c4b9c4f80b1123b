"""The template sandbox's bounds: what one render may allocate and compute, and the
checks that enforce them (the environment that applies them: runner.spec.sandbox).

Jinja2's `SandboxedEnvironment` stops templates from reaching Python internals, but not
from asking for a 10 GB string (`'x' * 10**10`, `|center(2000000000)`), a number of
millions of digits (`9 ** (9 ** 9)`) or a loop of 10^10 steps. A template comes from a job
file, which `validate` reads from pull requests: so each render here has a budget.

- size: no string, list or other sized value a template builds may exceed `MAX_SIZE`
  items; operations whose result size is known beforehand (repetition, padding, joins,
  replacements, format widths) are refused before they allocate, the rest are checked after.
- numbers: no integer a template computes may exceed `MAX_INT_BITS` bits.
- steps: loop iterations and calls together may not exceed `MAX_STEPS` (a filter is
  no step: without loops and calls a template applies each of its filters once).
- depth: macro and recursive-loop calls may not nest deeper than `MAX_DEPTH`.

Passing a bound raises `TemplateBudgetError`, which rendering reports as an input error
naming the input, the template and its line.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from collections.abc import Callable, Sized
from typing import Any

from jinja2.exceptions import TemplateRuntimeError
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


budget = _Budget()


def start_render() -> None:
    """Reset the budget: call before each render."""
    budget.steps = 0
    budget.depth = 0


def step(count: int = 1) -> None:
    budget.steps += count
    if budget.steps > MAX_STEPS:
        raise TemplateBudgetError(
            f"the template ran more than {MAX_STEPS:,} steps (loop iterations and calls): "
            "it would not finish in reasonable time"
        )


def size_error(what: str, size: int, unit: str = "characters") -> TemplateBudgetError:
    return TemplateBudgetError(
        f"{what} would be {size:,} {unit} long, past the sandbox's {MAX_SIZE:,}"
    )


_SIZED = frozenset({str, list, tuple, dict, set, bytes})


def check_size(value: Any, what: str = "the result") -> Any:
    """`value`, unless it is past a bound. Runs after every filter and call: the builtin
    types are tested first, by identity, as `isinstance` on an ABC costs more."""
    kind = type(value)
    if kind in _SIZED or (isinstance(value, Sized) and kind is not range):
        if len(value) > MAX_SIZE:
            raise size_error(what, len(value), _unit(value))
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


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before computing it, an operation whose result would be past a bound."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            sized = isinstance(seq, str | bytes | list | tuple) and isinstance(times, int)
            if sized and len(seq) * max(times, 0) > MAX_SIZE:
                raise size_error("a repetition", len(seq) * times, _unit(seq))
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise _int_error()
    elif operator == "**":
        ints = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
        if ints and _int_bits(left) * right > MAX_INT_BITS:
            raise _int_error()
    elif operator == "+":
        sized = isinstance(left, str | bytes | list | tuple) and isinstance(right, Sized)
        if sized and len(left) + len(right) > MAX_SIZE:
            raise size_error("a concatenation", len(left) + len(right), _unit(left))
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


def check_str_method(
    text: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The methods of str and bytes whose result size their arguments decide."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _width_arg(args, kwargs, "width")
        if isinstance(width, int) and width > MAX_SIZE:
            raise size_error(f"str.{name}", width)
    elif name == "expandtabs":
        size = _width_arg(args, kwargs, "tabsize") or 8
        tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        if isinstance(size, int) and size * (tabs + 1) + len(text) > MAX_SIZE:
            raise size_error("str.expandtabs", size * tabs)
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
        raise size_error("a replacement", size)


def _check_join(separator: str | bytes, items: Any) -> None:
    if isinstance(items, Sized) and len(items) > 1 and len(separator) * len(items) > MAX_SIZE:
        raise size_error("a join", len(separator) * len(items))


# ---------------------------------------------------------------------------------------
# Filters


def bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its arguments checked first (for the filters that pad or repeat) and its
    result checked after. Not a step: without a loop or a call (both counted) a template
    applies each of its filters once."""
    check = FILTER_CHECKS.get(name)
    passed = 1 if _PassArg.from_obj(fn) is not None else 0  # a context comes first
    what = f"the {name} filter's result"

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(*args[passed:], **kwargs)
        result = fn(*args, **kwargs)
        if type(result) is str and len(result) <= MAX_SIZE:
            return result  # the common case, without a call: half the wrapper's cost
        return check_size(result, what)

    return bounded


def _filter_center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if isinstance(width, int) and width > MAX_SIZE:
        raise size_error("the center filter's result", width)


def _filter_indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    lines = str(value).count("\n") + 1
    pad = width if isinstance(width, int) else len(str(width))
    if pad * lines + _length(value) > MAX_SIZE:
        raise size_error("the indent filter's result", pad * lines)


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


FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "format": _filter_format,
    "join": _filter_join,
    "replace": _filter_replace,
    "wordwrap": _filter_wordwrap,
}


def bounded_lipsum(fn: Callable[..., Any]) -> Callable[..., Any]:
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        if n * max > MAX_SIZE // 10:  # words of up to ~10 characters
            raise size_error("lipsum's text", n * max * 10)
        return fn(n, html, min, max)

    return lipsum
