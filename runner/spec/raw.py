"""A job document as validation sees it: possibly invalid, with what the checks need to
locate their findings. Its own module so that check modules of their own
(`model_checks`, `output_checks`) import it without importing `checks`, which lists them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic
from runner.spec.yaml_source import LoadedYaml


@dataclass(frozen=True)
class RawJob:
    """A possibly invalid document with what the checks need to locate their findings."""

    path: Path  # the job file, absolute
    file: str  # the job file as shown to the user
    doc: dict[str, Any]
    loaded: LoadedYaml

    def get(self, *keys: str, kind: type | tuple[type, ...] = object) -> Any:
        """doc[k1][k2]... when every level exists and the value is of `kind`, else None."""
        value: Any = self.doc
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    def at(
        self, path: str, message: str, severity: str = "error", *, key: bool = False
    ) -> Diagnostic:
        where = self.loaded.key_positions.get(path) if key else None
        line, col = where or self.loaded.positions.get(path) or (1, 1)
        return Diagnostic(self.file, line, col, path, message, severity)

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()
