"""The JSONL sink: one line per input (its current result), dead letters in a twin file.

Idempotent by input key. Before its first change each file is scanned: a torn last line (a
crash mid-append leaves a line without its newline) is cut off, and the keys are indexed. A
sink that is opened and closed with nothing to write does not read its file at all (a
no-op re-run of a 100k job would otherwise read ~300 MB to learn nothing). A record for a new
key is appended; the same key with the same custom_id is a no-op; a changed custom_id or a
removal rewrites the file atomically (temp file, fsync, os.replace, fsync of the folder).
So after any crash and re-run no duplicate or partial line survives.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from runner import crashpoint
from runner.records import DeadLetter, ResultRecord
from runner.sinks.deadfile import sidecar_path


def dead_letter_path(output: Path) -> Path:
    """`out/x.jsonl` -> `out/x.jsonl.dead.jsonl`, the sidecar every file sink uses."""
    return sidecar_path(output)


class JsonlSink:
    """Results in `path`, dead letters in `dead_letter_path(path)`."""

    def __init__(self, path: Path) -> None:
        self.results = KeyedJsonl(path)
        self.dead = KeyedJsonl(dead_letter_path(path))

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        put = self.results.put
        for r in records:
            put(r.input_key, r.custom_id, orjson.dumps(r, default=dict))
        self.dead.remove_all(r.input_key for r in records)

    def upsert_lines(self, lines: Sequence[tuple[str, str, bytes]]) -> None:
        """`upsert` for records already serialised: (input_key, custom_id, the record's
        orjson bytes), as the job's state stores them. The line is the same bytes `upsert`
        would write; skipping the decode and re-encode doubles the collect throughput."""
        put = self.results.put
        for key, cid, line in lines:
            put(key, cid, line)
        self.dead.remove_all(key for key, _, _ in lines)

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        for d in letters:
            self.dead.put(d.input_key, d.custom_id, orjson.dumps(d, default=dict))
        self.results.remove_all(d.input_key for d in letters)

    def flush(self) -> None:
        self.results.flush()
        self.dead.flush()

    def close(self) -> None:
        self.flush()


# The head of a line as orjson writes a ResultRecord or DeadLetter: input_key, input_path,
# custom_id first. Indexing a 100k-line output read whole lines (~1 s: most of a pass that
# appends one result); the head is enough. Any other line is parsed in full.
_HEAD = re.compile(
    rb'\{"input_key":("(?:[^"\\]|\\.)*"),"input_path":(?:null|"(?:[^"\\]|\\.)*"),'
    rb'"custom_id":"([A-Za-z0-9_-]+)"'
)


class KeyedJsonl:
    """A JSONL file of objects with `input_key` and `custom_id`, one line per key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index: dict[str, str] = {}  # input key -> custom_id of its line in the file
        self._appends: dict[str, bytes] = {}  # new keys, in arrival order
        self._replace: dict[str, bytes | None] = {}  # key -> new line, or None to remove
        self._dirty = False  # the file holds lines that must go (junk, duplicates)
        self._loaded = False

    def _load(self) -> None:
        """Index the file (once, before the first change), cutting off a torn tail."""
        if self._loaded:
            return
        self._loaded = True
        if not self.path.exists():
            return
        with self.path.open("r+b") as f:
            good = 0
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn tail: everything from `good` on goes
                good += len(raw)
                self._index_line(raw)
            if good < f.seek(0, os.SEEK_END):
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())

    def _index_line(self, raw: bytes) -> None:
        head = _HEAD.match(raw)
        try:
            if head is not None:  # the way batchrun writes lines: read the head only
                key, cid = str(orjson.loads(head[1])), head[2].decode("ascii")
            else:
                obj = orjson.loads(raw)
                key, cid = str(obj["input_key"]), str(obj["custom_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._dirty = True
            return
        if key in self.index:
            self._dirty = True
        self.index[key] = cid

    def put(self, key: str, custom_id: str, line: bytes) -> None:
        self._load()
        if key in self._appends:
            self._appends[key] = line
        elif key in self._replace or (key in self.index and self.index[key] != custom_id):
            self._replace[key] = line
        elif key not in self.index:
            self._appends[key] = line
        self.index[key] = custom_id

    def remove(self, key: str) -> None:
        self._load()
        if self._appends.pop(key, None) is not None:
            self.index.pop(key, None)
        elif key in self.index:
            del self.index[key]
            self._replace[key] = None

    def remove_all(self, keys: Iterable[str]) -> None:
        self._load()
        if not self.index:  # the common case: nothing to remove, so do not look
            return
        for key in keys:
            self.remove(key)

    def flush(self) -> None:
        if self._replace or self._dirty:
            self._rewrite()
        elif self._appends:
            self._append()
        self._appends.clear()
        self._replace.clear()
        self._dirty = False

    def _append(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = list(self._appends.values())
        middle = len(lines) // 2
        torn = lines[middle]
        # Two large writes around the middle line rather than one per line; the chaos tests
        # die mid-line, leaving a torn line behind for the next open to cut off.
        with self.path.open("ab") as f:
            if middle:
                f.write(b"\n".join(lines[:middle]))
                f.write(b"\n")
            f.write(torn[: len(torn) // 2])
            f.flush()
            crashpoint.hit("mid_sink_write")
            f.write(torn[len(torn) // 2 :])
            f.write(b"\n")
            if middle + 1 < len(lines):
                f.write(b"\n".join(lines[middle + 1 :]))
                f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self) -> None:
        """Copy the file with replacements applied, then swap it in atomically."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        written: set[str] = set()
        with tmp.open("wb") as out:
            if self.path.exists():
                with self.path.open("rb") as f:
                    for raw in f:
                        self._copy_line(raw, out, written)
            for key, line in {**self._replace, **self._appends}.items():
                if line is not None and key not in written:
                    out.write(line + b"\n")
            out.flush()
            os.fsync(out.fileno())
        crashpoint.hit("mid_sink_write")
        tmp.replace(self.path)  # atomic rename (os.replace)
        _fsync_dir(self.path.parent)

    def _copy_line(self, raw: bytes, out: BinaryIO, written: set[str]) -> None:
        try:
            obj = orjson.loads(raw)
            key, cid = str(obj["input_key"]), str(obj["custom_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if key in written or key not in self.index:
            return
        line = self._replace.get(key, raw.rstrip(b"\n") if self.index[key] == cid else None)
        if line is None:
            return
        out.write(line + b"\n")
        written.add(key)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
