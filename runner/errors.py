"""The error tree. A `BatchrunError` is a clean, expected failure (exit 1); anything else is
a bug (exit 3, traceback logged)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """What the command line exits with (DESIGN.md), the one home of these numbers."""

    OK = 0  # every input has a result (or, with --no-wait, the pass succeeded)
    ERROR = 1  # a job or input error, reported clearly
    USAGE = 2  # command-line misuse (click's own code)
    INTERNAL = 3  # a bug: the traceback is logged
    DEAD_LETTERS = 4  # finished, but some requests ended in dead letters
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM (128 + 15), what Kubernetes and `docker stop` send


class BatchrunError(Exception):
    """An error a user can act on: its message names the file, the place and the fix."""

    exit_code: int = ExitCode.ERROR


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C (every step is committed before and after its
    remote call, so stopping anywhere loses nothing), then exits 143."""


class SpecError(BatchrunError):
    """A job file is invalid. Carries every diagnostic found, not only the first."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))


class InputError(BatchrunError):
    """An input (file or record) cannot be turned into a request."""


class BudgetExceeded(BatchrunError):
    """The estimated cost of the work to submit is above `budget.max_usd`."""


class RemoteError(BatchrunError):
    """The API refused or failed a call in a way retrying will not fix."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a job file, located at a YAML node.

    `line` and `col` are 1-based; 0 means the position is unknown (for example a file that
    cannot be read at all).
    """

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: str = "error"

    def format(self) -> str:
        """`FILE:LINE:COL: $.json.path: message`, with `warning: ` before a warning's text."""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }
