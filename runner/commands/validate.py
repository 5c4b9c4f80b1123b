"""`batchrun validate`: every problem of every job file, at once."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from runner.errors import ExitCode
from runner.spec import siblings, validate


def main(jobs: tuple[Path, ...], fmt: str) -> int:
    """Print each problem as FILE:LINE:COL: $.path: message (or JSON); 0 when all are valid."""
    results = [validate.check_file(p.absolute()) for p in jobs]
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
