"""Benchmark: compile N records of ~2 KB with a ~6 KB cached system prompt.

Reports requests/s, MB/s of body bytes (the exact bytes that would be posted) and peak RSS,
for N = 10k and 100k, as the median of 3 runs (and the best run's MB/s, the figure least
disturbed by other work on a shared machine). Each run is a fresh subprocess, so its peak
RSS (ru_maxrss) belongs to that run alone. Modes:

- `write`: `write_compiled`, the `batchrun compile` path (streams chunks to files);
- `chunks`: `make_chunks(iter_requests(job))`, the executor's path (holds one chunk body).

Usage: python bench/compile.py [--sizes 10000,100000] [--runs 3] [--modes write,chunks]
Targets (issue 4): >= 250 MB/s of body bytes; peak RSS at 100k <= 1.5x that at 10k.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import text_of

REPO = Path(__file__).resolve().parent.parent
RECORD_CHARS = 2000
SYSTEM_CHARS = 6000

JOB = """\
version: 1
name: bench
input:
  jsonl: records.jsonl
  key: "{{ record.id }}"
model: claude-sonnet-4-6
max_tokens: 512
system:
  file: system.md
  cache: 1h
prompt: |
  Classify this answer in {{ vars.language }}:
  <answer>{{ input.record.text }}</answer>
vars: {language: English}
output: {type: jsonl, path: out/bench.jsonl}
"""


def make_fixture(folder: Path, n: int) -> Path:
    """Write the job, its system prompt and `n` JSONL records into `folder`."""
    rng = random.Random(n)
    pool = text_of(65_536, seed=0)
    (folder / "system.md").write_text(
        text_of(SYSTEM_CHARS, seed=-1)[:SYSTEM_CHARS], encoding="utf-8"
    )
    (folder / "job.yaml").write_text(JOB, encoding="utf-8")
    with (folder / "records.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n):
            start = rng.randrange(0, len(pool) - RECORD_CHARS)
            text = pool[start : start + RECORD_CHARS]
            fh.write(json.dumps({"id": f"r{i:07d}", "text": text}, ensure_ascii=False) + "\n")
    return folder / "job.yaml"


def child(job_path: Path, mode: str, out_dir: Path) -> dict[str, float]:
    """One measured run, in this (fresh) process."""
    from runner import compile as comp
    from runner import spec
    from runner.compile.files import write_compiled

    job = spec.load_job(job_path)
    start = time.perf_counter()
    if mode == "write":
        written = write_compiled(job, out_dir)
        body_bytes, requests = sum(c.size for c in written), sum(c.requests for c in written)
    else:
        body_bytes = requests = 0
        for chunk in comp.make_chunks(comp.iter_requests(job), job.max_requests, job.max_bytes):
            body_bytes += len(chunk.body)
            requests += len(chunk.custom_ids)
            del chunk  # as the executor does once a chunk is submitted
    seconds = time.perf_counter() - start
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "requests": requests, "bytes": body_bytes, "rss_mb": rss_kb / 1024}


def run_once(job_path: Path, mode: str, out_dir: Path) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(job_path),
        "--mode",
        mode,
        "--out",
        str(out_dir),
    ]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def bench(sizes: list[int], runs: int, modes: list[str]) -> None:
    print(
        f"{'mode':<7} {'N':>7} {'req/s':>9} {'MB/s':>7} {'best MB/s':>9} {'body MB':>8} "
        f"{'peak RSS MB':>11}"
    )
    rss: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            job_path = make_fixture(folder, n)
            for mode in modes:
                results = []
                for i in range(runs):
                    # A fresh folder per run: removing the last run's files is not compiling.
                    out = folder / f"compiled-{mode}-{i}"
                    results.append(run_once(job_path, mode, out))
                    shutil.rmtree(out, ignore_errors=True)
                seconds = statistics.median(r["seconds"] for r in results)
                # The best run is the least disturbed by other work on a shared machine.
                fastest = min(r["seconds"] for r in results)
                peak = statistics.median(r["rss_mb"] for r in results)
                body_mb = results[0]["bytes"] / 1e6
                rss[(mode, n)] = peak
                print(
                    f"{mode:<7} {n:>7} {results[0]['requests'] / seconds:>9,.0f} "
                    f"{body_mb / seconds:>7,.0f} {body_mb / fastest:>9,.0f} {body_mb:>8,.0f} "
                    f"{peak:>11,.1f}"
                )
    for mode in modes:
        if (mode, sizes[0]) in rss and (mode, sizes[-1]) in rss and len(sizes) > 1:
            ratio = rss[(mode, sizes[-1])] / rss[(mode, sizes[0])]
            print(f"{mode}: peak RSS at {sizes[-1]:,} is {ratio:.2f}x that at {sizes[0]:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="write,chunks")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="write", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.mode, args.out)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    bench(sizes, args.runs, args.modes.split(","))


if __name__ == "__main__":
    main()
