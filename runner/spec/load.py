"""Loading a job file: line-aware safe YAML -> JSON Schema validation -> a frozen `JobSpec`.

Every problem is reported at once as a `Diagnostic` pointing at the offending YAML node. This
is the top of the spec package: the only module that imports the validation, and imported by
nothing inside the package.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import storage
from runner.errors import SpecError
from runner.globs import _literal_prefix
from runner.spec import structured, validate
from runner.spec.model import (
    InputKind,
    InputSpec,
    JobRef,
    JobSpec,
    MessageTemplate,
    NotifySpec,
    OutputSpec,
    PriceOverride,
    SystemSpec,
    Template,
)
from runner.spec.schema import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_POLL_MAX_INTERVAL_S,
    parse_duration,
    parse_size,
    schema,
)
from runner.spec.yaml_source import Positions, TextStarts, load_yaml


def load_job(path: str | Path) -> JobSpec:
    """Read, validate and type a job file. Raises `SpecError` with every problem found."""
    job_path = Path(path).resolve()
    result = validate.check_file(job_path)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if errors or result.document is None:
        raise SpecError(errors)
    return build_spec(job_path, result.document, result.positions, result.text_starts)


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
        document = load_yaml(path.read_text(encoding="utf-8"), str(path)).data  # bounded
    except (OSError, UnicodeDecodeError):
        return None
    name = document.get("name") if isinstance(document, dict) else None
    pattern = schema()["properties"]["name"]["pattern"]
    return name if isinstance(name, str) and re.fullmatch(pattern, name) else None


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
    output_schema = structured.load_schema(job_path, doc)
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
        params=structured.merged_params(
            doc.get("params", {}), doc.get("output_schema"), output_schema
        ),
        max_requests=batch.get("max_requests", DEFAULT_MAX_REQUESTS),
        max_bytes=parse_size(batch.get("max_bytes", DEFAULT_MAX_BYTES)),
        max_in_flight_requests=batch.get("max_in_flight_requests", DEFAULT_MAX_IN_FLIGHT),
        max_attempts=doc.get("retry", {}).get("max_attempts", DEFAULT_MAX_ATTEMPTS),
        poll_interval_s=_duration(poll, "interval", DEFAULT_POLL_INTERVAL_S),
        poll_max_interval_s=_duration(poll, "max_interval", DEFAULT_POLL_MAX_INTERVAL_S),
        budget_usd=doc.get("budget", {}).get("max_usd"),
        pricing=PriceOverride(**pricing) if pricing else None,
        output=parts.output(),
        document=doc,
        output_schema=output_schema,
        budget_total_usd=doc.get("budget", {}).get("max_usd_total"),
        notify=_notify(doc.get("notify")),
    )


def _notify(section: Mapping[str, Any] | None) -> NotifySpec | None:
    if not section:
        return None
    command = section.get("command")
    argv = tuple(shlex.split(command) if isinstance(command, str) else command or ())
    return NotifySpec(
        webhook_env=section.get("webhook_env"),
        command=argv or None,
        on=tuple(section.get("on", ("finished", "dead_letters"))),
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
        return Template.inline(self.job_path, json_p, source, self.positions, self.starts)

    def file_template(self, json_p: str, relative: str) -> Template:
        origin = self.resolve(relative)
        return Template(origin.read_text("utf-8"), origin, 1, json_p)

    def input(self) -> InputSpec:
        inp = self.doc["input"]
        kind: InputKind = "glob" if "glob" in inp else ("jsonl" if "jsonl" in inp else "csv")
        source: str = inp[kind]
        url = storage.parse_url(source) if storage.is_url(source) else None
        if url is not None and kind == "glob":  # the bucket's root, and the key pattern
            source, url = url.key, storage.Url(url.scheme, url.bucket, "")
        return InputSpec(
            kind=kind,
            pattern=source if kind == "glob" else None,
            exclude=tuple(inp.get("exclude", ())),
            path=self.resolve(source) if kind != "glob" and url is None else None,
            key=self.template("$.input.key", inp["key"]) if "key" in inp else None,
            as_=inp.get("as", "text"),
            url=url,
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
        path, url = self.location(out.get("path"))
        table = out.get("table")
        if out["type"] == "postgres" and table is None:
            table = self.doc["name"].replace("-", "_")  # as the sqlite sink's default
        return OutputSpec(
            type=out["type"],
            path=path,
            suffix=out.get("suffix"),
            content=out.get("content", "text"),
            table=table,
            url=url,
            dsn_env=out.get("dsn_env"),
            include=tuple(out.get("include", ())),
            keep_extension=out.get("keep_extension", False),
            input_base=_literal_prefix(self.input().pattern or ""),  # an object glob's key part
        )

    def location(self, written: str | None) -> tuple[Path | None, storage.Url | None]:
        """An output path as written: a local path (a `file://` URL is one: the local sinks
        are the crash-safe ones on a disk), or an object storage URL."""
        if written is None:
            return None, None
        if not storage.is_url(written):
            return self.resolve(written), None
        url = storage.parse_url(written)
        return (Path("/" + url.key), None) if url.scheme == "file" else (None, url)
