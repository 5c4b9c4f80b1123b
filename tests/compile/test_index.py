"""Incremental passes (compile/index.py): a pass reads and renders only the inputs changed
since the last complete sync, and submits exactly the new and changed ones."""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from runner import compile as compile_
from runner import crashpoint, inputs, storage
from runner.commands.wiring import compiler
from runner.compile import index
from runner.errors import InputError
from runner.executor import loop as executor
from runner.executor.context import Context
from runner.plan import plan_job
from runner.sinks.jsonl import JsonlSink
from runner.spec import JobSpec, load_job
from runner.store import Store
from tests.fakes import FakeAPI, FakeClock, errored, price, succeeded
from tests.jobkit import write_job
from tests.services import Bucket, s3_client

FILES = {f"data/{i}.txt": f"text {i}" for i in range(5)}
T0 = time.time()


def age(folder: Path, seconds: float = 600.0) -> None:
    """Date every input back out of the racy window: distinct files get distinct mtimes,
    and a file keeps its own (as an untouched file does)."""
    for path in folder.rglob("*"):
        if path.is_file():
            then = T0 - seconds - zlib.crc32(path.name.encode()) % 1000
            os.utime(path, (then, then))


class Watch:
    """Which inputs a pass read and rendered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[str] = []
        self.rendered: list[str] = []
        real_read, real_build = inputs.read_input_file, compile_.RequestBuilder.build

        def read(rel: str, path: Path) -> bytes:
            self.read.append(rel)
            return real_read(rel, path)

        def build(builder: Any, item: Any) -> Any:
            self.rendered.append(item.key)
            return real_build(builder, item)

        monkeypatch.setattr(inputs, "read_input_file", read)
        monkeypatch.setattr(compile_.RequestBuilder, "build", build)

    def reset(self) -> None:
        self.read, self.rendered = [], []


class Job:
    """A job on disk run pass after pass against one fake API and one state."""

    def __init__(self, folder: Path, files: Mapping[str, str | bytes], **doc: Any) -> None:
        self.folder = folder
        self.spec = write_job(folder, dict(files), **doc)
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock)
        age(folder)

    def reload(self) -> JobSpec:
        self.spec = load_job(self.spec.path)
        return self.spec

    def run(self, no_wait: bool = False) -> executor.RunSummary:
        store = Store.open(self.folder / "state")
        ctx = Context(job=self.reload(), store=store, backend=self.api,
                      sink=JsonlSink(self.spec.output.local), compiler=compiler(),
                      clock=self.clock, price=price)  # fmt: skip
        try:
            store.lock()
            return executor.run(ctx, no_wait=no_wait)
        finally:
            ctx.sink.close()
            store.close()

    def sent(self, run: Any) -> set[str]:
        """The input keys of the requests created while `run()` ran."""
        before = set(self.api.batches)
        run()
        store = Store.open(self.folder / "state")
        try:
            keys = {s.custom_id: s.input_key for s in store.iter_states(current_only=False)}
        finally:
            store.close()
        new = [b for k, b in self.api.batches.items() if k not in before]
        return {keys[c] for b in new for c in b.custom_ids}

    def current_keys(self) -> set[str]:
        store = Store.open(self.folder / "state")
        try:
            return {s.input_key for s in store.iter_states()}
        finally:
            store.close()


def test_glob_added_edited_renamed_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(tmp_path, FILES)
    watch = Watch(monkeypatch)
    assert job.sent(job.run) == set(FILES)
    (tmp_path / "data/new.txt").write_text("a new one")
    (tmp_path / "data/1.txt").write_text("text 1, edited")
    (tmp_path / "data/2.txt").rename(tmp_path / "data/2b.txt")
    (tmp_path / "data/3.txt").unlink()
    age(tmp_path)
    watch.reset()
    changed = {"data/new.txt", "data/1.txt", "data/2b.txt"}
    assert job.sent(job.run) == changed
    assert sorted(watch.read) == sorted(watch.rendered) == sorted(changed)
    assert job.current_keys() == {"data/0.txt", "data/4.txt", *changed}
    watch.reset()
    assert job.sent(job.run) == set()  # and a no-op pass reads nothing at all
    assert watch.read == watch.rendered == []


def test_touched_file_is_read_not_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same content under a new mtime (a checkout, a touch): hashed, not rendered, not sent."""
    job = Job(tmp_path, FILES)
    job.run()
    watch = Watch(monkeypatch)
    os.utime(tmp_path / "data/2.txt", (T0 - 5, T0 - 5))
    assert job.sent(job.run) == set()
    assert watch.read == ["data/2.txt"] and watch.rendered == []


def test_racily_clean_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file modified within RACY_S of the pass proves nothing by its stat: the next pass
    reads it again (an edit in the same clock tick would keep size and mtime)."""
    job = Job(tmp_path, FILES)
    (tmp_path / "data/0.txt").write_text("text 0")  # now: inside the racy window
    job.run()
    watch = Watch(monkeypatch)
    job.run()
    assert watch.read == ["data/0.txt"] and watch.rendered == []


def test_changed_spec_renders_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(tmp_path, FILES)
    job.run()
    watch = Watch(monkeypatch)
    text = job.spec.path.read_text().replace("Summarise:", "Summarise briefly:")
    job.spec.path.write_text(text)
    assert job.sent(job.run) == set(FILES)
    assert sorted(watch.rendered) == sorted(FILES)


def test_a_sync_cut_short_leaves_no_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed mid-sync: no index vouches for a half-recorded state; the next pass renders
    every input and submits each once."""
    job = Job(tmp_path, FILES)
    job.run()
    (tmp_path / "data/new.txt").write_text("new")
    age(tmp_path)

    def crash(name: str) -> None:
        if name == "compile":
            raise KeyboardInterrupt

    monkeypatch.setattr(crashpoint, "hit", crash)
    with pytest.raises(KeyboardInterrupt):
        job.run()
    monkeypatch.undo()
    store = Store.open(tmp_path / "state")
    assert store.get_meta(index.INDEX_META) is None
    store.close()
    watch = Watch(monkeypatch)
    assert job.sent(job.run) == {"data/new.txt"}
    assert len(watch.rendered) == 6
    assert all(n == 1 for n in job.api.submissions.values())


def test_waiting_requests_render_only_their_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-wait passes: a retry found by a later pass renders its own input, no other."""

    def outcome(cid: str, n: int) -> dict[str, Any]:
        return errored("overloaded_error") if n == 1 and cid == target[0] else succeeded(cid, n)

    job = Job(tmp_path, FILES)
    job.api.outcome = outcome
    target = [
        next(r.custom_id for r in compile_.iter_requests(job.spec) if r.input_key == "data/3.txt")
    ]
    job.run(no_wait=True)  # submits all five
    watch = Watch(monkeypatch)
    job.run(no_wait=True)  # collects: data/3.txt is to retry, and is resubmitted
    assert watch.rendered == ["data/3.txt"]
    assert job.api.submissions[target[0]] == 2
    assert job.run().finished


RECORDS = "".join(f'{{"id": "r{i}", "text": "record {i}"}}\n' for i in range(5))
RECORDS_DOC: dict[str, Any] = {
    "input": {"jsonl": "data/in.jsonl"},
    "prompt": "Summarise: {{ input.record.text }}",
}


def test_jsonl_appended_is_read_from_the_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job(tmp_path, {"data/in.jsonl": RECORDS}, **RECORDS_DOC)
    assert job.sent(job.run) == {"1", "2", "3", "4", "5"}
    watch = Watch(monkeypatch)
    with (tmp_path / "data/in.jsonl").open("a") as f:
        f.write('{"id": "r5", "text": "record 5"}\n{"id": "r6", "text": "record 6"}\n')
    age(tmp_path)
    assert job.sent(job.run) == {"6", "7"}
    assert watch.rendered == ["6", "7"]


def test_jsonl_partial_last_line_is_read_again(tmp_path: Path) -> None:
    """A last line without its newline may still be being written: it is sent as it is,
    and read again by the next pass (a longer line is a new request)."""
    job = Job(tmp_path, {"data/in.jsonl": RECORDS + '{"id": "r5", "text": "rec'}, **RECORDS_DOC)
    with pytest.raises(InputError, match=r"in\.jsonl:6"):
        job.run()
    with (tmp_path / "data/in.jsonl").open("a") as f:
        f.write('ord 5"}\n')
    age(tmp_path)
    assert job.sent(job.run) == {"1", "2", "3", "4", "5", "6"}


def test_jsonl_edited_in_the_middle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes before the mark changed: every record is read again, and only the edited
    one is submitted (the others keep their custom_ids)."""
    job = Job(tmp_path, {"data/in.jsonl": RECORDS}, **RECORDS_DOC)
    job.run()
    watch = Watch(monkeypatch)
    path = tmp_path / "data/in.jsonl"
    path.write_text(path.read_text().replace("record 2", "record 2 (fixed)"))
    age(tmp_path)
    assert job.sent(job.run) == {"3"}
    assert len(watch.rendered) == 5


def test_jsonl_truncated(tmp_path: Path) -> None:
    job = Job(tmp_path, {"data/in.jsonl": RECORDS}, **RECORDS_DOC)
    job.run()
    path = tmp_path / "data/in.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
    age(tmp_path)
    store = Store.open(tmp_path / "state")
    try:
        plan = plan_job(job.reload(), store)
    finally:
        store.close()
    assert plan.counts.removed == 2 and plan.counts.to_submit == 0
    assert job.sent(job.run) == set()
    assert job.current_keys() == {"1", "2", "3"}


def test_csv_appended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = 'id,text\nr0,"two\nlines"\nr1,one\n'
    doc = {"input": {"csv": "data/in.csv", "key": "{{ record.id }}"},
           "prompt": "Summarise: {{ input.record.text }}"}  # fmt: skip
    job = Job(tmp_path, {"data/in.csv": rows}, **doc)
    assert job.sent(job.run) == {"r0", "r1"}
    watch = Watch(monkeypatch)
    with (tmp_path / "data/in.csv").open("a") as f:
        f.write("r2,three\n")
    age(tmp_path)
    assert job.sent(job.run) == {"r2"}
    assert watch.rendered == ["r2"]


def test_appended_duplicate_key_is_refused(tmp_path: Path) -> None:
    doc = {**RECORDS_DOC, "input": {"jsonl": "data/in.jsonl", "key": "{{ record.id }}"}}
    job = Job(tmp_path, {"data/in.jsonl": RECORDS}, **doc)
    job.run()
    with (tmp_path / "data/in.jsonl").open("a") as f:
        f.write('{"id": "r1", "text": "again"}\n')
    age(tmp_path)
    with pytest.raises(InputError, match=r"inputs line 2 and line 6 have the same key 'r1'"):
        job.run()


def test_csv_edited_in_the_middle(tmp_path: Path) -> None:
    rows = "id,text\nr0,zero\nr1,one\nr2,two\n"
    doc = {"input": {"csv": "data/in.csv", "key": "{{ record.id }}"},
           "prompt": "Summarise: {{ input.record.text }}"}  # fmt: skip
    job = Job(tmp_path, {"data/in.csv": rows}, **doc)
    job.run()
    (tmp_path / "data/in.csv").write_text(rows.replace("r1,one", "r1,one more"))
    age(tmp_path)
    assert job.sent(job.run) == {"r1"}


def test_glob_keyed_by_a_template_renders_all_on_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys must stay unique across files, which only a full pass sees: every file is
    rendered again, and still only the edited one is submitted."""
    job = Job(tmp_path, FILES, input={"glob": "data/*.txt", "key": "k-{{ input.stem }}"})
    job.run()
    watch = Watch(monkeypatch)
    (tmp_path / "data/2.txt").write_text("text 2, edited")
    age(tmp_path)
    assert job.sent(job.run) == {"k-2"}
    assert len(watch.rendered) == len(FILES)


def test_objects_added_and_changed_are_the_only_ones_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: Bucket
) -> None:
    """Objects are compared by key, size and ETag from one listing: a pass reads (GETs)
    only the new and changed ones, and an unchanged bucket is listed, never read."""
    client = s3_client()
    for n in "abc":
        client.put_object(Bucket=s3_bucket.name, Key=f"docs/{n}.txt", Body=f"text {n}".encode())
    job = Job(tmp_path, {}, input={"glob": s3_bucket.url("docs/*.txt")})
    reads: list[str] = []
    real_read = storage.Storage.read

    def counted(self: storage.Storage, url: storage.Url) -> bytes:
        reads.append(url.key)
        return real_read(self, url)

    monkeypatch.setattr(storage.Storage, "read", counted)
    assert job.sent(job.run) == {"docs/a.txt", "docs/b.txt", "docs/c.txt"}
    reads.clear()
    assert job.sent(job.run) == set() and reads == []
    client.put_object(Bucket=s3_bucket.name, Key="docs/d.txt", Body=b"text d")
    client.put_object(Bucket=s3_bucket.name, Key="docs/b.txt", Body=b"text B")
    assert job.sent(job.run) == {"docs/b.txt", "docs/d.txt"}
    assert sorted(reads) == ["docs/b.txt", "docs/d.txt"]


def test_a_records_object_that_grew_renders_only_the_new_records(
    tmp_path: Path, s3_bucket: Bucket
) -> None:
    """An object is replaced whole, but one that still begins with the part read before
    (its sha proves it) is read on from the mark: only the appended records are new."""
    client = s3_client()
    lines = [f'{{"id": "r{i}", "q": "question {i}"}}\n' for i in range(4)]
    client.put_object(Bucket=s3_bucket.name, Key="in/q.jsonl", Body="".join(lines[:3]).encode())
    job = Job(
        tmp_path,
        {},
        input={"jsonl": s3_bucket.url("in/q.jsonl"), "key": "{{ record.id }}"},
        prompt="{{ input.record.q }}",
    )
    assert job.sent(job.run) == {"r0", "r1", "r2"}
    assert job.sent(job.run) == set()
    client.put_object(Bucket=s3_bucket.name, Key="in/q.jsonl", Body="".join(lines).encode())
    assert job.sent(job.run) == {"r3"}
