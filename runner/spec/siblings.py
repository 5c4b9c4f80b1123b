"""Two jobs must not share a name (one state folder, one row in a shared state store) nor
an output (one would overwrite the other's results). `clashes` finds both among the job
files given to `validate` and the job files beside each of them in its folder.

A neighbour counts only when it is itself a valid job: a file that cannot run cannot
overwrite anything, and a folder may hold other YAML (CI files, prompts, broken drafts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from runner.errors import BatchrunError, Diagnostic
from runner.spec import validate

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class _Job:
    """What two jobs may clash on, and where it is written."""

    path: Path
    name: str
    output: Path | None  # resolved, None for an object-storage URL
    result: validate.CheckResult


_checked: dict[tuple[Path, int, int], validate.CheckResult] = {}


def _check(path: Path) -> validate.CheckResult:
    """check_file, once per file version in this process (each neighbour is read once)."""
    st = path.stat()
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _checked:
        _checked[key] = validate.check_file(path)
    return _checked[key]


def _job(result: validate.CheckResult) -> _Job | None:
    doc = result.document
    if not result.ok or doc is None:
        return None
    out = doc["output"].get("path")  # none for a postgres output
    local = isinstance(out, str) and "://" not in out
    output = Path(os.path.realpath(result.file.parent / out)) if local else None
    return _Job(result.file.resolve(), doc["name"], output, result)


def _neighbours(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.suffix in _SUFFIXES and entry.is_file():
            yield entry.resolve()


def add_clashes(results: Iterable[validate.CheckResult]) -> None:
    """Add to each given file's result a diagnostic for each name or output it shares with
    another job given, or with a valid job file in its folder; each names the other file."""
    given = [j for j in (_job(r) for r in results) if j is not None]
    seen = {j.path for j in given}
    others: list[_Job] = []
    for folder in dict.fromkeys(j.path.parent for j in given):
        for path in _neighbours(folder):
            if path not in seen and (job := _job(_check(path))) is not None:
                others.append(job)
                seen.add(path)
    for job in given:
        found = [d for o in given + others if o.path != job.path for d in _clash(job, o)]
        job.result.diagnostics.extend(found)
        job.result.diagnostics.sort(key=lambda d: (d.line, d.col))


def _clash(job: _Job, other: _Job) -> Iterator[Diagnostic]:
    other_file = validate.display_name(other.result.file)
    if job.name == other.name:
        message = (
            f"the name {job.name!r} is also the name of {other_file}: two jobs with one name "
            "share one state (.batchrun/<name>/, or one row of a shared state store): give "
            "each job its own name"
        )
        yield _at(job, "$.name", message)
    if job.output is not None and other.output is not None:
        if job.output == other.output:
            message = (
                f"this output is also written by {other_file}: one job would overwrite the "
                "other's results: give each job its own output.path"
            )
            yield _at(job, "$.output.path", message)
        elif other.output in job.output.parents or job.output in other.output.parents:
            message = (
                f"this output and the output of {other_file} are one inside the other: one "
                "job would overwrite or mix into the other's results: give each job its own "
                "output.path"
            )
            yield _at(job, "$.output.path", message)


def _at(job: _Job, path: str, message: str) -> Diagnostic:
    line, col = job.result.positions.get(path, (1, 1))
    return Diagnostic(validate.display_name(job.result.file), line, col, path, message)


def refuse_shared(jobs: Iterable[tuple[Path, str, str]]) -> None:
    """Raise `BatchrunError` when two of the (job file, name, output path) given at once
    share a name or an output: run together, one would overwrite the other."""
    names: dict[str, Path] = {}
    outputs: dict[str, Path] = {}
    for path, name, output in jobs:
        for seen, value, what in ((names, name, "name"), (outputs, output, "output")):
            first = seen.setdefault(value, path)
            if first != path:
                raise BatchrunError(
                    f"{validate.display_name(path)} and {validate.display_name(first)} have "
                    f"the same {what} ({value}): give each job its own (see `batchrun validate`)"
                )
