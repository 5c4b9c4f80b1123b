"""How a sink drifts from the job's state, and the JSONL sink's checker (`batchrun
verify`; the files and SQLite checkers are in sinks/verify.py).

State is the source of truth and a sink its projection (sinks/__init__.py), but hands can
edit a projection. Each sink type has a checker that reads the sink once and reports
every difference as a `Drift` with its place:

- missing: state holds a result (or a dead letter) the sink lacks; a whole file, folder,
  database or table gone is one drift naming it;
- duplicated: a second entry for one input (JSONL lines);
- altered: the entry differs from what the sink writes from state;
- unparsable: an entry the sink could not have written (not JSON, no input key, cut short);
- foreign: an entry for an input state does not hold.

`repair` makes the sink hold exactly what state holds, atomically per file (JSONL: each
whole file; files: each file; SQLite: one transaction). State is read only through the
store's own streams of current results and dead letters (`StateView`), the ones `export`
reads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from runner.records import DeadLetter, ResultRecord
from runner.sinks import atomic
from runner.sinks.deadfile import sidecar_path
from runner.spec import JobSpec

Kind = Literal["missing", "duplicated", "altered", "unparsable", "foreign"]
KINDS: tuple[Kind, ...] = ("missing", "duplicated", "altered", "unparsable", "foreign")


@dataclass(frozen=True)
class Drift:
    """One difference between the sink and state, at `place` (a file, `file:line`, or a
    database's table)."""

    kind: Kind
    place: str
    detail: str

    def format(self) -> str:
        return f"{self.place}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class StateView:
    """What state holds: each callable streams it afresh (Store.iter_results, iter_dead)."""

    results: Callable[[], Iterator[ResultRecord]]
    dead: Callable[[], Iterator[DeadLetter]]


def torn_tail(job: JobSpec) -> bool:
    """Whether a JSONL sink file ends in a line cut short (a crash or a full disk mid-write):
    one byte read per file, so a run can restore that line from state."""
    if job.output.type != "jsonl":
        return False
    path = job.output.path
    return path is not None and any(_cut(p) for p in (path, sidecar_path(path)))


def _cut(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def digest(obj: Any) -> bytes:
    """The content of a JSON value, whatever its key order or spacing."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).digest()


def as_json(record: ResultRecord | DeadLetter) -> Any:
    """A record as the file sinks write it (JSONL lines, dead letter files), read back."""
    return orjson.loads(orjson.dumps(record, default=dict))


def label(key: str) -> str:
    return f"input {key!r}"


def shown(path: Path) -> str:
    """A path relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# Keyed JSONL files: the JSONL sink's results and dead letters, the files sink's dead letters


@dataclass
class _Line:
    number: int
    custom_id: str
    digest: bytes


class JsonlIndex:
    """Every line of a keyed JSONL file, read once: keys, duplicates and junk."""

    def __init__(self, path: Path) -> None:
        self.path, self.shown = path, shown(path)
        self.lines: dict[str, _Line] = {}
        self.drifts: list[Drift] = []
        self.exists = path.is_file()
        if self.exists:
            with path.open("rb") as f:
                for number, raw in enumerate(f, start=1):
                    self._line(number, raw)

    def _line(self, number: int, raw: bytes) -> None:
        place = f"{self.shown}:{number}"
        if not raw.endswith(b"\n"):
            self.drifts.append(Drift("unparsable", place, "a line cut short (no newline)"))
            return
        try:
            obj = orjson.loads(raw)
            key, cid = str(obj["input_key"]), str(obj["custom_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            detail = "not a JSON object with input_key and custom_id"
            self.drifts.append(Drift("unparsable", place, detail))
            return
        first = self.lines.get(key)
        if first is not None:
            detail = f"{label(key)} again (first on line {first.number})"
            self.drifts.append(Drift("duplicated", place, detail))
            return
        self.lines[key] = _Line(number, cid, digest(obj))

    def compare(self, expected: Iterable[tuple[str, Any]], noun: str) -> list[Drift]:
        """Drifts against state's (input key, JSON) pairs; `noun` names them (plural)."""
        drifts = list(self.drifts)
        if not self.exists:
            count = sum(1 for _ in expected)
            if count:
                detail = f"the file does not exist; state holds {count} {noun}"
                drifts.append(Drift("missing", self.shown, detail))
            return drifts
        seen: set[str] = set()
        for key, obj in expected:
            seen.add(key)
            line = self.lines.get(key)
            if line is None:
                drifts.append(Drift("missing", self.shown, f"{label(key)}: no line for it"))
            elif line.digest != digest(obj):
                why = "another request's" if line.custom_id != obj["custom_id"] else "an edited"
                detail = f"{label(key)} differs from state ({why} {noun[:-1]})"
                drifts.append(Drift("altered", f"{self.shown}:{line.number}", detail))
        for key, line in self.lines.items():
            if key not in seen:
                detail = f"{label(key)} is not in state"
                drifts.append(Drift("foreign", f"{self.shown}:{line.number}", detail))
        return drifts


def compare_dead(path: Path, state: StateView) -> list[Drift]:
    """The drifts of a dead letter file (`<output>.dead.jsonl`) from state."""
    letters = ((d.input_key, as_json(d)) for d in state.dead())
    return JsonlIndex(path).compare(letters, "dead letters")


def replace_lines(path: Path, lines: Iterable[bytes]) -> None:
    """Replace `path` with `lines`: streamed to a temp file, fsynced, renamed over it, the
    folder fsynced. All or nothing. With no lines and no file, nothing is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(atomic.temp_name(path.name))
    try:
        wrote = False
        with tmp.open("xb") as out:
            for line in lines:
                out.write(line + b"\n")
                wrote = True
            out.flush()
            os.fsync(out.fileno())
        if wrote or path.exists():
            tmp.replace(path)
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                atomic.fsync_dir(fd)
            finally:
                os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)


class JsonlCheck:
    """`output.type: jsonl`: `path` and its dead letter twin, one line per input each."""

    def __init__(self, path: Path) -> None:
        self.path, self.dead_path = path, sidecar_path(path)

    def check(self, state: StateView) -> list[Drift]:
        results = ((r.input_key, as_json(r)) for r in state.results())
        found = JsonlIndex(self.path).compare(results, "results")
        return found + compare_dead(self.dead_path, state)

    def repair(self, state: StateView) -> None:
        # The very bytes the sink writes (JsonlSink.upsert), so a later run changes nothing.
        replace_lines(self.path, (orjson.dumps(r, default=dict) for r in state.results()))
        replace_lines(self.dead_path, (orjson.dumps(d, default=dict) for d in state.dead()))
