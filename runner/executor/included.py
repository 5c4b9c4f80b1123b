"""`output.include`: the input's own fields copied beside each result.

For a file input the fields (`path`, `name`, `stem`) follow from the path that state keeps.
For records they are looked up in the input file when results are collected: the request
body does not carry them (they are not part of what the model sees, and must not change a
custom_id), so the file is read once per process and job, keeping only the included fields
of each key. A record no longer in the file, or without the field, gives null.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from runner.errors import InputError
from runner.render import keyed_inputs
from runner.spec import JobSpec

_INDEXES: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = {}


def included(job: JobSpec, input_key: str, input_path: str | None) -> dict[str, Any] | None:
    """The included fields of one input, or None when the job includes none."""
    fields = job.output.include
    if not fields:
        return None
    if job.input.kind == "glob":
        return _file_fields(fields, input_path or input_key)
    found = _index(job).get(input_key)
    return {f: (found or {}).get(f) for f in fields}


def _file_fields(fields: tuple[str, ...], path: str) -> dict[str, Any]:
    name = posixpath.basename(path)
    values = {"path": path, "name": name, "stem": posixpath.splitext(name)[0]}
    return {f: values.get(f) for f in fields}


def _index(job: JobSpec) -> Mapping[str, dict[str, Any]]:
    """key -> included fields of every record, read once while the file is unchanged (a
    records file that is not a local path, such as an object URL, once per process)."""
    try:
        st = job.input.path.stat() if job.input.path is not None else None
    except OSError:
        return {}
    token = (job.spec_hash, st.st_size if st else -1, st.st_mtime_ns if st else -1)
    index = _INDEXES.get(token)
    if index is None:
        _INDEXES.clear()  # one job's records at a time: jobs are collected one by one
        index = _INDEXES[token] = _read(job)
    return index


def _read(job: JobSpec) -> dict[str, dict[str, Any]]:
    fields = job.output.include
    out: dict[str, dict[str, Any]] = {}
    try:
        for item in keyed_inputs(job):
            record = item.context.get("record")
            if isinstance(record, Mapping):
                out[item.key] = {f: record.get(f) for f in fields}
    except InputError:
        pass  # a broken input file: the keys read so far keep their fields, the rest null
    return out
