"""The input fingerprint: a cheap proof that a job would compile to the same requests.

A re-run of an unchanged, finished job used to render and hash every input again only to
learn that nothing changed. The fingerprint covers everything a request's bytes (and so
its custom_id) depend on, without reading the inputs:

- the job file's meaning (`spec_hash`: model, params, betas, vars, max_tokens, input
  selection, ...) and the batchrun version (a new version may compile differently);
- the text of every template (inline or from `system.file` / `prompt_file`), by content;
- each input file: relative path, size and mtime_ns (a glob's whole file list, so an added
  or removed file changes it; or the one JSONL/CSV records file); for objects in object
  storage, key, size and version (the ETag) from one listing, read by `inputs.object_stats`.

Size + mtime_ns is what make and git trust too. Like git's "racily clean" rule, a file
modified within `RACY_S` of now gives no fingerprint at all: an edit in the same clock tick
as the stat could otherwise keep both the size and the mtime.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import orjson

from runner import __version__
from runner.inputs import matching_files, object_stats
from runner.spec.model import JobSpec, Template

RACY_S = 2.0
_DOMAIN = b"batchrun input fingerprint v1\0"


class _Racy(Exception):
    """A file changed too recently for its size and mtime to prove anything."""


def fingerprint(job: JobSpec) -> str | None:
    """The job's input fingerprint, or None when it cannot be trusted (a racy or missing
    file): the caller then compiles in full."""
    h = hashlib.sha256(_DOMAIN)
    h.update(orjson.dumps([__version__, job.spec_hash, *_templates(job)]))
    objects = object_stats(job)
    if objects is not None:  # an ETag changes with the content: no racy window
        if not objects or not all(o.version for o in objects):
            return None  # nothing (or a missing object) to prove: compile in full
        h.update(orjson.dumps([[o.key, o.size, o.version] for o in objects]))
        return h.hexdigest()
    racy_after = time.time_ns() - int(RACY_S * 1e9)
    try:
        for rel, size, mtime in _input_stats(job):
            if mtime >= racy_after:
                raise _Racy(rel)
            h.update(orjson.dumps([rel, size, mtime]))
    except (OSError, _Racy):
        return None
    return h.hexdigest()


def _templates(job: JobSpec) -> Iterator[str]:
    found: list[Template | None] = [job.prompt, job.input.key]
    if job.system is not None:
        found.append(job.system.template)
    for t in found:
        yield "" if t is None else t.source
    for m in job.messages or ():
        yield m.role
        yield m.content.source


def _input_stats(job: JobSpec) -> Iterator[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of each input file, in a deterministic order."""
    if job.input.kind == "glob":
        rels = matching_files(job)
        yield ("<glob>", len(rels), 0)
        for rel in rels:
            yield _stat(job, rel)
    elif job.input.path is not None:
        yield _stat(job, os.path.relpath(job.input.path, job.base_dir))


def _stat(job: JobSpec, rel: str) -> tuple[str, int, int]:
    st = (job.base_dir / rel).stat()
    return rel, st.st_size, st.st_mtime_ns
