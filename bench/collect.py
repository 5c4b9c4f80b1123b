"""Collect throughput: results/s collecting one ended batch of N requests from the emulator.

    python -m bench.collect [--n 100000] [--runs 3] [--like-run]

One batch of N small requests is created in a `batchrun emulator` process and left to end.
Each run then opens a fresh state holding those requests in flight and a fresh JSONL sink,
and times `collect.collect_batch`: stream the results over HTTP, classify and price each,
record every outcome in one state transaction, write the sink, mark the rows written.
"stream only" times iterating `Backend.results` alone (HTTP + JSON parse): the floor the
rest is built on. Figures are medians over `--runs`.

`--like-run` collects bench.run's requests instead (2 KB records, a 6 KB system prompt
cached 1 h, max_tokens 256), as many as the first chunk holds (~28k: a create is at most
256 MB), answered with ~860 characters each: ~2.9 KB stored per result, not ~1.2 KB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.common import emulator_process, make_job, text_of
from runner import compile as compile_
from runner.backend import RemoteBatch
from runner.backend.sdk import Backend
from runner.commands.wiring import compiler, pricer
from runner.executor import collect
from runner.executor.context import Context
from runner.sinks import open_sink
from runner.spec import JobSpec, load_job
from runner.store import BatchRow, Store


def _body(n: int) -> tuple[bytes, list[tuple[str, str, str | None]]]:
    """A create body of N tiny requests, and their (custom_id, input_key, path) rows."""
    rows = [(f"bench-{i:032x}", f"doc-{i:06d}", None) for i in range(n)]
    params = {"model": "claude-sonnet-4-6", "max_tokens": 64}
    lines = [
        orjson.dumps({"custom_id": cid, "params": {**params, "messages": [_msg(i)]}})
        for i, (cid, _, _) in enumerate(rows)
    ]
    return b'{"requests":[' + b",".join(lines) + b"]}", rows


def _msg(i: int) -> dict[str, str]:
    return {"role": "user", "content": f"Classify document {i}."}


def _run_like_body(job: JobSpec) -> tuple[bytes, list[tuple[str, str, str | None]]]:
    """The first chunk `batchrun run` would post for bench.run's job, and its rows."""
    seen: dict[str, tuple[str, str | None]] = {}

    def requests() -> Iterator[Any]:
        for r in compile_.iter_requests(job):
            seen[r.custom_id] = (r.input_key, r.input_path)
            yield r

    chunk = next(compile_.make_chunks(requests(), job.max_requests, job.max_bytes))
    return chunk.body, [(cid, *seen[cid]) for cid in chunk.custom_ids]


def _long_answers(folder: Path) -> Path:
    """An emulator config answering every request with the same ~860 characters."""
    config = folder / "emulator.json"
    config.write_bytes(orjson.dumps({"responses": [{"custom_id": ".", "text": text_of(860, 7)}]}))
    return config


def _ended(api: Backend, batch_id: str) -> RemoteBatch:
    while not (remote := api.retrieve(batch_id)).ended:
        time.sleep(0.2)
    return remote


def _fresh_state(folder: Path, rows: Sequence[tuple[str, str, str | None]],
                 remote: RemoteBatch) -> tuple[Store, BatchRow]:  # fmt: skip
    store = Store.open(folder / "state")
    store.sync_requests(rows)
    intent = store.add_intent("0" * 64, (), [r[0] for r in rows], 0, time.time(), None)
    store.attach_batch(intent, remote.id, remote.created_at, "ended")
    return store, store.batches(uncollected_only=True)[0]


def _collect_once(job: JobSpec, api: Backend, rows: Sequence[tuple[str, str, str | None]],
                  remote: RemoteBatch) -> float:  # fmt: skip
    """Seconds to collect the batch into a fresh state and sink."""
    shutil.rmtree(job.output.path.parent, ignore_errors=True)
    shutil.rmtree(job.base_dir / "state", ignore_errors=True)
    store, row = _fresh_state(job.base_dir, rows, remote)
    ctx = Context(job=job, store=store, backend=api, sink=open_sink(job), compiler=compiler(),
                  price=pricer(job))  # fmt: skip
    try:
        start = time.perf_counter()
        assert collect.collect_batch(ctx, row, remote)
        ctx.sink.close()
        return time.perf_counter() - start
    finally:
        store.close()


def _stream_once(api: Backend, batch_id: str) -> float:
    start = time.perf_counter()
    for _ in api.results(batch_id):
        pass
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--like-run", action="store_true", help="bench.run's bigger results")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    folder = Path(tempfile.mkdtemp(prefix="batchrun-bench-"))
    try:
        job = load_job(make_job(folder, args.n if args.like_run else 1))
        body, rows = _run_like_body(job) if args.like_run else _body(args.n)
        with emulator_process(_long_answers(folder) if args.like_run else None) as base_url:
            api = Backend.connect(base_url, emulated=True)
            remote = _ended(api, api.create(body, ()).id)
            stream = [_stream_once(api, remote.id) for _ in range(args.runs)]
            full = [_collect_once(job, api, rows, remote) for _ in range(args.runs)]
    finally:
        shutil.rmtree(folder)
    n, kind = len(rows), "bench.run-sized" if args.like_run else "small"
    print(f"collect one ended batch of {n:,} {kind} results, median of {args.runs} runs")
    print(f"  stream only (HTTP + parse): {n / statistics.median(stream):>10,.0f} results/s")
    print(f"  collect_batch, JSONL sink:  {n / statistics.median(full):>10,.0f} results/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
