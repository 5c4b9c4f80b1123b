"""The input fingerprint and the no-op re-run fast path: skip compiling only when nothing a
request depends on changed and every request is final; never skip real work."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from runner import compile as compile_
from runner import storage
from runner.compile import fingerprint
from runner.executor import loop as executor
from runner.executor.context import Compiler, Context
from runner.executor.sync import FINGERPRINT_META
from runner.sinks.jsonl import JsonlSink
from runner.spec import JobSpec
from runner.store import Store
from tests.fake_gcs import FakeGCS
from tests.fakes import FakeAPI, FakeClock, price
from tests.jobkit import unchecked_job, write_job

FILES = {f"data/{i}.txt": f"text {i}" for i in range(4)}
FILES["prompts/sys.md"] = "You are terse."
FILES["prompts/user.j2"] = "Summarise: {{ input.text }}"
DOC: dict[str, Any] = {
    "system": {"file": "prompts/sys.md", "cache": "1h"},
    "prompt": None,
    "prompt_file": "prompts/user.j2",
    "vars": {"lang": "en"},
}
T0 = time.time()


def age(folder: Path, seconds: float = 60.0) -> None:
    """Date every file `seconds` back, out of the racy window (distinct ages, distinct
    mtimes: as real edits made at different times have)."""
    then = T0 - seconds
    for path in [folder, *folder.rglob("*")]:
        if path.is_file():
            os.utime(path, (then, then))


def job_in(folder: Path, files: dict[str, str] | None = None, **overrides: Any) -> JobSpec:
    job = write_job(folder, {**FILES, **(files or {})}, **{**DOC, **overrides})
    age(folder)
    return job


class Counting:
    """The real compiler, counting full compiles."""

    def __init__(self) -> None:
        self.compiles = 0

    def iter_requests(self, job: JobSpec) -> Any:
        self.compiles += 1
        return compile_.iter_requests(job)

    def as_compiler(self) -> Compiler:
        return Compiler(self.iter_requests, compile_.make_chunks, fingerprint.fingerprint)


def run(job: JobSpec, api: FakeAPI, compiler: Counting, state: Path) -> executor.RunSummary:
    store = Store.open(state)
    ctx = Context(job=job, store=store, backend=api, sink=JsonlSink(job.output.local),
                  compiler=compiler.as_compiler(), clock=api.clock, price=price)  # fmt: skip
    try:
        store.lock()
        return executor.run(ctx)
    finally:
        ctx.sink.close()
        store.close()


# --- the fingerprint itself ----------------------------------------------------------------


def test_unchanged_job_has_a_stable_fingerprint(tmp_path: Path) -> None:
    job = job_in(tmp_path)
    first = fingerprint.fingerprint(job)
    assert first is not None and first == fingerprint.fingerprint(job_in(tmp_path))


@pytest.mark.parametrize(
    ("files", "overrides"),
    [
        ({"data/1.txt": "TEXT 1"}, {}),  # same size, new content (new mtime)
        ({"data/9.txt": "new"}, {}),  # an added input
        ({}, {"input": {"glob": "data/*.txt", "exclude": ["data/3.txt"]}}),  # one fewer
        ({"prompts/user.j2": "Summarise briefly: {{ input.text }}"}, {}),  # template file
        ({"prompts/sys.md": "You are verbose."}, {}),  # system file
        ({}, {"vars": {"lang": "fr"}}),
        ({}, {"model": "claude-opus-4-1"}),
        ({}, {"max_tokens": 101}),
        ({}, {"params": {"temperature": 0.5}}),
        ({}, {"betas": ["output-300k-2026-03-24"]}),
        ({}, {"prompt_file": None, "prompt": "Summarise: {{ input.text }}"}),  # same text inline
    ],
)
def test_any_change_changes_the_fingerprint(
    tmp_path: Path, files: dict[str, str], overrides: dict[str, Any]
) -> None:
    before = fingerprint.fingerprint(job_in(tmp_path))
    after = job_in(tmp_path, files, **overrides)
    if "data/1.txt" in files:  # an edit made later than the first stat saw
        age(tmp_path / "data", 30.0)
    assert fingerprint.fingerprint(after) != before


def test_removed_input_changes_the_fingerprint(tmp_path: Path) -> None:
    job = job_in(tmp_path)
    before = fingerprint.fingerprint(job)
    (tmp_path / "data" / "2.txt").unlink()
    assert fingerprint.fingerprint(job) not in (None, before)


def test_records_file_is_fingerprinted(tmp_path: Path) -> None:
    records = {"data/r.jsonl": '{"id": "a"}\n'}
    doc = {"input": {"jsonl": "data/r.jsonl", "key": "{{ record.id }}"},
           "prompt_file": None, "prompt": "Say {{ input.record.id }}"}  # fmt: skip
    job = job_in(tmp_path, records, **doc)
    before = fingerprint.fingerprint(job)
    (tmp_path / "data" / "r.jsonl").write_text('{"id": "b"}\n', encoding="utf-8")  # same size
    age(tmp_path / "data" / "r.jsonl", 30.0)
    assert fingerprint.fingerprint(job) not in (None, before)


def test_a_racy_file_gives_no_fingerprint(tmp_path: Path) -> None:
    """A file modified just now may be edited again within the same mtime tick."""
    job = job_in(tmp_path)
    (tmp_path / "data" / "0.txt").write_text("just now", encoding="utf-8")
    assert fingerprint.fingerprint(job) is None


# --- the fast path in the executor -----------------------------------------------------


def test_finished_unchanged_rerun_skips_compile(tmp_path: Path) -> None:
    job, api, compiler = job_in(tmp_path), FakeAPI(FakeClock()), Counting()
    assert run(job, api, compiler, tmp_path / "state").finished
    used = compiler.compiles
    again = run(job_in(tmp_path), api, compiler, tmp_path / "state")
    assert again.finished and again.requests_submitted == 0 and again.counts == {"succeeded": 4}
    assert compiler.compiles == used  # nothing rendered or hashed


def test_edited_input_after_a_skip_is_noticed(tmp_path: Path) -> None:
    """The fast path never hides real work: an edit is compiled and submitted."""
    api, compiler, state = FakeAPI(FakeClock()), Counting(), tmp_path / "state"
    run(job_in(tmp_path), api, compiler, state)
    run(job_in(tmp_path), api, compiler, state)
    edited = job_in(tmp_path, {"data/1.txt": "changed text"})
    age(tmp_path / "data" / "1.txt", 30.0)
    summary = run(edited, api, compiler, state)
    assert summary.requests_submitted == 1 and summary.counts == {"succeeded": 4}


def test_waiting_requests_are_never_skipped(tmp_path: Path) -> None:
    """A request not yet final (here made pending again) means a full compile and submit."""
    api, compiler, state = FakeAPI(FakeClock()), Counting(), tmp_path / "state"
    run(job_in(tmp_path), api, compiler, state)
    store = Store.open(state)
    store.db.execute("UPDATE requests SET status = 'retry' WHERE input_key = 'data/0.txt'")
    store.close()
    used = compiler.compiles
    summary = run(job_in(tmp_path), api, compiler, state)
    assert compiler.compiles > used and summary.requests_submitted == 1


def test_missing_fingerprint_compiles_in_full(tmp_path: Path) -> None:
    """State from before fingerprints (or a sync cut short) has none: compile in full."""
    api, compiler, state = FakeAPI(FakeClock()), Counting(), tmp_path / "state"
    run(job_in(tmp_path), api, compiler, state)
    store = Store.open(state)
    store.clear_meta(FINGERPRINT_META)
    store.close()
    used = compiler.compiles
    run(job_in(tmp_path), api, compiler, state)
    assert compiler.compiles == used + 1


def test_a_sync_cut_short_leaves_no_fingerprint(tmp_path: Path) -> None:
    api, compiler, state = FakeAPI(FakeClock()), Counting(), tmp_path / "state"
    run(job_in(tmp_path), api, compiler, state)
    edited = job_in(tmp_path, {"data/1.txt": "changed text"})
    age(tmp_path / "data" / "1.txt", 30.0)

    def broken(job: JobSpec) -> Any:
        raise KeyboardInterrupt

    compiler.iter_requests = broken  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run(edited, api, compiler, state)
    store = Store.open(state)
    assert store.get_meta(FINGERPRINT_META) is None
    store.close()


def test_objects_are_fingerprinted_by_key_size_and_etag_unread(tmp_path: Path) -> None:
    """An unchanged bucket gives the same fingerprint from a listing alone; a changed or an
    added object changes it; an object without a version gives none (compile in full)."""
    fake = FakeGCS()
    fake.pipe({"bkt/d/a.txt": b"one", "bkt/d/b.txt": b"two"})
    with storage.use_filesystem("gs", fake):
        job = unchecked_job(tmp_path, {"x": ""}, input={"glob": "gs://bkt/d/*.txt"})
        first = fingerprint.fingerprint(job)
        assert first is not None and fingerprint.fingerprint(job) == first
        fake.pipe_file("bkt/d/b.txt", b"TWO")  # same size, new content: a new ETag
        changed = fingerprint.fingerprint(job)
        fake.pipe_file("bkt/d/c.txt", b"three")
        added = fingerprint.fingerprint(job)
        assert len({first, changed, added}) == 3
        assert fake.reads == 0
        unversioned = {"bkt/d/a.txt": {"name": "bkt/d/a.txt", "size": 1, "type": "file"}}
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fake, "find", lambda *a, **kw: unversioned)
            assert fingerprint.fingerprint(job) is None
