"""Sink throughput: results/s writing N synthetic ResultRecords (~1 KB answers) per sink.

    python -m bench.sinks [--n 100000] [--runs 3] [--batch 10000] [--sinks files,sqlite,jsonl]

Each run opens a fresh sink in a fresh folder, upserts the records in batches of `--batch`
(the executor calls upsert once per collected batch) with a flush after each, and closes
it; the time covers all of that. "re-apply" then opens a second sink on the same output and
upserts the same records again, as a re-run or a crash recovery does: the idempotent path.
The figure is the median over `--runs`. The JSONL sink is measured when
runner/sinks/jsonl.py exists.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import text_of
from runner.records import ResultRecord
from runner.sinks import Sink
from runner.sinks.files import FilesSink
from runner.sinks.sqlite import SqliteSink
from runner.spec.model import OutputSpec

SinkFactory = Callable[[Path], Sink]


def synthetic(n: int) -> list[ResultRecord]:
    """N records spread over 100 folders; answers drawn from a pool to keep memory small."""
    pool = [text_of(1024, seed) for seed in range(64)]
    usage = {"input_tokens": 2100, "output_tokens": 300, "cache_read_input_tokens": 1500}
    return [_record(i, pool[i % len(pool)], usage) for i in range(n)]


def _record(i: int, text: str, usage: dict[str, Any]) -> ResultRecord:
    message = {
        "id": f"msg_{i:08d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    return ResultRecord(
        input_key=f"data/{i % 100:02d}/doc-{i:06d}.txt",
        input_path=f"data/{i % 100:02d}/doc-{i:06d}.txt",
        custom_id=f"bench-{i:032x}",
        text=text,
        message=message,
        usage=usage,
        cost_usd=0.00123,
        batch_id=f"msgbatch_{i // 10_000:04d}",
        model="claude-sonnet-4-6",
        spec_hash="0" * 64,
        attempts=1,
        collected_at="2026-11-24T06:00:00Z",
    )


def write_all(sink: Sink, records: Sequence[ResultRecord], batch: int) -> float:
    """Seconds to upsert + flush every batch and close."""
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        sink.upsert(records[i : i + batch])
        sink.flush()
    sink.close()
    return time.perf_counter() - start


def measure(
    factory: SinkFactory, records: Sequence[ResultRecord], runs: int, batch: int
) -> tuple[float, float]:
    """Median results/s of a first write and of a re-apply, each over `runs` fresh outputs."""
    first: list[float] = []
    again: list[float] = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="batchrun-bench-"))
        try:
            first.append(len(records) / write_all(factory(folder), records, batch))
            again.append(len(records) / write_all(factory(folder), records, batch))
        finally:
            shutil.rmtree(folder)
    return statistics.median(first), statistics.median(again)


def factories() -> dict[str, SinkFactory | str]:
    """Each sink's factory, or why it cannot be measured."""
    found: dict[str, SinkFactory | str] = {
        "files": lambda d: FilesSink(OutputSpec(type="files", path=d / "out")),
        "sqlite": lambda d: SqliteSink(OutputSpec(type="sqlite", path=d / "out.db"), "bench"),
    }
    try:  # imported by name: the module is written on another branch
        jsonl = importlib.import_module("runner.sinks.jsonl")
    except ImportError:
        found["jsonl"] = "not available (runner/sinks/jsonl.py is not on this branch yet)"
    else:
        found["jsonl"] = lambda d: jsonl.JsonlSink(d / "out.jsonl")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--sinks", default="files,sqlite,jsonl")
    args = parser.parse_args(argv)
    records = synthetic(args.n)
    print(f"{args.n} results of ~1 KB, batches of {args.batch}, median of {args.runs} runs")
    print(f"{'sink':<8} {'write results/s':>16} {'re-apply results/s':>20}")
    available = factories()
    for name in args.sinks.split(","):
        factory = available[name]
        if isinstance(factory, str):
            print(f"{name}: {factory}")
            continue
        write, reapply = measure(factory, records, args.runs, args.batch)
        print(f"{name:<8} {write:>16,.0f} {reapply:>20,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
