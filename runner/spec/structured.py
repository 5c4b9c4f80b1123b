"""Structured outputs in a job file: `output_schema` (a file or an inline mapping), the model
that must support it, how it merges into `params.output_config`, and `output.include`.

`check` runs beside the other checks of a job file (spec/validate.py); `load_schema` and
`merged_params` serve `build_spec`. The JSON Schema subset itself is judged by
`spec/schema_subset.py`.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic
from runner.spec import containment, schema_subset
from runner.spec.checks import display_name
from runner.spec.raw import RawJob
from runner.spec.yaml_source import Positions, json_path, load_yaml

FILE_FIELDS = ("path", "name", "stem")  # what a glob input's results can include
_DATED = re.compile(r"-(\d{8}|latest)$")
_VERSIONED = re.compile(r"^claude-(?:opus|sonnet|haiku|fable|mythos)-(\d+)(?:-(\d{1,2}))?$")
_SUPPORTED_FROM = (4, 5)  # api-contract 10b: Opus/Sonnet/Haiku 4.5 and later
_ALSO_SUPPORTED = frozenset({"claude-mythos-preview"})


def supports_structured_outputs(model: str) -> bool | None:
    """Whether `model` accepts `output_config.format`: True from Claude 4.5 on, False for
    older models, None for an id batchrun cannot place."""
    model = _DATED.sub("", model)
    if model in _ALSO_SUPPORTED:
        return True
    if re.match(r"^claude-(instant|2|3)", model):
        return False
    found = _VERSIONED.fullmatch(model)
    if found is None:
        return None
    return (int(found.group(1)), int(found.group(2) or 0)) >= _SUPPORTED_FROM


# ---------------------------------------------------------------------------------------
# Where the schema comes from


def schema_source(doc: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(JSON path, value) of the job's output schema: `output_schema`, or a schema passed
    through `params.output_config.format`; None when the job has none."""
    if "output_schema" in doc:
        return "$.output_schema", doc["output_schema"]
    params = doc.get("params")
    config = params.get("output_config") if isinstance(params, Mapping) else None
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and "schema" in fmt:
        return "$.params.output_config.format.schema", fmt["schema"]
    return None


def load_schema(job_path: Path, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The job's output schema, read from its file when `output_schema` names one. For a
    document that validation has accepted."""
    source = schema_source(doc)
    if source is None:
        return None
    value = source[1]
    if isinstance(value, str):
        value = _parse(job_path.parent / value)
    return dict(value)


def merged_params(
    params: Mapping[str, Any], declared: Any, schema: Mapping[str, Any] | None
) -> dict[str, Any]:
    """`params` with `output_config.format` set to the `output_schema` (`declared`, as the
    job wrote it; `schema`, as loaded), beside any other `output_config` keys such as
    `effort`. Unchanged without `output_schema` (a schema in params is already in place)."""
    out = dict(params)
    if declared is None or schema is None:
        return out
    config = dict(out.get("output_config") or {})
    config["format"] = {"type": "json_schema", "schema": schema}
    out["output_config"] = config
    return out


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):  # the job file's own loader: dates stay text
        return load_yaml(text, path.name).data
    return json.loads(text, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ---------------------------------------------------------------------------------------
# The check


def check(job: RawJob) -> Iterator[Diagnostic]:
    """Every problem of the job's structured-outputs settings."""
    source = schema_source(job.doc)
    yield from _include(job)
    if source is None:
        return
    yield from _conflicts(job, source[0])
    where, value = source
    if isinstance(value, str):
        yield from _schema_file(job, where, value)
    elif isinstance(value, Mapping):
        yield from _inline(job, where, value)
    yield from _model(job)


def _conflicts(job: RawJob, where: str) -> Iterator[Diagnostic]:
    if where != "$.output_schema":
        return
    config = job.get("params", "output_config")
    if config is not None and not isinstance(config, dict):
        message = "params.output_config must be a mapping: output_schema is merged into it"
        yield job.at("$.params.output_config", message)
    elif isinstance(config, dict) and "format" in config:
        message = (
            "output_schema already sets output_config.format: remove format from "
            "params.output_config (or drop output_schema)"
        )
        yield job.at("$.params.output_config.format", message, key=True)
    if job.get("params", "output_format") is not None:
        message = (
            "output_format is the old beta form of output_schema: remove it, output_schema "
            "sends the generally available output_config.format"
        )
        yield job.at("$.params.output_format", message, key=True)


def _model(job: RawJob) -> Iterator[Diagnostic]:
    model = job.get("model", kind=str)
    if not model:
        return
    supported = supports_structured_outputs(model)
    if supported is False:
        message = (
            f"{model} does not support structured outputs (output_schema): use Claude Opus, "
            "Sonnet or Haiku 4.5 or a later model"
        )
        yield job.at("$.model", message)
    elif supported is None:
        message = (
            f"batchrun cannot tell whether {model} supports structured outputs (Claude 4.5 "
            "and later models do): check the model's documentation"
        )
        yield job.at("$.model", message, "warning")


def _inline(job: RawJob, where: str, schema: Mapping[str, Any]) -> Iterator[Diagnostic]:
    loaded = job.loaded
    for finding in schema_subset.problems(schema):
        path = _path(where, finding.path)
        line, col = _locate(path, finding.key, loaded.positions, loaded.key_positions)
        yield Diagnostic(job.file, line, col, path, finding.message, finding.severity)


def _schema_file(job: RawJob, where: str, relative: str) -> Iterator[Diagnostic]:
    if "://" in relative:  # read by validate and by every load: it must be at hand
        message = (
            "an output schema is a file beside the job (a path relative to it) or inline, "
            "not a URL: copy the schema into the repository"
        )
        yield job.at(where, message)
        return
    target = job.resolve(relative)
    if not target.is_file() or not containment.is_inside(job.path, relative):
        return  # reported by the referenced-files check, or by containment (never read)
    name = display_name(target)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield job.at(where, f"cannot read {name} as UTF-8 text: {exc}")
        return
    if target.suffix.lower() in (".yaml", ".yml"):
        loaded = load_yaml(text, name)
        if loaded.diagnostics:
            yield from loaded.diagnostics
            return
        schema = loaded.data
    else:
        try:
            schema = json.loads(text, parse_constant=_no_constant)
        except ValueError as exc:
            yield _json_error(name, exc)
            return
        # JSON is (nearly) YAML: its loader gives the positions. Tabs are JSON whitespace
        # but not YAML's: as spaces they keep every column where it was.
        loaded = load_yaml(text.replace("\t", " "), name)
    for finding in schema_subset.problems(schema):
        path = _path("$", finding.path)
        line, col = _locate(path, finding.key, loaded.positions, loaded.key_positions)
        yield Diagnostic(name, line, col, path, finding.message, finding.severity)


def _json_error(name: str, exc: ValueError) -> Diagnostic:
    if isinstance(exc, json.JSONDecodeError):
        message = f"not valid JSON: {exc.msg}: an output schema file holds one JSON Schema"
        return Diagnostic(name, exc.lineno, exc.colno, "$", message)
    return Diagnostic(name, 1, 1, "$", f"not valid JSON: {exc}")


def _path(base: str, parts: tuple[str | int, ...]) -> str:
    path = base
    for part in parts:
        path = json_path(path, part)
    return path


def _locate(path: str, key: bool, positions: Positions, keys: Positions) -> tuple[int, int]:
    """The node's (line, col), or its keyword's for `key`; else the nearest ancestor's."""
    if key and path in keys:
        return keys[path]
    while path:
        if path in positions:
            return positions[path]
        path = _parent(path)
    return 1, 1


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


# ---------------------------------------------------------------------------------------
# output.include


def _include(job: RawJob) -> Iterator[Diagnostic]:
    fields = job.get("output", "include", kind=list)
    if not fields:
        return
    kind = next((k for k in ("glob", "jsonl", "csv") if job.get("input", k, kind=str)), None)
    known = _known_fields(job, kind)
    if known is None:
        return
    allowed, what = known
    for i, field in enumerate(fields):
        if not isinstance(field, str) or field in allowed:
            continue
        close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6)
        hint = f": did you mean {close[0]!r}?" if close else ""
        yield job.at(f"$.output.include[{i}]", f"{field!r} is not {what}{hint}")


def _known_fields(job: RawJob, kind: str | None) -> tuple[list[str], str] | None:
    """The fields an input of this job has, and how to say one is not among them."""
    if kind == "glob":
        return list(FILE_FIELDS), "a field of a file input, whose results can include " + (
            "path, name or stem"
        )
    if kind != "csv":
        return None  # JSONL records need not share fields: a missing one is null
    relative = job.get("input", "csv", kind=str)
    target = job.resolve(relative)
    try:
        with target.open(encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None  # reported by the input checks, or at run time
    return header, f"a column of {relative} (its columns: {', '.join(header)})"
