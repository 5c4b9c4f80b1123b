"""Saved plans (`batchrun plan --out PLAN.json`) and the proof that one still holds.

A saved plan records, per job: the job file's path, the spec fingerprint (the job file's
meaning, its templates, the batchrun version), a content digest of every input, the
custom_ids to submit and the estimate. `batchrun apply` submits exactly those custom_ids,
and refuses a plan whose job or inputs changed since: the plan shown on a pull request is
the plan that runs after the merge. Digests are of content, not of mtimes, so a plan made
in one checkout applies in another.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runner import __version__
from runner.compile.index import content_sha, spec_fingerprint
from runner.errors import BatchrunError
from runner.inputs import matching_files
from runner.plan import Plan
from runner.spec.model import JobSpec

FORMAT = "batchrun-plan/1"
_LINE_DIGEST = 8  # bytes of sha256 per records line: enough to notice a change


@dataclass(frozen=True)
class SavedJob:
    """One job of a saved plan."""

    name: str
    path: Path
    spec: str
    inputs: Mapping[str, Any]
    submit: frozenset[str]
    plan: Mapping[str, Any]


def input_digests(job: JobSpec, stored_index: str | None = None) -> dict[str, Any]:
    """A digest of every input's content: per file of a glob (its sha; taken from the
    stored index when the file's size and mtime prove it unchanged), per line of a records
    file."""
    if job.input.kind != "glob":
        return {"lines": base64.b64encode(b"".join(_line_digests(job))).decode("ascii")}
    index = orjson.loads(stored_index).get("files", {}) if stored_index else {}
    files: dict[str, str] = {}
    for rel in matching_files(job):
        path = job.base_dir / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        entry = index.get(rel)
        if entry is not None and entry[1] and (entry[0], entry[1]) == (st.st_size, st.st_mtime_ns):
            files[rel] = str(entry[2])  # unchanged since the sync that hashed it
        else:
            files[rel] = content_sha(path.read_bytes())
    return {"files": files}


def _line_digests(job: JobSpec) -> Iterator[bytes]:
    assert job.input.path is not None
    with job.input.path.open("rb") as fh:
        for raw in fh:
            yield hashlib.sha256(raw.rstrip(b"\r\n")).digest()[:_LINE_DIGEST]


def changed_inputs(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The inputs that differ between two `input_digests` (added, removed or edited): file
    paths, or `line N` of a records file."""
    if "files" in saved and "files" in now:
        a, b = saved["files"], now["files"]
        return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if "lines" in saved and "lines" in now:
        x, y = base64.b64decode(saved["lines"]), base64.b64decode(now["lines"])
        n = _LINE_DIGEST
        lines = max(len(x), len(y)) // n
        return [
            f"line {i + 1}" for i in range(lines) if x[i * n : i * n + n] != y[i * n : i * n + n]
        ]
    return ["the input kind"]  # glob <-> records: the spec fingerprint says so too


def job_entry(
    job: JobSpec, shown_path: Path, plan: Plan, stored_index: str | None
) -> dict[str, Any]:
    """One job of a plan file: `shown_path` is the job file as the user named it."""
    return {
        "job": job.name,
        "path": shown_path.as_posix(),
        "spec": spec_fingerprint(job),
        "inputs": input_digests(job, stored_index),
        "submit": list(plan.submit_ids),
        "plan": plan.as_dict(),
    }


def save(path: Path, entries: Sequence[dict[str, Any]]) -> None:
    """Write a plan file atomically."""
    doc = {"format": FORMAT, "batchrun": __version__, "jobs": list(entries)}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    tmp.replace(path)


def load(path: Path) -> list[SavedJob]:
    """The jobs of a plan file. Raises `BatchrunError` naming the file when it is not one."""
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BatchrunError(
            f"{path}: no such plan file (make one with `batchrun plan JOB --out {path}`)"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise BatchrunError(f"{path}: not a plan file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BatchrunError(
            f"{path}: not a plan file of this batchrun (format {FORMAT} expected): plan again"
        )
    try:
        return [
            SavedJob(
                str(e["job"]),
                Path(e["path"]),
                str(e["spec"]),
                e["inputs"],
                frozenset(e["submit"]),
                e["plan"],
            )
            for e in doc["jobs"]
        ]
    except (KeyError, TypeError) as exc:
        raise BatchrunError(
            f"{path}: a plan file with a damaged job entry ({exc}): plan again"
        ) from None


def refuse_if_stale(path: Path, saved: SavedJob, job: JobSpec, stored_index: str | None) -> None:
    """Raise `BatchrunError` when the job or its inputs changed since the plan was made."""
    if job.name != saved.name:
        raise BatchrunError(
            f"{path}: the plan is stale: {saved.path} now names job {job.name!r}, "
            f"not {saved.name!r}; plan again"
        )
    if spec_fingerprint(job) != saved.spec:
        raise BatchrunError(
            f"{path}: the plan is stale: job {job.name}'s file {saved.path} changed since "
            "the plan was made (or a template it reads, or the batchrun version); plan again"
        )
    changed = changed_inputs(saved.inputs, input_digests(job, stored_index))
    if changed:
        n = len(changed)
        shown = ", ".join(changed[:3]) + (", ..." if n > 3 else "")
        raise BatchrunError(
            f"{path}: the plan is stale: {n} {'input' if n == 1 else 'inputs'} changed; "
            f"plan again (job {job.name}: {shown})"
        )
