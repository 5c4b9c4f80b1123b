"""`batchrun validate` on the records themselves: every JSONL record (or the CSV header) that
lacks a field the templates use, reported at once with its line, instead of `plan` stopping at
the first one with "'dict object' has no attribute ...".

Only `validate` reads the records (a run or a plan would otherwise read every input twice);
a field used under `is defined` or `| default(...)` is optional and not checked.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import orjson
from jinja2 import nodes

from runner.errors import Diagnostic
from runner.spec.hints import shown
from runner.spec.model import JobSpec, Template
from runner.spec.templating import environment

MAX_REPORTED = 20  # records listed one by one; the rest are counted
_GUARDS = frozenset({"defined", "undefined", "default", "d"})
_DICT_ATTRIBUTES = frozenset(dir(dict))  # `record.get(...)`, `record.items()`: not fields


@dataclass(frozen=True)
class Use:
    """The first use of a record field: the field and where its template uses it."""

    field: str
    where: str  # `job.yaml:9`

    def message(self) -> str:
        return f"record has no field {self.field!r} (used at {self.where})"


def check_records(job: JobSpec) -> list[Diagnostic]:
    """Every record of a jsonl/csv job missing a field its templates use (capped)."""
    path = job.input.path
    if job.input.kind not in ("jsonl", "csv") or path is None or not path.is_file():
        return []
    uses = used_fields(job)
    if not uses:
        return []
    file = shown(path)
    problems = _csv_header(path, file, uses) if job.input.kind == "csv" else None
    if problems is None:
        problems = list(_capped(file, _jsonl(path, uses)))
    return problems


def used_fields(job: JobSpec) -> list[Use]:
    """The record fields the request and key templates require, in order of first use."""
    templates = [job.prompt, job.input.key, *(m.content for m in job.messages or ())]
    found: dict[str, Use] = {}
    for template in templates:
        if template is not None:
            for name, line in _references(template):
                found.setdefault(name, Use(name, f"{shown(template.origin)}:{line}"))
    return list(found.values())


def _references(template: Template) -> Iterator[tuple[str, int]]:
    try:
        ast = environment().parse(template.source)
    except jinja2.TemplateSyntaxError:
        return  # reported by the template checks
    guarded = {name for guard in _guard_nodes(ast) for name, _ in _fields(guard)}
    for name, lineno in _fields(ast):
        if name not in guarded:
            yield name, template.position(lineno)[0]


def _guard_nodes(ast: nodes.Node) -> Iterator[nodes.Node]:
    for guard in ast.find_all((nodes.Test, nodes.Filter)):
        if guard.name in _GUARDS:
            yield guard
    for compare in ast.find_all(nodes.Compare):  # `'lang' in record`
        if any(op.op in ("in", "notin") for op in compare.ops):
            yield compare


def _fields(ast: nodes.Node) -> Iterator[tuple[str, int]]:
    """(field, template line) for `record.F`, `record['F']` and `input.record.F`."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node  # type: ignore[attr-defined]
        if not _is_record(target):
            continue
        name = _attr(node)
        if name is not None and name not in _DICT_ATTRIBUTES:
            yield name, node.lineno


def _is_record(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Name):
        return node.name == "record"
    return (
        isinstance(node, nodes.Getattr)
        and node.attr == "record"
        and isinstance(node.node, nodes.Name)
        and node.node.name == "input"
    )


def _attr(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    arg = node.arg  # type: ignore[attr-defined]
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def _jsonl(path: Path, uses: list[Use]) -> Iterator[tuple[int, Callable[[], str]]]:
    """(line, its message) for each problem; the message is worded only when it is shown,
    since a file of 100k records can have 100k of them and only the first are listed."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield number, functools.partial(str, f"not valid JSON: {exc}")
                continue
            if not isinstance(record, dict):
                kind = type(record).__name__
                yield number, functools.partial(str, f"each line must be a JSON object, not {kind}")
                continue
            for use in uses:
                if use.field not in record:
                    yield number, use.message


def _capped(file: str, problems: Iterator[tuple[int, Callable[[], str]]]) -> Iterator[Diagnostic]:
    """The first MAX_REPORTED problems, then one line counting the rest."""
    more, first_unlisted = 0, 0
    for i, (line, message) in enumerate(problems):
        if i < MAX_REPORTED:
            yield Diagnostic(file, line, 1, "$.input.jsonl", message())
            continue
        more += 1
        first_unlisted = first_unlisted or line
    if more:
        text = f"... and {more} more like these from this line on (the first {MAX_REPORTED} listed)"
        yield Diagnostic(file, first_unlisted, 1, "$.input.jsonl", text)


def _csv_header(path: Path, file: str, uses: list[Use]) -> list[Diagnostic]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []  # unreadable: the run says why, with the line
    return [
        Diagnostic(
            file,
            1,
            1,
            "$.input.csv",
            f"the header has no column {u.field!r} (used at {u.where}): no record has it",
        )
        for u in uses
        if u.field not in header
    ]
