"""The input index: what the last complete sync saw of each input, so that a pass reads and
renders only what changed (DESIGN.md: a pass costs what changed).

The index is one JSON document in the state's meta (`INDEX_META`), so every state backend
carries it. It holds the spec fingerprint and, for a glob, per file `[size, mtime_ns, sha,
custom_id]`; for a JSONL/CSV file, its size, mtime_ns and the mark where reading stopped
(`inputs.RecordsMark`). The rules, the same as make's and git's:

- A file whose size and mtime_ns equal its entry is unchanged: it is neither read nor
  rendered.
- Racily clean (git's rule): an entry taken while its file's mtime was within `RACY_S` of
  now proves nothing, since an edit in the same clock tick keeps both. Its mtime is stored
  as 0, so the next pass reads the file again (and renders it only if its content changed).
- Any other file is read and its content hashed: the same sha only refreshes its entry (a
  fresh checkout, a touch); another sha renders it.
- A records file that still begins with the bytes up to its mark (the sha proves it) is
  read from the mark: only the records added since are rendered. Otherwise (edited in the
  middle, truncated) every record is read again; unchanged records keep their custom_ids,
  so nothing done is submitted again.
- A different spec fingerprint (the job file's meaning, a template's text, the batchrun
  version) renders every input: each request depends on them.

A glob keyed by an `input.key` template is rendered in full on any change: two files may
not share a key, and only a full pass sees every key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from runner import __version__
from runner.compile import CompiledRequest, RequestBuilder
from runner.errors import InputError
from runner.inputs import (
    InputItem,
    KeyFn,
    RecordReader,
    RecordsMark,
    file_item,
    first_with_key,
    input_files,
    read_input,
)
from runner.render import KeyRenderer
from runner.spec.model import JobSpec, Template

INDEX_META = "input_index"
RACY_S = 2.0
_VERSION = 1
_DOMAIN = b"batchrun spec fingerprint v1\0"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A request rendered this pass; `replaces` is the custom_id its input had in state when
    the index knows it (a file's), for superseding and counting."""

    request: CompiledRequest
    params: Mapping[str, Any] | None
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A current request that state waits to submit: its input is rendered even if unchanged,
    since its bytes are needed."""

    custom_id: str
    input_key: str
    input_path: str | None


def spec_fingerprint(job: JobSpec) -> str:
    """What every request of the job depends on besides its own input."""
    h = hashlib.sha256(_DOMAIN)
    h.update(orjson.dumps([__version__, job.spec_hash, *_templates(job)]))
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


def content_sha(data: bytes) -> str:
    """The content hash kept per input file: sha256, 128 bits (the fastest safe hash the
    standard library has on CPUs with SHA extensions; docs/benchmarks.md)."""
    return hashlib.sha256(data).hexdigest()[:32]


class IncrementalSource:
    """The requests one pass renders, given the index the last complete sync stored.

    `scan()` first (stats only, plus a records file's prefix check), then iterate; after the
    iteration, `removed` lists the custom_ids of files gone and `index()` is the document to
    store once the pass's requests are recorded."""

    def __init__(
        self,
        job: JobSpec,
        stored: str | None,
        waiting: Sequence[Waiting] = (),
        known_keys: Callable[[], set[str]] = set,
        now_ns: int | None = None,
    ) -> None:
        self.job = job
        self.spec = spec_fingerprint(job)
        self.waiting = waiting
        self.known_keys = known_keys
        self.racy_after = (now_ns if now_ns is not None else time.time_ns()) - int(RACY_S * 1e9)
        previous = _load(stored)
        self.full = previous.get("spec") != self.spec
        if job.input.kind == "glob" and job.input.key is not None:
            self.full = True  # see the module docstring: keys are checked across all files
        self._previous = {} if self.full else previous
        self._builder: RequestBuilder | None = None
        self._key_fn: KeyFn | None = None
        self.removed: list[str] = []
        self._files: dict[str, list[Any]] = {}
        self._records: list[Any] | None = None
        self._plan: _GlobScan | _RecordsScan | None = None

    # --- the scan: what this pass must read ------------------------------------------------

    def scan(self) -> bool:
        """Decide what to read; False when nothing changed and nothing waits (the pass then
        renders nothing and writes nothing)."""
        if self.job.input.kind == "glob":
            self._plan = self._scan_glob()
            return bool(self.full or self._plan.todo or self._plan.gone)
        self._plan = self._scan_records()
        return self._plan.mode != "unchanged"

    def _scan_glob(self) -> _GlobScan:
        entries: dict[str, list[Any]] = dict(self._previous.get("files") or {})
        wanted = {w.input_path for w in self.waiting if w.input_path is not None}
        scan = _GlobScan()
        for rel, size, version in input_files(self.job):
            entry = entries.pop(rel, None)
            if (
                entry is not None
                and entry[1]
                and (entry[0], entry[1]) == (size, version)
                and rel not in wanted
            ):
                self._files[rel] = entry
            else:
                scan.todo.append((rel, version, entry, rel in wanted))
                scan.sizes[rel] = size
        scan.gone = [e[3] for e in entries.values()]
        return scan

    def _scan_records(self) -> _RecordsScan:
        reader = RecordReader(self.job)
        size, version = reader.stat()
        stored = self._previous.get("records")
        wanted = {w.input_key: w.custom_id for w in self.waiting}
        scan = _RecordsScan(reader, size, version, wanted)
        if stored is None:
            scan.mode = "full"
            return scan
        size, mtime, offset, lines, sha, header = stored
        scan.mark = RecordsMark(offset, lines, sha, tuple(header) if header else None)
        if mtime and (size, mtime) == (scan.size, scan.mtime) and not wanted:
            self._records = stored
            scan.mode = "unchanged"
        elif reader.continues(scan.mark):
            scan.mode = "append"
        else:
            scan.mode = "full"
            self.full = True
        return scan

    # --- rendering ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Rendered]:
        if self._plan is None:
            self.scan()
        if isinstance(self._plan, _GlobScan):
            yield from self._render_glob(self._plan)
        elif isinstance(self._plan, _RecordsScan):
            yield from self._render_records(self._plan)

    @property
    def builder(self) -> RequestBuilder:
        """Built on first use: a pass that renders nothing compiles no template."""
        if self._builder is None:
            self._builder = RequestBuilder(self.job)
        return self._builder

    @property
    def key_fn(self) -> KeyFn | None:
        if self._key_fn is None and self.job.input.key is not None:
            self._key_fn = KeyRenderer(self.job).render
        return self._key_fn

    def _keyed(self, item: InputItem) -> InputItem:
        return _keyed(item, self.key_fn)

    def _render_glob(self, scan: _GlobScan) -> Iterator[Rendered]:
        seen: set[str] = set()
        for rel, mtime, entry, wanted in scan.todo:
            data = read_input(self.job, rel, scan.sizes[rel])
            sha = content_sha(data)
            mtime = self._trusted(mtime)
            if entry is not None and entry[2] == sha and not wanted:
                self._files[rel] = [len(data), mtime, sha, entry[3]]  # same content
                continue
            item = self._keyed(file_item(self.job, rel, data))
            if self.key_fn is not None:
                self._refuse_duplicate(item, seen)
            request, params = self.builder.build(item)
            self._files[rel] = [len(data), mtime, sha, request.custom_id]
            yield Rendered(request, params, entry[3] if entry is not None else None)
        self.removed = scan.gone

    def _render_records(self, scan: _RecordsScan) -> Iterator[Rendered]:
        if scan.mode == "unchanged":
            return
        mark = scan.mark if scan.mode == "append" else None
        known = self.known_keys() if mark is not None and self.key_fn is not None else set()
        seen: set[str] = set()
        old_lines = mark.lines if mark is not None else 0
        # Waiting requests of records before the mark need their bytes: read from the start.
        start = None if mark is not None and scan.wanted else mark
        for item in scan.reader.items(start):
            line = int(item.context["line"])
            if line <= old_lines:  # unchanged: rendered only for a request that waits
                item = self._keyed(item)
                if item.key in scan.wanted:
                    request, params = self.builder.build(item)
                    yield Rendered(request, params, scan.wanted[item.key])
                continue
            item = self._keyed(item)
            if item.key in known or item.key in seen:
                raise _duplicate(self.job, item, self.key_fn)
            seen.add(item.key)
            request, params = self.builder.build(item)
            yield Rendered(request, params, scan.wanted.get(item.key))
        m = scan.reader.mark
        mtime = self._trusted(scan.mtime)
        self._records = [scan.size, mtime, m.offset, m.lines, m.sha, m.header]

    def _trusted(self, version: int | str) -> int | str:
        """The version to store: an mtime_ns taken within `RACY_S` of now proves nothing
        (stored as 0: read again next pass); an object's ETag changes with its content."""
        return 0 if isinstance(version, int) and version >= self.racy_after else version

    def _refuse_duplicate(self, item: InputItem, seen: set[str]) -> None:
        if item.key in seen:
            raise _duplicate(self.job, item, self.key_fn)
        seen.add(item.key)

    # --- after the pass -------------------------------------------------------------------

    def index(self) -> str:
        """The index to store once this pass's requests are all recorded."""
        doc: dict[str, Any] = {"v": _VERSION, "spec": self.spec}
        if self.job.input.kind == "glob":
            doc["files"] = self._files
        else:
            doc["records"] = self._records
        return orjson.dumps(doc).decode()


@dataclass
class _GlobScan:
    # (rel, version: mtime_ns or ETag, previous entry or None, whether a waiting request
    # needs it), and each one's size
    todo: list[tuple[str, int | str, list[Any] | None, bool]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)  # custom_ids of files no longer there


@dataclass
class _RecordsScan:
    reader: RecordReader
    size: int
    mtime: int | str  # mtime_ns, or an object's ETag
    wanted: dict[str, str]  # input key -> custom_id of the waiting requests
    mode: str = "full"  # unchanged | append | full
    mark: RecordsMark | None = None


def _keyed(item: InputItem, key_fn: KeyFn | None) -> InputItem:
    """`item` under its key: the `input.key` template's, or its path or line."""
    key = key_fn(item) if key_fn is not None else item.key
    return item if key == item.key else InputItem(key, item.path, item.context, item.blocks)


def _load(stored: str | None) -> dict[str, Any]:
    """The stored index, or an empty one when missing or of another version."""
    if not stored:
        return {}
    try:
        doc = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) and doc.get("v") == _VERSION else {}


def _duplicate(job: JobSpec, item: InputItem, key_fn: KeyFn | None) -> InputError:
    first = first_with_key(job, item.key, key_fn)
    return InputError(
        f"{job.path}: inputs {first} and {item.origin} have the same key {item.key!r}: "
        "each input needs its own key (see input.key)"
    )


def requests_for(job: JobSpec, wanted: Sequence[Waiting]) -> Iterator[CompiledRequest]:
    """The requests of the inputs that hold `wanted` requests, rendered from the inputs as
    they are now (the caller keeps those whose custom_id is still the wanted one). An input
    that can no longer be read or rendered is left out: it changed since the sync."""
    builder = RequestBuilder(job)
    key_fn = KeyRenderer(job).render if job.input.key else None
    try:
        if job.input.kind == "glob":
            for rel in sorted({w.input_path for w in wanted if w.input_path is not None}):
                try:
                    data = read_input(job, rel)
                    yield builder.build(_keyed(file_item(job, rel, data), key_fn))[0]
                except (OSError, InputError):
                    continue
            return
        keys = {w.input_key for w in wanted}
        for item in RecordReader(job).items():
            item = _keyed(item, key_fn)
            if item.key in keys:
                yield builder.build(item)[0]
    except (OSError, InputError):
        return
