"""The typed job: the frozen dataclasses a validated job file becomes (DESIGN.md's spec).

Nothing here reads files or validates: `runner.spec.load` builds these, and every stage below
the loader (validation included) depends only on this module.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from runner.spec.yaml_source import Positions, TextStarts
from runner.storage import Url

CacheTTL = Literal["5m", "1h"]
InputKind = Literal["glob", "jsonl", "csv"]
InputAs = Literal["text", "document", "image"]
SinkType = Literal["jsonl", "files", "sqlite", "postgres"]
FileContent = Literal["text", "json", "message"]


@dataclass(frozen=True)
class Template:
    """A Jinja2 template's source and where it came from, for error messages.

    `origin` is the file holding it (the job file, or a prompt/system file); `line` and
    `col` (1-based) are where the template text starts in `origin`: for a literal block
    (`prompt: |`) the line after the `|`. Use `position(N)` to place an error on the
    template's own line N: `line + N - 1` for files and literal blocks, where lines map one
    to one; the scalar's start for quoted, plain and folded scalars, where they do not.
    """

    source: str
    origin: Path
    line: int = 1
    json_path: str = "$"
    col: int = 1  # column of the template's first character in `origin`
    # False for quoted, plain and folded (`>`) scalars: their lines do not map one to one
    # onto the job file's lines, so every error is reported at the scalar's start.
    line_exact: bool = True

    def position(self, template_line: int) -> tuple[int, int]:
        """(line, col) in `origin` of the template's own 1-based line `template_line`."""
        if not self.line_exact or template_line <= 1:
            return self.line, self.col
        return self.line + template_line - 1, self.col

    @classmethod
    def inline(
        cls, job_path: Path, json_p: str, source: str, positions: Positions, starts: TextStarts
    ) -> Template:
        """A template written in the job file itself, placed where its text starts."""
        start = starts.get(json_p)
        if start is None:
            line, col = positions.get(json_p, (1, 1))
            return cls(source, job_path, line, json_p, col, line_exact=False)
        return cls(source, job_path, start.line, json_p, start.col, start.exact)


@dataclass(frozen=True)
class MessageTemplate:
    role: Literal["user", "assistant"]
    content: Template


@dataclass(frozen=True)
class InputSpec:
    """Where the inputs are. On disk: `pattern` relative to `JobSpec.base_dir`, or `path`.
    In object storage (`url` set): a glob's `url` is its bucket's root and `pattern` the
    key pattern below it; a records input's `url` is the object and `path` is None."""

    kind: InputKind
    pattern: str | None  # the glob (kind == "glob")
    exclude: tuple[str, ...]
    path: Path | None  # the absolute JSONL/CSV file (kind == "jsonl" | "csv")
    key: Template | None  # key template; None: relative path or line number
    as_: InputAs
    url: Url | None = None  # s3://, gs:// or file://: see above


@dataclass(frozen=True)
class SystemSpec:
    template: Template
    cache: CacheTTL | None


@dataclass(frozen=True)
class PriceOverride:
    """USD per million tokens at standard rates (the batch discount is applied later)."""

    input: float
    output: float
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    cache_read: float | None = None


@dataclass(frozen=True)
class OutputSpec:
    """The sink. Exactly one of `path` (a local file or folder; `file://` URLs become one),
    `url` (an `s3://` or `gs://` object or prefix) and `dsn_env` (postgres) is set."""

    type: SinkType
    path: Path | None  # absolute
    suffix: str | None = None  # files
    content: FileContent = "text"  # files
    table: str | None = None  # sqlite; postgres (always set: the job name by default)
    include: tuple[str, ...] = ()  # input fields copied beside each answer
    url: Url | None = None  # jsonl, files
    dsn_env: str | None = None  # postgres: the environment variable holding the DSN
    # files: an input's file mirrors its path below `input_base` (the glob's fixed base),
    # the suffix replacing its extension unless `keep_extension`.
    keep_extension: bool = False
    input_base: str = ""

    @property
    def local(self) -> Path:
        """`path`, for the sinks that write to a disk (whose output has one by construction)."""
        if self.path is None:
            raise ValueError(f"this {self.type} output has no local path")
        return self.path

    @property
    def where(self) -> str:
        """Where results go, for messages: never the DSN itself."""
        if self.url is not None:
            return str(self.url)
        if self.path is not None:
            return str(self.path)
        return f"postgres table {self.table} (DSN in ${self.dsn_env})"


NotifyEvent = Literal["finished", "dead_letters"]


@dataclass(frozen=True)
class NotifySpec:
    """`notify:`: the environment variable holding a webhook URL and/or a command (argv),
    and the events that are sent."""

    webhook_env: str | None = None
    command: tuple[str, ...] | None = None
    on: tuple[NotifyEvent, ...] = ("finished", "dead_letters")


@dataclass(frozen=True)
class JobSpec:
    """A validated job. Paths are absolute; templates keep their origin for errors."""

    path: Path  # the job file, absolute
    name: str
    description: str | None
    input: InputSpec
    vars: Mapping[str, Any]
    model: str
    max_tokens: int
    betas: tuple[str, ...]
    system: SystemSpec | None
    prompt: Template | None  # from `prompt` or `prompt_file`
    messages: tuple[MessageTemplate, ...] | None  # from `messages`
    params: Mapping[str, Any]
    max_requests: int
    max_bytes: int
    max_in_flight_requests: int
    max_attempts: int
    poll_interval_s: float
    poll_max_interval_s: float
    budget_usd: float | None
    pricing: PriceOverride | None
    output: OutputSpec
    document: Mapping[str, Any] = field(repr=False)  # the validated YAML document
    # The JSON Schema answers must match (`output_schema`, read from its file, or a schema
    # passed through params.output_config.format); None: answers are free text.
    output_schema: Mapping[str, Any] | None = field(default=None, repr=False)
    budget_total_usd: float | None = None  # budget.max_usd_total: over every run of the job
    notify: NotifySpec | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @functools.cached_property
    def spec_hash(self) -> str:
        """sha256 of the canonical document: changes whenever the job file's meaning does,
        an output schema file's content included."""
        document = self.document
        if isinstance(document.get("output_schema"), str):  # a path: hash what it holds
            document = {**document, "output_schema": self.output_schema}
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class JobRef:
    """What names a job's state: all that commands reading the state (status, export) need."""

    name: str
    path: Path
