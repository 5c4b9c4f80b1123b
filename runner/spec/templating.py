"""The template contract shared by validation and rendering: the one sandboxed Jinja2
environment, templates compiled once with errors that name their file and line, and the
fields each template variable has (DESIGN.md's template context)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import new_context

from runner.errors import InputError
from runner.spec import sandbox
from runner.spec.hints import shown
from runner.spec.model import JobSpec, Template

FILE_INPUT_FIELDS = frozenset({"path", "name", "stem", "text", "bytes"})
BINARY_INPUT_FIELDS = FILE_INPUT_FIELDS - {"text"}  # as: document | image
RECORD_INPUT_FIELDS = frozenset({"record", "line"})
JOB_FIELDS = frozenset({"name", "model"})

# Set by the job's own fields; `params` may not set them a second time.
CORE_PARAMS = ("model", "max_tokens", "system", "messages")


@functools.cache
def environment() -> sandbox.BoundedEnvironment:
    """The one Jinja2 environment: sandboxed and bounded (`runner.spec.sandbox`), undefined
    names are errors, text kept as is."""
    return sandbox.BoundedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )


class CompiledTemplate:
    """A `Template` compiled once, rendering with errors that name the file and line."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self._env_globals = dict(environment().globals)
        try:
            self._compiled = environment().from_string(template.source)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(
                f"{self._where(exc.lineno)}: template syntax error: {exc.message}"
            ) from None

    def render(self, context: Mapping[str, Any], who: str) -> str:
        """Render with `context`; `who` names the input in an error message.

        Raises `InputError` for an undefined variable, a sandbox violation or bound, or any
        other error the template raises, with the template's file and line: whatever a job
        file's template does is the job's problem, never batchrun's (exit 1, not 3).
        """
        # What `jinja2.Template.render` does, minus merging the environment's globals into a
        # fresh dict and listing their names on every call (a third of the render time): the
        # context is a copy of `context` that already holds those globals.
        compiled = self._compiled
        sandbox.start_render()
        try:
            ctx = new_context(
                environment(),
                compiled.name,
                compiled.blocks,
                {**self._env_globals, **context},
                True,
            )
            try:
                return environment().concat(compiled.root_render_func(ctx))
            except Exception:
                environment().handle_exception()
        except (SecurityError, sandbox.TemplateBudgetError) as exc:
            line = _template_line(exc.__traceback__)
            raise InputError(
                f"{self._where(line)}: {who}: refused by the template sandbox: {exc}"
            ) from None
        except jinja2.TemplateError as exc:
            line = getattr(exc, "lineno", None) or _template_line(exc.__traceback__)
            raise InputError(f"{self._where(line)}: {who}: {_worded(exc)}") from None
        except RecursionError:
            line = _template_line(None)
            raise InputError(
                f"{self._where(line)}: {who}: refused by the template sandbox: the template "
                "recurses too deeply"
            ) from None
        except MemoryError:
            # Past the sandbox's bounds only if memory was already short: still the input's.
            raise InputError(
                f"{self._where(None)}: {who}: the template ran out of memory: make it build "
                "less text"
            ) from None
        except Exception as exc:
            # An expression that fails on this input's data (`{{ record.n + 1 }}` on a
            # string): the input's problem, not batchrun's, so it is reported like one.
            line = _template_line(exc.__traceback__)
            raise InputError(f"{self._where(line)}: {who}: {type(exc).__name__}: {exc}") from None

    def _where(self, lineno: int | None) -> str:
        line = self.template.line + (lineno or 1) - 1
        return f"{shown(self.template.origin)}:{line}: {self.template.json_path}"


_NO_ATTRIBUTE = re.compile(r"^'dict object' has no attribute '(.*)'$")


def _worded(exc: jinja2.TemplateError) -> str:
    """Jinja's message, with a missing field said as such: the input's data lacks it."""
    text = exc.message or str(exc)
    missing = _NO_ATTRIBUTE.match(text)
    if missing is None:
        return text
    return (
        f"this input has no field {missing.group(1)!r}: `batchrun validate` lists every "
        "record that lacks a field the templates use; or guard it with "
        f"`{{% if record.{missing.group(1)} is defined %}}`"
    )


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame: Jinja2 rewrites tracebacks so that
    frames of compiled templates carry the template's own line numbers."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def job_context(job: JobSpec) -> dict[str, Any]:
    """The `job` template variable."""
    return {"name": job.name, "model": job.model}
