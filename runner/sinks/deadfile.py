"""Dead letters beside a file-based sink: `<path>.dead.jsonl`, one line per input key.

The JSONL and files sinks share this format, so tools reading dead letters need to know
one shape: each line is a JSON object with the fields of `records.DeadLetter`, in that
order, sorted by input key. The file is small (dead letters are the exception), so every
change rewrites it atomically rather than appending: an append would need compaction to
stay keyed by input key, and a torn append would corrupt a line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from runner.records import DeadLetter
from runner.sinks import atomic


def sidecar_path(output_path: Path) -> Path:
    """Where the dead letters of a sink writing `output_path` go: `<path>.dead.jsonl`."""
    return output_path.with_name(output_path.name + ".dead.jsonl")


def letter_to_dict(letter: DeadLetter) -> dict[str, Any]:
    return dataclasses.asdict(letter)


class DeadLetters:
    """The dead letters of one sink, kept in memory and saved whole on each change.

    Contract: `put` makes each letter the one of its input key; `discard` removes the
    letters of keys that now have a result. Both are idempotent and save only when
    something changed; an empty set removes the saved copy. Durable on return. Where the
    letters are kept is the subclass's: `_load` (called once, on first use) and `_save`.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, dict[str, Any]] | None = None

    @property
    def _letters(self) -> dict[str, dict[str, Any]]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def __len__(self) -> int:
        return len(self._letters)

    def get(self, input_key: str) -> dict[str, Any] | None:
        return self._letters.get(input_key)

    def put(self, letters: Iterable[DeadLetter]) -> None:
        changed = False
        for letter in letters:
            row = letter_to_dict(letter)
            if self._letters.get(letter.input_key) != row:
                self._letters[letter.input_key] = row
                changed = True
        if changed:
            self._save()

    def discard(self, input_keys: Iterable[str]) -> None:
        if not self._letters:  # the common case: nothing to look up
            return
        removed = [k for k in input_keys if self._letters.pop(k, None) is not None]
        if removed:
            self._save()

    def encode(self) -> bytes:
        """The saved form: one JSON line per letter, sorted by input key."""
        return b"".join(orjson.dumps(self._letters[k]) + b"\n" for k in sorted(self._letters))

    def _load(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError


class DeadLetterFile(DeadLetters):
    """Dead letters in a local file, replaced atomically on each change."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove_temps_of(path.parent, path.name)
        self._loaded = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        """The letters on disk; the file is only ever replaced whole, never torn."""
        try:
            return parse_letters(self.path.read_bytes())
        except FileNotFoundError:
            return {}

    def _save(self) -> None:
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if self._letters:
                atomic.write_atomic(dir_fd, self.path.name, self.encode())
            else:
                atomic.unlink(dir_fd, self.path.name)
            atomic.fsync_dir(dir_fd)
        finally:
            os.close(dir_fd)


def parse_letters(data: bytes) -> dict[str, dict[str, Any]]:
    """The letters of a saved copy (`DeadLetters.encode`), by input key."""
    rows = (orjson.loads(line) for line in data.splitlines() if line.strip())
    return {row["input_key"]: row for row in rows}
