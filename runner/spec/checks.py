"""Checks a JSON Schema cannot express: files exist, templates are sound, the input glob
matches and does not reach the output, limits that depend on other keys.

The document may be schema-invalid: every check looks only at values of the type it needs,
so one mistake does not hide the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from runner import limits, storage
from runner.errors import Diagnostic
from runner.globs import find_files, glob_regex
from runner.spec import (
    containment,
    locations,
    model_checks,
    output_checks,
    template_check,
    templating,
)
from runner.spec.model import Template
from runner.spec.raw import RawJob
from runner.spec.schema import parse_duration
from runner.spec.template_check import Scope


def display_name(path: Path) -> str:
    """A path as the user would write it: relative to the working folder when inside."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check_job(job: RawJob) -> list[Diagnostic]:
    """Every finding of the checks below, unsorted."""
    found: list[Diagnostic] = []
    checks = (
        _inside_the_project,
        _referenced_files,
        _locations,
        _input_options,
        _output_is_input,
        _glob,
        _limits,
        _messages,
        _templates,
        model_checks.check_model,
        output_checks.check_files_naming,
        output_checks.check_notify,
    )
    for check in checks:
        found.extend(check(job))
    return found


# ---------------------------------------------------------------------------------------
# Files and inputs


_REFERENCED = (
    ("system", "file"),
    ("prompt_file",),
    ("input", "jsonl"),
    ("input", "csv"),
    ("output_schema",),
)


def _inside_the_project(job: RawJob) -> Iterator[Diagnostic]:
    return containment.check(job.path, job.doc, job.at)


def _referenced_files(job: RawJob) -> Iterator[Diagnostic]:
    for keys in _REFERENCED:
        relative = job.get(*keys, kind=str)
        if not relative or storage.is_url(relative):
            continue  # a URL is checked by _locations; its object only by a run
        if not containment.is_inside(job.path, relative):
            continue  # a file outside the project is reported (and never read) as such
        target = job.resolve(relative)
        path = "$." + ".".join(keys)
        if target.is_dir():
            yield job.at(path, f"{display_name(target)} is a folder: name a file")
        elif not target.is_file():
            yield job.at(path, f"file not found: {display_name(target)}")


def _locations(job: RawJob) -> Iterator[Diagnostic]:
    """The URLs' form and extras, and a postgres output's settings (see `locations`)."""
    found: list[locations.Finding] = []
    for kind in ("glob", "jsonl", "csv"):
        text = job.get("input", kind, kind=str)
        if text:
            found += locations.url_findings(f"$.input.{kind}", text, kind)
    out, sink = job.get("output", "path", kind=str), job.get("output", "type")
    if out:
        found += locations.url_findings("$.output.path", out, "output", sink)
    if sink == "postgres":
        found += locations.postgres_findings(
            job.get("output", "dsn_env"), job.get("output", "table")
        )
    for f in found:
        yield job.at(f.path, f.message, f.severity)


def _input_options(job: RawJob) -> Iterator[Diagnostic]:
    kind = _input_kind(job)
    if kind not in ("jsonl", "csv"):
        return
    for option in ("as", "exclude"):
        if job.get("input", option) is not None:
            message = f"{option!r} is only for glob inputs: a {kind} input reads one file"
            yield job.at(f"$.input.{option}", message, key=True)


def _output_is_input(job: RawJob) -> Iterator[Diagnostic]:
    kind, out = _input_kind(job), job.get("output", "path", kind=str)
    source = job.get("input", kind, kind=str) if kind in ("jsonl", "csv") else None
    if not source or not out:
        return
    if (
        locations.same_place(source, out)
        if storage.is_url(source) or storage.is_url(out)
        else job.resolve(source) == job.resolve(out)
    ):
        message = f"the output would overwrite the input file {source!r}: write it elsewhere"
        yield job.at("$.output.path", message)


def _input_kind(job: RawJob) -> str | None:
    kinds = [k for k in ("glob", "jsonl", "csv") if job.get("input", k, kind=str)]
    return kinds[0] if len(kinds) == 1 else None


def _glob(job: RawJob) -> Iterator[Diagnostic]:
    pattern = job.get("input", "glob", kind=str)
    if not pattern or _input_kind(job) != "glob":
        return
    if storage.is_url(pattern):  # its objects are listed by a run: validate reaches no store
        yield from _output_in_url_glob(job, pattern)
        return
    if Path(pattern).is_absolute():
        yield job.at("$.input.glob", "the glob must be relative to the job file's folder")
        return
    excludes = [e for e in job.get("input", "exclude", kind=list) or () if isinstance(e, str)]
    slow = containment.slow_globs(pattern, excludes)
    for json_p, why in slow:
        yield job.at(json_p, why)
    if slow:
        return  # never walked: matching could take unbounded time
    if not _matching_files(job.path.parent, pattern, excludes):
        where = display_name(job.path.parent) or "."
        message = f"no file matches {pattern!r} (relative to {where}): the job has no inputs"
        yield job.at("$.input.glob", message, "warning")
    out = job.get("output", "path", kind=str)
    if out and not storage.is_url(out):
        try:
            relative = job.resolve(out).relative_to(job.path.parent.resolve()).as_posix()
        except ValueError:
            return  # outside the job's folder, so outside any relative glob without `..`
        yield from _output_in_glob(job, pattern, excludes, relative)


def _output_in_url_glob(job: RawJob, glob_url: str) -> Iterator[Diagnostic]:
    """The glob's check below for a URL glob and an output in the same bucket."""
    out = job.get("output", "path", kind=str)
    if not out or not storage.is_url(out):
        return
    try:
        inputs, output = storage.parse_url(glob_url), storage.parse_url(out)
    except storage.UrlError:
        return  # reported by _locations
    if (inputs.scheme, inputs.bucket) == (output.scheme, output.bucket):
        excludes = [e for e in job.get("input", "exclude", kind=list) or () if isinstance(e, str)]
        yield from _output_in_glob(job, inputs.key, excludes, output.key.rstrip("/"), glob_url)


def _matching_files(base: Path, pattern: str, excludes: list[str]) -> list[str]:
    try:
        return find_files(base, pattern, excludes)
    except OSError:
        return []


def _matches_any(relative: str, patterns: list[str]) -> bool:
    return any(glob_regex(p).match(relative) for p in patterns)


def _output_in_glob(
    job: RawJob, pattern: str, excludes: list[str], relative: str, shown: str | None = None
) -> Iterator[Diagnostic]:
    """Whether the output (at `relative`, in the glob's own terms) is one of its inputs;
    `shown` is the glob as written, when `pattern` is only its part below a bucket."""
    out = job.get("output", "path", kind=str)
    candidates = [relative]
    if job.get("output", "type") == "files":
        suffix = job.get("output", "suffix", kind=str) or ".md"
        leaf = re.sub(r"\*\*|\*|\?", "x", pattern.rsplit("/", 1)[-1])
        candidates += [f"{relative}/{leaf}", f"{relative}/x{suffix}", f"{relative}/x/x{suffix}"]
    reached = [c for c in candidates if _matches_any(c, [pattern])]
    if reached and not _matches_any(reached[0], excludes):
        message = (
            f"the output {out!r} is inside the input glob {shown or pattern!r}: a later run would "
            "read its own results as inputs; move the output or add it to input.exclude"
        )
        yield job.at("$.output.path", message)


# ---------------------------------------------------------------------------------------
# Limits that depend on other keys


def _limits(job: RawJob) -> Iterator[Diagnostic]:
    # max_tokens against the model's cap: runner.spec.model_checks
    yield from _poll(job)


MAX_POLL_S = 7 * 86400.0  # also keeps the wait a number time.sleep accepts


def _poll(job: RawJob) -> Iterator[Diagnostic]:
    interval, longest = (
        _seconds(job.get("poll", k, kind=str)) for k in ("interval", "max_interval")
    )
    if interval == 0:
        yield job.at("$.poll.interval", "must be more than 0s: a zero interval never waits")
    for key, seconds in (("interval", interval), ("max_interval", longest)):
        if seconds is not None and seconds > MAX_POLL_S:
            message = "must be at most 7d: a batch ends within 24 h, its results last 29 days"
            yield job.at(f"$.poll.{key}", message)
    if interval is not None and longest is not None and longest < interval:
        message = "max_interval must not be shorter than interval: the wait only grows"
        yield job.at("$.poll.max_interval", message)


def _seconds(text: str | None) -> float | None:
    if text is None or not re.fullmatch(r"([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+", text):
        return None
    return parse_duration(text)


def _messages(job: RawJob) -> Iterator[Diagnostic]:
    turns = job.get("messages", kind=list) or []
    roles = [t.get("role") if isinstance(t, dict) else None for t in turns]
    if roles and roles[0] == "assistant":
        yield job.at("$.messages[0].role", "the first turn must be the user's: role: user")
    for i in range(1, len(roles)):
        if roles[i] in ("user", "assistant") and roles[i] == roles[i - 1]:
            message = f"two {roles[i]} turns in a row: turns alternate between user and assistant"
            yield job.at(f"$.messages[{i}].role", message)


# ---------------------------------------------------------------------------------------
# Templates


def _templates(job: RawJob) -> Iterator[Diagnostic]:
    request, system, key = _scopes(job)
    for json_p, source in _inline_templates(job):
        scope = (
            system if json_p.startswith("$.system") else key if json_p == "$.input.key" else request
        )
        template = Template.inline(
            job.path, json_p, source, job.loaded.positions, job.loaded.text_starts
        )
        yield from template_check.check_template(template, scope, job.file)
    for keys, scope in ((("prompt_file",), request), (("system", "file"), system)):
        yield from _file_template(job, keys, scope)


def _inline_templates(job: RawJob) -> Iterator[tuple[str, str]]:
    for path, keys in (
        ("$.prompt", ("prompt",)),
        ("$.system", ("system",)),
        ("$.system.text", ("system", "text")),
        ("$.input.key", ("input", "key")),
    ):
        source = job.get(*keys, kind=str)
        if source:
            yield path, source
    for i, turn in enumerate(job.get("messages", kind=list) or []):
        if isinstance(turn, dict) and isinstance(turn.get("content"), str):
            yield f"$.messages[{i}].content", turn["content"]


def _file_template(job: RawJob, keys: tuple[str, ...], scope: Scope) -> Iterator[Diagnostic]:
    relative = job.get(*keys, kind=str)
    target = job.resolve(relative) if relative else None
    if target is None or not target.is_file() or not containment.is_inside(job.path, relative):
        return  # reported by _referenced_files or containment.check
    json_p = "$." + ".".join(keys)
    if target.stat().st_size > limits.MAX_REQUEST_BYTES:
        message = f"{display_name(target)} is larger than a request may be: shorten it"
        yield job.at(json_p, message)
        return
    try:
        source = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield job.at(json_p, f"cannot read {display_name(target)} as UTF-8 text: {exc}")
        return
    template = Template(source, target, 1, json_p)
    yield from template_check.check_template(template, scope, display_name(target))


def _scopes(job: RawJob) -> tuple[Scope, Scope, Scope]:
    """The variables of a request template, of the system prompt, and of the input key.

    Request templates and the key see the same names: `input`, `vars`, `job`, and the input's
    own fields at the top level too (`record` and `line` for records; `path`, `name`, `stem`,
    `text`, `bytes` for files), so `{{ record.body }}` works wherever `{{ record.id }}` does.
    """
    vars_ = job.get("vars", kind=dict) or {}
    fields, why_not = _input_fields(job)
    own: dict[str, frozenset[str] | None] = dict.fromkeys(fields or ())
    only_records = {
        name: f"{name} is only for jsonl and csv inputs: this job reads files, whose fields "
        "are path, name, stem, text and bytes"
        for name in templating.RECORD_INPUT_FIELDS
        if _input_kind(job) == "glob"
    }
    if "input.text" in why_not:  # as: document | image
        only_records["text"] = why_not["input.text"]
    base = {"input": fields, "vars": frozenset(vars_), "job": templating.JOB_FIELDS}
    request = Scope({**base, **own}, {**why_not, **only_records})
    shared = (
        "the system prompt is shared by every request (and cached), so it cannot use {name}: "
        "use {name} in the prompt instead"
    )
    not_in_system = {
        name: shared.format(name=name)
        for name in (
            "input",
            *sorted(templating.RECORD_INPUT_FIELDS | templating.FILE_INPUT_FIELDS),
        )
    }
    system = Scope({"vars": frozenset(vars_), "job": templating.JOB_FIELDS}, not_in_system)
    return request, system, request


def _input_fields(job: RawJob) -> tuple[frozenset[str] | None, dict[str, str]]:
    """The fields of `input` for this job's input kind, and why the others are missing."""
    kind = _input_kind(job)
    if kind in ("jsonl", "csv"):
        missing = (
            f"a {kind} input has input.record (the record's fields, as input.record.NAME) "
            "and input.line, not file fields"
        )
        return templating.RECORD_INPUT_FIELDS, {
            f"input.{f}": missing for f in templating.FILE_INPUT_FIELDS
        }
    if kind != "glob":
        return None, {}  # no usable input source: reported by the schema
    why_not = {
        f"input.{f}": f"input.{f} is only for jsonl and csv inputs: this job reads files"
        for f in templating.RECORD_INPUT_FIELDS
    }
    as_ = job.get("input", "as", kind=str)
    if as_ in ("document", "image"):
        why_not["input.text"] = (
            f"input.text is not available with `as: {as_}`: the file is sent as a {as_} "
            "block before the prompt; refer to it by input.name or input.path"
        )
        return templating.BINARY_INPUT_FIELDS, why_not
    return templating.FILE_INPUT_FIELDS, why_not
