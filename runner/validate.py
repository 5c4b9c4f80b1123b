"""Checks of a job file: YAML, the JSON Schema, and what a schema cannot express.

`check_file` never raises for a bad job: it returns every problem as a `Diagnostic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from runner import spec
from runner.errors import Diagnostic


@dataclass
class CheckResult:
    file: Path
    document: dict[str, Any] | None
    positions: spec.Positions = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def display_name(path: Path) -> str:
    """The job file as the user would name it: relative to the working folder when inside."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check_file(path: Path) -> CheckResult:
    """Every problem in one job file, in file order."""
    name = display_name(path)
    result = CheckResult(path, None)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        result.diagnostics.append(Diagnostic(name, 0, 0, "$", "file not found"))
        return result
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        result.diagnostics.append(Diagnostic(name, 0, 0, "$", f"cannot read as UTF-8 text: {exc}"))
        return result
    loaded = spec.load_yaml(text, name)
    result.positions = loaded.positions
    result.diagnostics.extend(loaded.diagnostics)
    if loaded.diagnostics:
        return result
    if not isinstance(loaded.data, dict):
        result.diagnostics.append(
            Diagnostic(name, 1, 1, "$", "the job file must be a YAML mapping of keys to values")
        )
        return result
    result.diagnostics.extend(_schema_errors(loaded.data, loaded.positions, name))
    if result.ok:
        result.document = loaded.data
    result.diagnostics.sort(key=lambda d: (d.line, d.col))
    return result


def _schema_errors(doc: Any, positions: spec.Positions, name: str) -> list[Diagnostic]:
    validator = jsonschema.Draft202012Validator(spec.schema())
    out = []
    for err in validator.iter_errors(doc):
        best = jsonschema.exceptions.best_match([err])
        path = "$"
        for part in best.absolute_path:
            path = spec.json_path(path, part)
        line, col = positions.get(path, (1, 1))
        out.append(Diagnostic(name, line, col, path, best.message))
    return out
