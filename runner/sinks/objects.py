"""The `jsonl` and `files` sinks on object storage (`s3://`, `gs://`), with the contract
they have on disk: keyed by input key, exactly once after any crash and re-run.

JSONL: one object that readers can use as it is. An object cannot be appended to, so the
sink works on a scratch copy on local disk: before its first change it downloads the object
and its dead-letter twin once, applies every change to the copy with the local sink's own
logic (`JsonlSink`), and on each flush uploads each copy that changed, whole. An upload
commits at its end, so a reader sees the old object or the new one, never half; a crash
before it leaves the old object, and the re-run re-applies the page the state had not
confirmed. A sink opened and closed with nothing to write reads nothing. Each flush uploads
the whole object, so this suits results of up to a few hundred MB; beyond that, a files or
postgres sink writes only what changed.

Files: one object per input, named as the files sink names its files (`target_parts`,
`render`), written several at once, each PUT whole. Dead letters are one object
`<prefix>.dead.jsonl` beside them, in the local sidecar's format, rewritten whole when they
change; an input's dead letter deletes its answer object.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner import crashpoint, storage
from runner.records import DeadLetter, ResultRecord
from runner.sinks import SinkRecordError, SinkRecordErrors
from runner.sinks.deadfile import DeadLetters, parse_letters
from runner.sinks.files import DEFAULT_SUFFIX, render, target_parts
from runner.sinks.jsonl import JsonlSink, dead_letter_path
from runner.spec.model import OutputSpec
from runner.storage import Url

DEAD_SUFFIX = ".dead.jsonl"


def dead_letter_url(output: Url) -> Url:
    """`s3://b/out/x.jsonl` -> `s3://b/out/x.jsonl.dead.jsonl`, as beside a local sink."""
    return output.with_suffix_added(DEAD_SUFFIX)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever the local sink changes a file: an append grows it, a rewrite
    replaces it (a new inode)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


class ObjectJsonlSink:
    """`output.type: jsonl` with an `s3://` or `gs://` path. See the module docstring."""

    def __init__(self, url: Url) -> None:
        self._store = storage.storage(url.scheme)
        self._scratch = tempfile.TemporaryDirectory(prefix="batchrun-sink-")
        local = Path(self._scratch.name) / (url.name or "results.jsonl")
        self._copies = ((url, local), (dead_letter_url(url), dead_letter_path(local)))
        self._local = JsonlSink(local)
        self._uploaded: dict[Path, tuple[int, int, int] | None] | None = None

    def _pull(self) -> None:
        """Download both objects, once, before the first change."""
        if self._uploaded is not None:
            return
        self._uploaded = {}
        for url, local in self._copies:
            self._store.download(url, local)
            self._uploaded[local] = _identity(local)

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        self._pull()
        self._local.upsert(records)

    def upsert_lines(self, lines: Sequence[tuple[str, str, bytes]]) -> None:
        """`JsonlSink.upsert_lines`: the stored record bytes, written as they are."""
        self._pull()
        self._local.upsert_lines(lines)

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        self._pull()
        self._local.upsert_dead(letters)

    def flush(self) -> None:
        """Make the copies durable, then upload each one that changed since its upload."""
        if self._uploaded is None:
            return  # nothing was written
        self._local.flush()
        for url, local in self._copies:
            now = _identity(local)
            if now is not None and now != self._uploaded.get(local):
                self._store.upload(local, url)
                self._uploaded[local] = now
                crashpoint.hit("mid_sink_write")  # results uploaded, dead letters not yet

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._scratch.cleanup()


class DeadLetterObject(DeadLetters):
    """The dead letters of an object files sink: one object, read on first use."""

    def __init__(self, store: storage.Storage, url: Url) -> None:
        super().__init__()
        self._store = store
        self.url = url

    def _load(self) -> dict[str, dict[str, Any]]:
        data = self._store.fetch(self.url)
        return parse_letters(data) if data is not None else {}

    def _save(self) -> None:
        if self._letters:
            self._store.put({self.url: self.encode()})
        else:
            self._store.delete([self.url])


class ObjectFilesSink:
    """`output.type: files` with an `s3://` or `gs://` path: one object per input."""

    def __init__(self, output: OutputSpec, url: Url) -> None:
        self._content = output.content
        self._suffix = output.suffix or DEFAULT_SUFFIX[output.content]
        self._naming = (output.input_base, output.keep_extension)  # as the files sink names
        self._root = url
        self._store = storage.storage(url.scheme)
        self._dead = DeadLetterObject(self._store, dead_letter_url(url))

    def upsert(self, records: Sequence[ResultRecord]) -> None:
        """Write each record's object; raise `SinkRecordErrors` at the end for any refused."""
        latest = {r.input_key: r for r in records}  # a key twice in one call: the last wins
        objects: dict[Url, bytes] = {}
        errors: list[SinkRecordError] = []
        for record in latest.values():
            try:
                objects[self._url(record.input_key, record.input_path)] = render(
                    record, self._content
                )
            except SinkRecordError as e:
                errors.append(e)
        self._store.put(objects)
        refused = {e.input_key for e in errors}
        self._dead.discard(k for k in latest if k not in refused)
        if errors:
            raise SinkRecordErrors(errors)

    def upsert_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Record the dead letters, then delete those inputs' answer objects: an input has
        a result or a dead letter, never both."""
        self._dead.put(letters)
        answers: list[Url] = []
        for letter in letters:
            try:
                answers.append(self._url(letter.input_key, letter.input_path))
            except SinkRecordError:
                continue  # no answer can exist under a refused name
        self._store.delete(answers)

    def flush(self) -> None:
        """Nothing to do: every PUT is durable when it returns."""

    def close(self) -> None:
        """Nothing to release."""

    def _url(self, input_key: str, input_path: str | None) -> Url:
        parts = target_parts(input_key, input_path, self._suffix, *self._naming)
        return self._root.child("/".join(parts))


def holds_results(output: OutputSpec, url: Url) -> bool:
    """Whether the output exists with content: the JSONL object (or its dead letters), or
    any object under the files prefix (or its dead letters)."""
    store = storage.storage(url.scheme)
    dead = store.stat(dead_letter_url(url))
    if dead is not None and dead.size > 0:
        return True
    if output.type == "files":
        return store.any_under(url)
    found = store.stat(url)
    return found is not None and found.size > 0
