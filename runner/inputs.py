"""Inputs: a job's glob or JSONL/CSV records -> a deterministic stream of `InputItem`.

Streaming: one file or record is read at a time, so memory does not grow with the number
of inputs (only the set of keys seen, for the duplicate check, does).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson

from runner import limits, storage
from runner.errors import InputError
from runner.globs import find_files
from runner.spec.hints import shown
from runner.spec.model import JobSpec

_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True, slots=True)
class InputItem:
    """One input: its stable key, its file (relative POSIX path, or None for a record), the
    `input` template context, and content blocks sent before the prompt (document/image)."""

    key: str
    path: str | None
    context: Mapping[str, Any]
    blocks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """Where the input came from, for error messages: its path or record line."""
        if self.path is not None:
            return self.path
        return f"line {self.context['line']}"


KeyFn = Callable[["InputItem"], str]
"""An item's key from its fields (the job's `input.key` template); None: the default key."""


def iter_inputs(job: JobSpec, key: KeyFn | None = None) -> Iterator[InputItem]:
    """Yield the job's inputs in a deterministic order (sorted paths; records in file order),
    each keyed by `key` (compile passes the rendered `input.key`) or by its path/line.

    Raises `InputError` for an unreadable or malformed input, a key that cannot be rendered,
    and two inputs with the same key (naming both).
    """
    spec = job.input
    raw = _iter_files(job) if spec.kind == "glob" else RecordReader(job).items()
    yield from _keyed(job, raw, key)


def _record_file(job: JobSpec) -> Path:
    path = job.input.path
    if path is None or not path.is_file():
        raise InputError(f"{shown(job.path)}: input file {shown(path or '?')} does not exist")
    return path


# ---------------------------------------------------------------------------------------
# Keys


def _keyed(job: JobSpec, items: Iterator[InputItem], key_fn: KeyFn | None) -> Iterator[InputItem]:
    """Give each item its key (template or default) and refuse duplicates."""
    seen: set[str] = set()
    for item in items:
        key = key_fn(item) if key_fn is not None else item.key
        if key in seen:
            first = first_with_key(job, key, key_fn)
            raise InputError(
                f"{shown(job.path)}: inputs {first} and {item.origin} have the same key {key!r}: "
                "each input needs its own key (see input.key)"
            )
        seen.add(key)
        yield item if key == item.key else InputItem(key, item.path, item.context, item.blocks)


def first_with_key(job: JobSpec, key: str, key_fn: KeyFn | None) -> str:
    """The origin of the first input with `key`: found again rather than stored for every key,
    because duplicates are rare and memory should not grow with the input count."""
    source = _iter_files(job) if job.input.kind == "glob" else RecordReader(job).items()
    for item in source:
        if (key_fn(item) if key_fn else item.key) == key:
            return item.origin
    return "?"  # pragma: no cover - the key was seen, so a second pass finds it


# ---------------------------------------------------------------------------------------
# Files


def matching_files(job: JobSpec) -> list[str]:
    """Relative POSIX paths of the files the job's glob selects, minus exclusions, sorted."""
    return find_files(job.base_dir, job.input.pattern or "", job.input.exclude)


def _iter_files(job: JobSpec) -> Iterator[InputItem]:
    if job.input.url is not None:  # objects: one listing, each read when it is reached
        for found in object_stats(job) or ():
            data = read_input(job, found.key, found.size)
            yield file_item(job, found.key, data, str(found.url))
        return
    for rel in matching_files(job):
        path = job.base_dir / rel
        if path.is_file():
            yield file_item(job, rel, read_input_file(rel, path))


def _fits(where: str, size: int) -> None:
    """Refuse, before reading it, a file or object no request could hold."""
    if size == 0:
        raise InputError(f"{where}: the file is empty: there is nothing to send")
    if size > limits.MAX_REQUEST_BYTES:
        raise InputError(
            f"{where}: {size:,} bytes is more than a request may hold "
            f"({limits.MAX_REQUEST_BYTES:,}): split the file or leave it out with input.exclude"
        )


def read_input_file(rel: str, path: Path) -> bytes:
    """The bytes of one input file, refused before reading when no request could hold it.

    Raises `InputError` for an empty file or one over the API's per-request limit."""
    _fits(shown(path), path.stat().st_size)  # named as the user would type it
    return path.read_bytes()


def input_files(job: JobSpec) -> Iterator[tuple[str, int, int | str]]:
    """(path, size, version) of each file or object the glob selects, sorted, unread: a
    file's version is its mtime_ns, an object's its ETag (`object_stats`)."""
    objects = object_stats(job)
    if objects is not None:
        for found in objects:
            yield found.key, found.size, found.version
        return
    for rel in matching_files(job):
        try:
            st = (job.base_dir / rel).stat()
        except FileNotFoundError:
            continue  # a broken link, or gone since the walk
        if stat.S_ISREG(st.st_mode):
            yield rel, st.st_size, st.st_mtime_ns


def read_input(job: JobSpec, rel: str, size: int | None = None) -> bytes:
    """The bytes of the glob's file or object at `rel`, refused before reading when no
    request could hold it (`size`: what a listing said; else it is looked up)."""
    url = job.input.url
    if url is None:
        return read_input_file(rel, job.base_dir / rel)
    target, store = url.child(rel), storage.storage(url.scheme)
    if size is None:
        found = store.stat(target)
        if found is None:
            raise FileNotFoundError(f"{target}: no such object")
        size = found.size
    _fits(str(target), size)
    return store.read(target)


def object_stats(job: JobSpec) -> list[storage.ObjectStat] | None:
    """The job's input objects, unread: a glob's from one listing, a records object from
    one HEAD (none when it is missing). What an incremental pass compares instead of a
    file's size and mtime_ns: the size and the version (the ETag). None when the inputs
    are local files. An object's path is its key below the bucket, as a file's is below
    the job folder."""
    url = job.input.url
    if url is None:
        return None
    store = storage.storage(url.scheme)
    if job.input.kind == "glob":
        return store.find(url, job.input.pattern or "", job.input.exclude)
    found = store.stat(url)
    return [found] if found is not None else []


def file_item(job: JobSpec, rel: str, data: bytes, where: str | None = None) -> InputItem:
    """The input of the file `rel` (relative to the job folder, or an object's key below
    its bucket) whose bytes are `data`; `where` names it in messages (default `rel`)."""
    where = where or shown(job.base_dir / rel)  # as the user would type it, from where they stand
    if not data:
        raise InputError(f"{where}: the file is empty: there is nothing to send")
    path = PurePosixPath(rel)
    context: dict[str, Any] = {
        "path": rel,
        "name": path.name,
        "stem": path.stem,
        "bytes": len(data),
    }
    as_ = job.input.as_
    if as_ == "text":
        context["text"] = _decode_text(where, data)
        return InputItem(rel, rel, context)
    block = _document_block(where, data) if as_ == "document" else _image_block(where, data)
    return InputItem(rel, rel, context, [block])


def _decode_text(where: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where}: not valid UTF-8 at byte offset {exc.start} "
            f"(byte 0x{data[exc.start]:02x}): convert it to UTF-8 (for example `iconv -f "
            "latin1 -t utf-8`), or leave it out with input.exclude; a PDF or an image is sent "
            "with input.as: document or image instead"
        ) from None
    return text.removeprefix("\ufeff")  # a BOM is an encoding mark, not text to send


def _document_block(rel: str, data: bytes) -> dict[str, Any]:
    if not data.startswith(b"%PDF-"):
        raise InputError(f"{rel}: not a PDF (no %PDF- header): input.as: document sends PDFs")
    return _base64_block("document", "application/pdf", data)


def image_media_type(data: bytes) -> str | None:
    """The media type of a PNG, JPEG, GIF or WebP image from its magic bytes, else None."""
    for magic, media_type in _IMAGE_MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _image_block(rel: str, data: bytes) -> dict[str, Any]:
    media_type = image_media_type(data)
    if media_type is None:
        raise InputError(
            f"{rel}: not a PNG, JPEG, GIF or WebP image (judged by its content, not its name)"
        )
    return _base64_block("image", media_type, data)


def _base64_block(kind: str, media_type: str, data: bytes) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": encoded}}


# ---------------------------------------------------------------------------------------
# Records


def _record_item(line: int, record: dict[str, Any]) -> InputItem:
    return InputItem(str(line), None, {"record": record, "line": line})


def _csv_header(path: str, reader: Any) -> list[str]:
    try:
        header: list[str] = next(reader)
    except StopIteration:
        raise InputError(f"{path}: the CSV file is empty: it needs a header row") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}:1: unreadable CSV header: {exc}") from None
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise InputError(f"{path}:1: duplicate column names in the header: {duplicates}")
    return header


# ---------------------------------------------------------------------------------------
# Records, read from where the last pass stopped

_BLOCK = 1 << 20  # records files are read and hashed in blocks of this size


@dataclass(frozen=True)
class RecordsMark:
    """Where a pass stopped reading a records file: just after its last complete line
    (`offset` bytes, `lines` lines), with the sha256 of those bytes; a CSV's header too.
    A line not ended by a newline is read but not passed: a writer may still be adding to
    it, so the next pass reads it again."""

    offset: int = 0
    lines: int = 0
    sha: str = hashlib.sha256().hexdigest()
    header: tuple[str, ...] | None = None


class RecordReader:
    """A JSONL or CSV file's records after a mark, hashing every byte it reads, so that the
    next pass can prove the part before its mark unchanged and read only what was added."""

    def __init__(self, job: JobSpec) -> None:
        self.job = job
        # The local file, or an object (read in ranges); `where` names it in messages.
        self.source: Path | storage.Url = job.input.url or _record_file(job)
        self.where = shown(self.source) if isinstance(self.source, Path) else str(self.source)
        self._hash = hashlib.sha256()
        self.mark = RecordsMark()  # after a complete iteration: where this pass stopped

    def stat(self) -> tuple[int, int | str]:
        """(size, version) without reading: mtime_ns for a file, the ETag for an object."""
        if isinstance(self.source, Path):
            st = self.source.stat()
            return st.st_size, st.st_mtime_ns
        found = storage.storage(self.source.scheme).stat(self.source)
        if found is None:
            raise InputError(f"{self.where}: no such object: check the bucket and the key")
        return found.size, found.version

    @contextlib.contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        if isinstance(self.source, Path):
            with self.source.open("rb") as fh:
                yield fh
        else:
            with storage.storage(self.source.scheme).open(self.source) as fh:
                yield fh

    def continues(self, mark: RecordsMark) -> bool:
        """Whether the file still begins with the bytes `mark` covers (it may have grown).
        If so, the hash goes on from the mark; if not, reading starts over."""
        h = hashlib.sha256()
        with self._open() as fh:
            left = mark.offset
            while left > 0 and (block := fh.read(min(_BLOCK, left))):
                h.update(block)
                left -= len(block)
        if left or h.hexdigest() != mark.sha:
            return False
        self._hash = h
        return True

    def items(self, mark: RecordsMark | None = None) -> Iterator[InputItem]:
        """The records after `mark` (from the start if None), in file order; `self.mark` is
        set once the last one has been yielded."""
        start = mark or RecordsMark()
        if start.offset == 0:
            self._hash = hashlib.sha256()
        with self._open() as fh:
            fh.seek(start.offset)
            if self.job.input.kind == "jsonl":
                yield from self._jsonl(fh, start)
            else:
                yield from self._csv(fh, start)

    def _jsonl(self, fh: IO[bytes], start: RecordsMark) -> Iterator[InputItem]:
        offset, number, carry = start.offset, start.lines, b""
        while block := fh.read(_BLOCK):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            if not cut:
                continue
            self._hash.update(memoryview(block)[:cut])
            offset += cut
            for raw in block[: cut - 1].split(b"\n"):
                number += 1
                if raw.strip():
                    yield _jsonl_item(self.where, number, raw)
        self.mark = RecordsMark(offset, number, self._hash.hexdigest())
        if carry.strip():
            yield _jsonl_item(self.where, number + 1, carry)

    def _csv(self, fh: IO[bytes], start: RecordsMark) -> Iterator[InputItem]:
        fed = _FedLines(fh, self._hash, start.offset, start.lines)
        reader = csv.reader(fed)
        header = list(start.header) if start.header is not None else _csv_header(self.where, reader)
        mark = RecordsMark(fed.offset, fed.lines, self._hash.hexdigest(), tuple(header))
        try:
            for row in reader:
                first = mark.lines + 1
                if fed.complete:
                    mark = RecordsMark(fed.offset, fed.lines, self._hash.hexdigest(), mark.header)
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{self.where}:{first}: {len(row)} fields where the header "
                        f"has {len(header)}"
                    )
                yield _record_item(first, dict(zip(header, row, strict=True)))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{self.where}:{fed.lines}: unreadable CSV: {exc}") from None
        self.mark = mark


class _FedLines:
    """The lines of a CSV file as text, for `csv.reader`, counting and hashing the complete
    ones: after the reader yields a row, `offset` and `lines` are at that row's end."""

    def __init__(self, fh: IO[bytes], digest: Any, offset: int, lines: int) -> None:
        self._fh, self._digest = fh, digest
        self.offset, self.lines, self.complete = offset, lines, True

    def __iter__(self) -> Iterator[str]:
        # utf-8-sig for the first line: spreadsheets often write a BOM before the header.
        encoding = "utf-8-sig" if self.offset == 0 else "utf-8"
        for raw in self._fh:
            self.complete = raw.endswith(b"\n")
            if self.complete:
                self._digest.update(raw)
                self.offset += len(raw)
                self.lines += 1
            yield raw.decode(encoding)
            encoding = "utf-8"


def _jsonl_item(path: str, number: int, raw: bytes) -> InputItem:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}:{number}: not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        kind = type(record).__name__
        raise InputError(f"{path}:{number}: each line must be a JSON object, not {kind}")
    return _record_item(number, record)
