"""Rendering: a sandboxed Jinja2 environment turns templates into Messages API params.

Template context (DESIGN.md): `input` (files: path, name, stem, text, bytes; records:
record, line), `vars`, `job` (name, model).
"""

from __future__ import annotations

import functools

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

CONTEXT_NAMES = frozenset({"input", "vars", "job"})
FILE_INPUT_FIELDS = frozenset({"path", "name", "stem", "text", "bytes"})
BINARY_INPUT_FIELDS = FILE_INPUT_FIELDS - {"text"}  # as: document | image
RECORD_INPUT_FIELDS = frozenset({"record", "line"})
JOB_FIELDS = frozenset({"name", "model"})


@functools.cache
def environment() -> SandboxedEnvironment:
    """The one Jinja2 environment: sandboxed, undefined names are errors, text kept as is."""
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )
