"""Inputs: a job's glob or JSONL/CSV records -> a deterministic stream of `InputItem`.

Streaming: one file or record is read at a time, so memory does not grow with the number
of inputs (only the set of keys seen, for the duplicate check, does).
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runner import limits
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
    if spec.kind == "glob":
        raw: Iterator[InputItem] = _iter_files(job)
    elif spec.kind == "jsonl":
        raw = _iter_jsonl(_record_file(job))
    else:
        raw = _iter_csv(_record_file(job))
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
            first = _first_with_key(job, key, key_fn)
            raise InputError(
                f"{shown(job.path)}: inputs {first} and {item.origin} have the same key {key!r}: "
                "each input needs its own key (see input.key)"
            )
        seen.add(key)
        yield item if key == item.key else InputItem(key, item.path, item.context, item.blocks)


def _first_with_key(job: JobSpec, key: str, key_fn: KeyFn | None) -> str:
    """The origin of the first input with `key`: found again rather than stored for every key,
    because duplicates are rare and memory should not grow with the input count."""
    source = _iter_files(job) if job.input.kind == "glob" else None
    if source is None:
        path = _record_file(job)
        source = _iter_jsonl(path) if job.input.kind == "jsonl" else _iter_csv(path)
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
    for rel in matching_files(job):
        path = job.base_dir / rel
        if path.is_file():
            yield _file_item(job, rel, path)


def _file_item(job: JobSpec, rel: str, path: Path) -> InputItem:
    size = path.stat().st_size
    where = shown(path)  # as the user would type it, from where they stand
    if size == 0:
        raise InputError(f"{where}: the file is empty: there is nothing to send")
    if size > limits.MAX_REQUEST_BYTES:
        raise InputError(
            f"{where}: {size:,} bytes is more than a request may hold "
            f"({limits.MAX_REQUEST_BYTES:,}): split the file or leave it out with input.exclude"
        )
    data = path.read_bytes()
    context: dict[str, Any] = {
        "path": rel,
        "name": path.name,
        "stem": path.stem,
        "bytes": size,
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


def _iter_jsonl(path: Path) -> Iterator[InputItem]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{shown(path)}:{number}: not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                kind = type(record).__name__
                raise InputError(
                    f"{shown(path)}:{number}: each line must be a JSON object, not {kind}"
                )
            yield _record_item(number, record)


def _iter_csv(path: Path) -> Iterator[InputItem]:
    # utf-8-sig: spreadsheets often write a BOM that would otherwise prefix the first column.
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = _csv_header(path, reader)
        last = reader.line_num
        try:
            for row in reader:
                start, last = last + 1, reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{shown(path)}:{start}: {len(row)} fields where the header has "
                        f"{len(header)}"
                    )
                yield _record_item(start, dict(zip(header, row, strict=True)))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{shown(path)}:{reader.line_num}: unreadable CSV: {exc}") from None


def _csv_header(path: Path, reader: Any) -> list[str]:
    try:
        header: list[str] = next(reader)
    except StopIteration:
        raise InputError(f"{shown(path)}: the CSV file is empty: it needs a header row") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{shown(path)}:1: unreadable CSV header: {exc}") from None
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise InputError(f"{shown(path)}:1: duplicate column names in the header: {duplicates}")
    return header
