"""The spool: this run's compiled requests, read back for submitting instead of rendering
them a second time."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from runner.compile import CompiledRequest
from runner.executor import loop as executor
from runner.executor.context import Compiler
from runner.executor.spool import SPOOL_NAME, Spool
from tests.fakes import FakeRequest, Harness

REQUESTS = [
    FakeRequest("br_1", "a.txt", "data/a.txt", b'{"custom_id":"br_1","params":{}}', ()),
    FakeRequest("br_2", "b\nkey", None, b'{"custom_id":"br_2","params":{"x":"\\n"}}', ("b1",)),
    FakeRequest("br_3", "c", "c", b"", ("b1", "b2")),
]


def _as_spooled(r: CompiledRequest) -> CompiledRequest:
    return CompiledRequest(r.custom_id, r.input_key, r.input_path, r.line, r.betas)


def test_replays_exactly_what_was_recorded(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert list(spool.record(REQUESTS)) == REQUESTS  # passed through unchanged
    replay = spool.replay()
    assert replay is not None and list(replay) == [_as_spooled(r) for r in REQUESTS]
    assert list(spool.replay() or ()) == [_as_spooled(r) for r in REQUESTS]  # again


def test_a_pass_cut_short_is_never_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    passing = cast(Generator[CompiledRequest, None, None], spool.record(REQUESTS))
    next(passing)
    passing.close()  # the consumer failed mid-way
    assert spool.replay() is None


def test_a_crashed_runs_spool_is_deleted_unread(tmp_path: Path) -> None:
    (tmp_path / SPOOL_NAME).write_bytes(b'["br_9","z",null,[],2]\n{}')
    spool = Spool(tmp_path)
    assert spool.replay() is None and not (tmp_path / SPOOL_NAME).exists()


class CountingCompiler:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.passes = 0

    def iter_requests(self, job: Any) -> Iterator[Any]:
        self.passes += 1
        return self.inner.iter_requests(job)

    def make_chunks(self, requests: Any, max_requests: int, max_bytes: int) -> Any:
        return self.inner.make_chunks(requests, max_requests, max_bytes)


@pytest.mark.parametrize("extra", ["", "batch: {max_requests: 3}\n"])
def test_a_first_run_compiles_once_and_leaves_no_spool(tmp_path: Path, extra: str) -> None:
    h = Harness(tmp_path, {f"k{i}": f"text {i}" for i in range(8)}, extra=extra)
    counting = CountingCompiler(h.compiler)
    ctx = h.context()
    ctx.compiler = Compiler(counting.iter_requests, counting.make_chunks)
    try:
        ctx.store.lock()
        summary = executor.run(ctx)
    finally:
        ctx.store.close()
    assert summary.finished and summary.counts == {"succeeded": 8}
    assert counting.passes == 1
    assert sorted(x["input_key"] for x in h.lines()) == [f"k{i}" for i in range(8)]
    assert not (h.state / SPOOL_NAME).exists()
