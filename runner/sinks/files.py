"""The files sink: one file per input under `output.path`, mirroring the inputs.

Where an input's answer goes (see docs/sinks.md):
- a glob input: `<output.path>/<path below the glob's fixed base>` with the suffix replacing
  the extension (`glob: data/**/*.txt`: `data/sub/a.txt` -> `sub/a.md`), or appended with
  `output.keep_extension` (`sub/a.txt.md`); validation refuses a job whose inputs would
  share a file (`mirrored_name`);
- a record input (no path): `<output.path>/<key_filename(input_key)><suffix>`.

No path derived from an input can leave `output.path`: `..`, absolute paths, drive letters,
backslashes and NUL bytes are refused before touching the disk, and every folder is opened
relative to its vetted parent with O_NOFOLLOW, so a symlink anywhere below `output.path`
is refused too. A refused input raises `SinkRecordError`; the other inputs are written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runner.errors import BatchrunError
from runner.globs import mirrored_name
from runner.records import DeadLetter, ResultRecord
from runner.sinks import SinkRecordError, SinkRecordErrors, atomic
from runner.sinks.deadfile import DeadLetterFile, sidecar_path
from runner.spec.model import FileContent, OutputSpec

DEFAULT_SUFFIX: dict[str, str] = {"text": ".md", "json": ".json", "message": ".json"}

_SAFE_KEY = re.compile(r"^[a-z0-9_][a-z0-9._-]{0,99}$")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
_LEADING = re.compile(r"^[.-]")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Device names Windows reserves in any folder, with any extension.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10)]
)
# What opening a folder with O_NOFOLLOW says when a symlink or a file is where it should be.
_REFUSED_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EEXIST})
# Concurrent writers: ext4 and xfs fold concurrent fsyncs into one journal commit, so 8
# threads wrote 1.5-3x the files per second of one here; 16 or 32 gained nothing more.
_WRITERS = 8
_NAME_MAX = 255  # bytes per path component on every common filesystem
_MESSAGE_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SORT_KEYS
_FENCED = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?```$", re.DOTALL)


# ---------------------------------------------------------------------------------------
# Paths


def key_filename(input_key: str) -> str:
    """A file name for a record input's key, without suffix; distinct keys, distinct names.

    A key that is already a safe name (lower-case letters, digits, `_`, `.`, `-`; not
    starting with `.` or `-`; at most 100 characters; not a Windows device name) is used
    as it is. Any other key becomes its sanitised form (other characters as `_`, at most
    80 characters) + `~` + 16 hex digits of its sha256. `~` never occurs in a safe key and
    the hash tells sanitised keys apart, so no two keys collide, even on case-insensitive
    filesystems (safe keys have no capitals).
    """
    if _SAFE_KEY.match(input_key) and input_key.split(".")[0] not in _RESERVED:
        return input_key
    digest = hashlib.sha256(input_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    # No leading '.' or '-': no hidden files, nothing a shell would read as an option.
    readable = _LEADING.sub("_", _UNSAFE_CHAR.sub("_", input_key))[:80]
    return f"{readable}~{digest}"


def target_parts(
    input_key: str,
    input_path: str | None,
    suffix: str,
    base: str = "",
    keep_extension: bool = False,
) -> tuple[str, ...]:
    """The path components of an input's file below `output.path`.

    Raises `SinkRecordError` when the input's path could lead outside `output.path` or
    cannot be a file name.
    """
    if input_path is None:
        parts: tuple[str, ...] = (key_filename(input_key) + suffix,)
    else:
        _checked_relative(input_key, input_path)
        parts = _checked_relative(
            input_key, mirrored_name(input_path, suffix, base, keep_extension)
        )
    _check_names(input_key, parts)
    return parts


def _checked_relative(key: str, path: str) -> tuple[str, ...]:
    """The components of a relative, forward-slash path with no `.`, `..` or empty part."""
    problem = None
    if "\0" in path:
        problem = "contains a NUL byte"
    elif "\\" in path or _DRIVE.match(path):
        problem = "is a Windows path (backslash or drive letter)"
    elif path.startswith("/"):
        problem = "is absolute"
    elif any(p in ("", ".", "..") for p in path.split("/")):
        problem = "has an empty, '.' or '..' component"
    if problem:
        raise SinkRecordError(key, f"refused output path {path!r}: it {problem}")
    return tuple(path.split("/"))


def _check_names(key: str, parts: tuple[str, ...]) -> None:
    for part in parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise SinkRecordError(key, f"refused output name {part!r}: longer than 255 bytes")
    if atomic.TEMP_NAME.match(parts[-1]):
        raise SinkRecordError(key, f"refused output name {parts[-1]!r}: a temp file's name")


# ---------------------------------------------------------------------------------------
# Content


def render(record: ResultRecord, content: FileContent) -> bytes:
    """The bytes of a record's file.

    `text`: the answer as UTF-8, as it is. `json`: the answer parsed as JSON (the whole
    answer, or one fenced block that is the whole answer) and pretty-printed with the
    answer's key order; anything else raises `SinkRecordError`. `message`: the full message,
    pretty-printed with sorted keys so re-runs diff cleanly.
    """
    if content == "text":
        try:
            return record.text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise SinkRecordError(record.input_key, f"the answer is not valid text ({e})") from None
    if content == "json":  # an output schema's answer is already parsed and validated
        value = (
            record.data
            if record.data is not None
            else parse_json_answer(record.input_key, record.text)
        )
        return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    return orjson.dumps(record.message, default=_plain, option=_MESSAGE_OPTIONS)


def parse_json_answer(input_key: str, text: str) -> Any:
    """The JSON value of an answer, tolerating a ```json fence around it."""
    body = text.strip()
    fenced = _FENCED.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        # The stdlib parser, not orjson: it keeps integers past 64 bits exact (ids!).
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as e:  # JSONDecodeError, or a number JSON cannot hold
        raise SinkRecordError(input_key, f"the answer is not JSON ({e})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


def _plain(value: Any) -> Any:
    """orjson serialises only dict and list; records may hold other mappings/sequences."""
    if hasattr(value, "keys"):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# ---------------------------------------------------------------------------------------
# The sink


@dataclass(frozen=True)
class _Write:
    """One file to (re)write: the input's key, its path below output.path, its bytes."""

    key: str
    parts: tuple[str, ...]
    data: bytes


class FilesSink:
    """`output.type: files`. See the module docstring for layout and safety.

    Idempotent: a file already holding the exact bytes is not rewritten (a stat and a
    read), so a re-run or a crash re-apply is cheap and leaves mtimes alone. Each file is
    written atomically and fsynced; `flush` fsyncs the folders whose entries changed.
    """

    def __init__(self, output: OutputSpec) -> None:
        self._content: FileContent = output.content
        self._suffix = output.suffix or DEFAULT_SUFFIX[output.content]
        self._naming = (output.input_base, output.keep_extension)
        self._root_fd: int | None = _open_root(output.local)
        atomic.remove_temps(output.local)
        self._dirty: set[tuple[str, ...]] = set()
        self._writers: ThreadPoolExecutor | None = None
        self._dead = DeadLetterFile(sidecar_path(output.local))

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        """Write each record's file; raise `SinkRecordErrors` at the end for any refused.

        Unchanged files are found in this thread (a stat and a read each); changed ones are
        written by a few threads at once, since the filesystem folds concurrent fsyncs into
        shared journal commits, and fsync is where a files sink spends its time.
        """
        self._check_open()
        latest = {r.input_key: r for r in records}  # a key twice in one call: the last wins
        pending, errors = self._changed(latest.values())
        errors += [e for e in self._pool().map(self._try_write, pending) if e is not None]
        for write in pending:  # their folders' entries changed: sync them at flush
            self._dirty.update(write.parts[:i] for i in range(len(write.parts)))
        refused = {e.input_key for e in errors}
        self._dead.discard(k for k in latest if k not in refused)
        if errors:
            raise SinkRecordErrors(errors)

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Record dead letters in `<output.path>.dead.jsonl`, then remove those inputs'
        answer files: an input has a result or a dead letter, never both."""
        self._check_open()
        self._dead.put(letters)
        for letter in letters:
            self._remove_answer(letter)

    def flush(self) -> None:
        for folder in sorted(self._dirty):
            try:
                fd = self._open_folder(folder, create=False)
            except FileNotFoundError:
                continue  # removed by someone else since: nothing of ours left to sync
            try:
                atomic.fsync_dir(fd)
            finally:
                os.close(fd)
        self._dirty.clear()

    def close(self) -> None:
        if self._root_fd is None:
            return
        if self._writers is not None:
            self._writers.shutdown()
            self._writers = None
        self.flush()
        os.close(self._root_fd)
        self._root_fd = None

    def _remove_answer(self, letter: DeadLetter) -> None:
        """Delete the input's answer file if there is one (only a regular file, ever)."""
        try:
            parts = target_parts(letter.input_key, letter.input_path, self._suffix, *self._naming)
            fd = self._open_folder(parts[:-1], create=False)
        except (SinkRecordError, FileNotFoundError, NotADirectoryError):
            return  # no such file can exist (refused path, or its folder is missing)
        except OSError as e:
            if e.errno in _REFUSED_ERRNOS:
                return  # a symlink in the way: the answer cannot be ours
            raise
        try:
            st = atomic.lstat(fd, parts[-1])
            if st is not None and atomic.is_regular(st):
                atomic.unlink(fd, parts[-1])
                self._dirty.add(parts[:-1])
        finally:
            os.close(fd)

    def _check_open(self) -> int:
        if self._root_fd is None:
            raise ValueError("the files sink is closed")
        return self._root_fd

    def _pool(self) -> ThreadPoolExecutor:
        if self._writers is None:
            self._writers = ThreadPoolExecutor(_WRITERS, thread_name_prefix="files-sink")
        return self._writers

    def _changed(
        self, records: Iterable[ResultRecord]
    ) -> tuple[list[_Write], list[SinkRecordError]]:
        """The writes that would change a file, and the records refused."""
        pending: list[_Write] = []
        errors: list[SinkRecordError] = []
        for record in records:
            try:
                write = self._prepare(record)
            except SinkRecordError as e:
                errors.append(e)
            else:
                if write is not None:
                    pending.append(write)
        return pending, errors

    def _prepare(self, record: ResultRecord) -> _Write | None:
        """The write a record needs, or None when its file already holds those bytes."""
        parts = target_parts(record.input_key, record.input_path, self._suffix, *self._naming)
        data = render(record, self._content)
        fd = self._open_folder_for(record.input_key, parts)
        try:
            if _holds(fd, parts, data, record.input_key):
                return None
        finally:
            os.close(fd)
        return _Write(record.input_key, parts, data)

    def _try_write(self, write: _Write) -> SinkRecordError | None:
        """Runs in a writer thread; a refusal is returned, anything else raised."""
        try:
            fd = self._open_folder_for(write.key, write.parts)
        except SinkRecordError as e:
            return e  # the folder changed under us since `_prepare`
        try:
            atomic.write_atomic(fd, write.parts[-1], write.data)
        finally:
            os.close(fd)
        return None

    def _open_folder_for(self, key: str, parts: tuple[str, ...]) -> int:
        try:
            return self._open_folder(parts[:-1], create=True)
        except OSError as e:
            if e.errno not in _REFUSED_ERRNOS:
                raise  # a full disk or a permission problem is not this input's fault
            where = "/".join(parts[:-1])
            raise SinkRecordError(
                key, f"refused output folder {where!r}: a symlink or a file is in the way"
            ) from e

    def _open_folder(self, folder: tuple[str, ...], *, create: bool) -> int:
        """An fd of `output.path/folder`, each step opened without following symlinks."""
        fd = os.dup(self._check_open())
        for name in folder:
            fd = _step(fd, name, create=create)
        return fd


def _open_root(path: Path) -> int:
    """The output folder, created if missing; a clear error when it cannot be one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileExistsError, NotADirectoryError) as e:
        raise BatchrunError(f"output.path {str(path)!r} must be a folder: {e.strerror}") from e


def _step(parent_fd: int, name: str, *, create: bool) -> int:
    """Open the folder `name` inside `parent_fd` (creating it if asked); closes the parent."""
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=parent_fd)
        return os.open(name, atomic.DIR_FLAGS, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


def _holds(fd: int, parts: tuple[str, ...], data: bytes, key: str) -> bool:
    """Whether the file already holds `data`; refuses a symlink or folder in its place."""
    st = atomic.lstat(fd, parts[-1])
    if st is None:
        return False
    if not atomic.is_regular(st):
        where = "/".join(parts)
        raise SinkRecordError(key, f"refused output file {where!r}: it is not a regular file")
    return st.st_size == len(data) and atomic.read_bytes(fd, parts[-1]) == data
