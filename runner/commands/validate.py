"""`batchrun validate`: every problem of every job file, at once."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from runner.errors import Diagnostic, ExitCode
from runner.spec import record_checks, siblings, validate
from runner.spec.load import build_spec


def main(jobs: tuple[Path, ...], fmt: str) -> int:
    """Print each problem as FILE:LINE:COL: $.path: message (or JSON); 0 when all are valid."""
    results = [_checked(p.absolute()) for p in jobs]
    siblings.add_clashes(results)
    diagnostics = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        print(orjson.dumps([d.as_dict() for d in diagnostics], option=orjson.OPT_INDENT_2).decode())
    else:
        for d in diagnostics:
            print(d.format())
        for r in results:
            if r.ok:
                print(f"{validate.display_name(r.file)}: ok", file=sys.stderr)
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.ERROR


def diagnostics(path: Path) -> list[Diagnostic]:
    """Every problem of one job file, its records included (the Python API's validate)."""
    return _checked(path).diagnostics


def _checked(path: Path) -> validate.CheckResult:
    result = validate.check_file(path)
    result.diagnostics.extend(_record_problems(result))
    return result


def _record_problems(result: validate.CheckResult) -> list[Diagnostic]:
    """A valid records job's records, each checked for the fields its templates use: only
    here, since a run or a plan would otherwise read every record one more time."""
    if not result.ok or result.document is None:
        return []
    job = build_spec(result.file.resolve(), result.document, result.positions, result.text_starts)
    return record_checks.check_records(job)
