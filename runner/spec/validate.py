"""Checks of a job file: YAML, the JSON Schema, and what a schema cannot express.

`check_file` never raises for a bad job: it returns every problem as a `Diagnostic`, sorted
by position. `runner.schema_errors` words the schema's findings, `runner.checks` adds the
rest.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic
from runner.spec import checks, schema_errors, structured
from runner.spec.raw import RawJob
from runner.spec.yaml_source import LoadedYaml, Positions, TextStarts, load_yaml

display_name = checks.display_name


# Far above any real job file (prompts go in prompt_file), far below what takes long to parse.
MAX_JOB_FILE_BYTES = 1_000_000


@dataclass
class CheckResult:
    file: Path
    document: dict[str, Any] | None
    positions: Positions = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    text_starts: TextStarts = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def check_file(path: Path) -> CheckResult:
    """Every problem in one job file, in file order; `document` is set only when valid."""
    name = display_name(path)
    result = CheckResult(path, None)
    text = _read(path, name, result.diagnostics)
    if text is None:
        return result
    loaded = load_yaml(text, name)
    result.positions, result.text_starts = loaded.positions, loaded.text_starts
    result.diagnostics.extend(loaded.diagnostics)
    if loaded.data is not None or not loaded.diagnostics:  # key problems do not stop the rest
        result.diagnostics.extend(_document_problems(path, name, loaded))
    result.diagnostics.sort(key=lambda d: (d.line, d.col))
    if result.ok and isinstance(loaded.data, dict):
        result.document = loaded.data
    return result


def _document_problems(path: Path, name: str, loaded: LoadedYaml) -> list[Diagnostic]:
    data = loaded.data
    if data is None:
        message = (
            "the file is empty: a job needs at least version, name, input, model, "
            "max_tokens, a prompt and output (`batchrun schema` prints the format)"
        )
        return [Diagnostic(name, 1, 1, "$", message)]
    if not isinstance(data, dict):
        line, col = loaded.positions.get("$", (1, 1))
        got = schema_errors.describe(data)
        message = f"the top level must be a mapping of keys such as `version: 1`, got {got}"
        return [Diagnostic(name, line, col, "$", message)]
    found = schema_errors.schema_diagnostics(data, loaded, name)
    raw = RawJob(path, name, data, loaded)
    return found + checks.check_job(raw) + list(structured.check(raw))


def _read(path: Path, name: str, out: list[Diagnostic]) -> str | None:
    """The file's text, or None with the reason added to `out`. At most MAX_JOB_FILE_BYTES
    are read, and only from a regular file: `validate /dev/zero` ends at once too."""
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                out.append(Diagnostic(name, 0, 0, "$", "not a regular file: name a job file"))
                return None
            data = f.read(MAX_JOB_FILE_BYTES + 1)
    except FileNotFoundError:
        out.append(Diagnostic(name, 0, 0, "$", "no such file"))
        return None
    except IsADirectoryError:
        out.append(Diagnostic(name, 0, 0, "$", "this is a folder: name a job file (.yaml)"))
        return None
    except OSError as exc:
        out.append(Diagnostic(name, 0, 0, "$", f"cannot read the file: {exc.strerror}"))
        return None
    if len(data) > MAX_JOB_FILE_BYTES:
        message = (
            f"the file is larger than {MAX_JOB_FILE_BYTES:,} bytes: a job file is small; "
            "put long prompts in prompt_file and data in the inputs"
        )
        out.append(Diagnostic(name, 0, 0, "$", message))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        message = (
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}): a job file is YAML text; "
            "is this the right file?"
        )
        out.append(Diagnostic(name, line, col, "$", message))
        return None
