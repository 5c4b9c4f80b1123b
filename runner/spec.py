"""Job files: line-aware safe YAML -> JSON Schema validation -> a frozen, typed `JobSpec`.

Every problem is reported at once as a `Diagnostic` pointing at the offending YAML node.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml

from runner import yaml_source
from runner.errors import SpecError

# The YAML layer lives in runner.yaml_source; its names stay importable from here.
LoadedYaml = yaml_source.LoadedYaml
Positions = yaml_source.Positions
TextStart = yaml_source.TextStart
TextStarts = yaml_source.TextStarts
json_path = yaml_source.json_path
load_yaml = yaml_source.load_yaml
yaml_error_message = yaml_source.yaml_error_message

CacheTTL = Literal["5m", "1h"]
InputKind = Literal["glob", "jsonl", "csv"]
InputAs = Literal["text", "document", "image"]
SinkType = Literal["jsonl", "files", "sqlite"]
FileContent = Literal["text", "json", "message"]

DEFAULT_MAX_BYTES = 256_000_000  # 256 MB read as 10^6: safe whichever way the API means it
DEFAULT_MAX_REQUESTS = 100_000
DEFAULT_MAX_IN_FLIGHT = 200_000
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_POLL_INTERVAL_S = 30.0
DEFAULT_POLL_MAX_INTERVAL_S = 600.0

# ---------------------------------------------------------------------------------------
# The typed result


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


@dataclass(frozen=True)
class MessageTemplate:
    role: Literal["user", "assistant"]
    content: Template


@dataclass(frozen=True)
class InputSpec:
    kind: InputKind
    pattern: str | None  # the glob, relative to JobSpec.base_dir (kind == "glob")
    exclude: tuple[str, ...]
    path: Path | None  # the absolute JSONL/CSV file (kind == "jsonl" | "csv")
    key: Template | None  # key template; None: relative path or line number
    as_: InputAs


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
    type: SinkType
    path: Path  # absolute
    suffix: str | None = None  # files
    content: FileContent = "text"  # files
    table: str | None = None  # sqlite


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

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @functools.cached_property
    def spec_hash(self) -> str:
        """sha256 of the canonical document: changes whenever the job file's meaning does."""
        canonical = orjson.dumps(self.document, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


# ---------------------------------------------------------------------------------------
# Schema


@functools.cache
def schema_text() -> str:
    """The job JSON Schema: package data in a wheel, `schemas/` in a source checkout."""
    packaged = resources.files("runner").joinpath("schemas/job.schema.json")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).parent.parent / "schemas" / "job.schema.json").read_text("utf-8")


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(schema_text())
    return loaded


# ---------------------------------------------------------------------------------------
# Units


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}


def parse_duration(text: str) -> float:
    """`30s`, `10m`, `1h30m`, `250ms` -> seconds. The schema has already checked the form."""
    return sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h|d)", text))


def parse_size(value: int | str) -> int:
    """`256MiB`, `100 MB`, 1024 -> bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"([0-9.]+) ?([A-Za-z]+)", value.strip())
    if not m:
        raise ValueError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


# ---------------------------------------------------------------------------------------
# Loading


def load_job(path: str | Path) -> JobSpec:
    """Read, validate and type a job file. Raises `SpecError` with every problem found."""
    from runner import validate  # the checks live beside the formatting of their errors

    job_path = Path(path).resolve()
    result = validate.check_file(job_path)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if errors or result.document is None:
        raise SpecError(errors)
    return build_spec(job_path, result.document, result.positions, result.text_starts)


@dataclass(frozen=True)
class JobRef:
    """What names a job's state: all that commands reading the state (status, export) need."""

    name: str
    path: Path


def load_ref(path: str | Path) -> tuple[JobRef, SpecError | None]:
    """The job's name and file. A job file broken since the job last ran must not hold its
    results hostage: when the file has errors but its `name` is readable and valid, the
    `SpecError` is returned for the caller to warn with; when even the name is not, raised."""
    try:
        job = load_job(path)
    except SpecError as problem:
        job_path = Path(path).resolve()
        name = _readable_name(job_path)
        if name is None:
            raise
        return JobRef(name, job_path), problem
    return JobRef(job.name, job.path), None


def _readable_name(path: Path) -> str | None:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = document.get("name") if isinstance(document, dict) else None
    pattern = schema()["properties"]["name"]["pattern"]
    return name if isinstance(name, str) and re.fullmatch(pattern, name) else None


def inline_template(
    job_path: Path, json_p: str, source: str, positions: Positions, starts: TextStarts
) -> Template:
    """A template written in the job file itself, placed where its text starts."""
    start = starts.get(json_p)
    if start is None:
        line, col = positions.get(json_p, (1, 1))
        return Template(source, job_path, line, json_p, col, line_exact=False)
    return Template(source, job_path, start.line, json_p, start.col, start.exact)


def build_spec(
    job_path: Path,
    doc: Mapping[str, Any],
    positions: Positions,
    text_starts: TextStarts | None = None,
) -> JobSpec:
    """Turn a schema-valid document into a `JobSpec` (reading system/prompt files).

    `text_starts` (from `load_yaml`) places each inline template exactly; without it a
    template is placed at its YAML node.
    """
    parts = _Parts(job_path, doc, positions, text_starts or {})
    prompt, messages = parts.prompt()
    batch, poll, pricing = doc.get("batch", {}), doc.get("poll", {}), doc.get("pricing")
    return JobSpec(
        path=job_path,
        name=doc["name"],
        description=doc.get("description"),
        input=parts.input(),
        vars=dict(doc.get("vars", {})),
        model=doc["model"],
        max_tokens=doc["max_tokens"],
        betas=tuple(doc.get("betas", ())),
        system=parts.system(),
        prompt=prompt,
        messages=messages,
        params=dict(doc.get("params", {})),
        max_requests=batch.get("max_requests", DEFAULT_MAX_REQUESTS),
        max_bytes=parse_size(batch.get("max_bytes", DEFAULT_MAX_BYTES)),
        max_in_flight_requests=batch.get("max_in_flight_requests", DEFAULT_MAX_IN_FLIGHT),
        max_attempts=doc.get("retry", {}).get("max_attempts", DEFAULT_MAX_ATTEMPTS),
        poll_interval_s=_duration(poll, "interval", DEFAULT_POLL_INTERVAL_S),
        poll_max_interval_s=_duration(poll, "max_interval", DEFAULT_POLL_MAX_INTERVAL_S),
        budget_usd=doc["budget"]["max_usd"] if "budget" in doc else None,
        pricing=PriceOverride(**pricing) if pricing else None,
        output=parts.output(),
        document=doc,
    )


def _duration(section: Mapping[str, Any], key: str, default: float) -> float:
    return parse_duration(section[key]) if key in section else default


@dataclass(frozen=True)
class _Parts:
    """Builds the nested parts of a `JobSpec` from a schema-valid document."""

    job_path: Path
    doc: Mapping[str, Any]
    positions: Positions
    starts: TextStarts

    def resolve(self, relative: str) -> Path:
        return (self.job_path.parent / relative).resolve()

    def template(self, json_p: str, source: str) -> Template:
        return inline_template(self.job_path, json_p, source, self.positions, self.starts)

    def file_template(self, json_p: str, relative: str) -> Template:
        origin = self.resolve(relative)
        return Template(origin.read_text("utf-8"), origin, 1, json_p)

    def input(self) -> InputSpec:
        inp = self.doc["input"]
        kind: InputKind = "glob" if "glob" in inp else ("jsonl" if "jsonl" in inp else "csv")
        return InputSpec(
            kind=kind,
            pattern=inp.get("glob"),
            exclude=tuple(inp.get("exclude", ())),
            path=self.resolve(inp[kind]) if kind != "glob" else None,
            key=self.template("$.input.key", inp["key"]) if "key" in inp else None,
            as_=inp.get("as", "text"),
        )

    def system(self) -> SystemSpec | None:
        sys_doc = self.doc.get("system")
        if sys_doc is None:
            return None
        if isinstance(sys_doc, str):
            return SystemSpec(self.template("$.system", sys_doc), None)
        if "file" in sys_doc:
            template = self.file_template("$.system.file", sys_doc["file"])
        else:
            template = self.template("$.system.text", sys_doc["text"])
        return SystemSpec(template, sys_doc.get("cache") or None)

    def prompt(self) -> tuple[Template | None, tuple[MessageTemplate, ...] | None]:
        if "prompt" in self.doc:
            return self.template("$.prompt", self.doc["prompt"]), None
        if "prompt_file" in self.doc:
            return self.file_template("$.prompt_file", self.doc["prompt_file"]), None
        return None, tuple(
            MessageTemplate(m["role"], self.template(f"$.messages[{i}].content", m["content"]))
            for i, m in enumerate(self.doc["messages"])
        )

    def output(self) -> OutputSpec:
        out = self.doc["output"]
        return OutputSpec(
            type=out["type"],
            path=self.resolve(out["path"]),
            suffix=out.get("suffix"),
            content=out.get("content", "text"),
            table=out.get("table"),
        )
