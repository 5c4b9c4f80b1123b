"""The performance targets (issue 15), each as a ratio measured in this one run.

For each N, a job of N small records (~200-character texts, a ~1 KB system prompt cached
1 h) against a zero-latency `batchrun emulator` in its own process:

1. first pass CPU / floor CPU: `batchrun run` to completion (the process's user + system
   time) against bench/floor.py on the same records and on the same results (target <= 2x);
2. collect, results/s: from the first "batch ended" log line of the first pass to the end
   of the process (results in state and in the sink), over every result (target >= 150k/s);
3. a pass after one record is appended / a no-op pass, wall time (target <= 3x);
4. the no-op pass, s (a finished job run again; target: keep ~0.23 s at 100k);
5. peak RSS of the first pass; the last N's against the first's (target: within 20%).

Repeated passes (no-op, append, floor) are medians of `--runs`; a first pass at N >= 1M
runs once. Usage:
    python -m bench.targets [--sizes 100000,1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from bench.common import REPO, bench_env, emulator_process, make_job, median

RUNNER = [sys.executable, "-m", "runner", "--log-format", "json", "--log-level", "info"]
DOC_BYTES = 200
SYSTEM_BYTES = 1000
# Every chunk is submitted before the first poll, so that the first pass's collect is one
# stretch of the log: from the first "batch ended" to the end of the process.
UNCAPPED = "batch: {max_in_flight_requests: 100000000}\n"


@dataclass(frozen=True)
class Pass:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    ended_at: float  # wall clock at the process's end
    log: list[dict[str, object]]


def run_pass(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> Pass:
    """Run one command; wall time, CPU, peak RSS (wait4), and its JSON log lines."""
    with log_path.open("wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed, ended = time.perf_counter() - start, time.time()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed:\n{log_path.read_text()[-2000:]}")
    lines = [orjson.loads(x) for x in log_path.read_bytes().splitlines() if x.startswith(b"{")]
    return Pass(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, ended, lines)


def collect_rate(first: Pass, results: int) -> float:
    """Results per second from the first batch's end to the first pass's end."""
    ended = [e for e in first.log if str(e.get("event", "")).startswith("batch ended")]
    start = datetime.fromisoformat(str(ended[0]["timestamp"]).replace("Z", "+00:00"))
    return results / max(first.ended_at - start.timestamp(), 1e-6)


def fetch_results(base_url: str, out: Path) -> int:
    """Every result line the emulator holds, as the API streams them, into `out`."""
    headers = {"x-api-key": "sk-bench-not-a-real-key", "anthropic-version": "2023-06-01"}

    def get(path: str) -> bytes:
        req = urllib.request.Request(base_url + path, headers=headers)
        with urllib.request.urlopen(req) as resp:
            return bytes(resp.read())

    listed = orjson.loads(get("/v1/messages/batches?limit=1000"))["data"]
    n = 0
    with out.open("wb") as f:
        for batch in listed:
            body = get(f"/v1/messages/batches/{batch['id']}/results")
            f.write(body if body.endswith(b"\n") else body + b"\n")
            n += body.count(b"\n") + (not body.endswith(b"\n"))
    return n


def floor_pass(folder: Path, results: Path) -> Pass:
    out = folder / "floor-out.jsonl"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench.floor", str(folder / "records.jsonl"),
            str(folder / "system.md"), str(results), str(out)]  # fmt: skip
    return run_pass(argv, bench_env(), REPO, folder / "floor.log")


def append_record(folder: Path, i: int) -> None:
    with (folder / "records.jsonl").open("ab") as f:
        f.write(orjson.dumps({"id": f"added-{i}", "text": f"one more record, number {i}"}) + b"\n")


@dataclass(frozen=True)
class Figures:
    n: int
    first: Pass
    floor_cpu: float
    collect_per_s: float
    noop_s: float
    append_s: float
    noop_cpu: float
    append_cpu: float


def measure_n(n: int, runs: int, root: Path) -> Figures:
    folder = root / f"targets-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    job = make_job(folder, n, doc_bytes=DOC_BYTES, system_bytes=SYSTEM_BYTES, extra=UNCAPPED)
    with emulator_process() as base_url:
        env = bench_env(base_url)
        first = run_pass([*RUNNER, "run", str(job)], env, folder, folder / "pass.log")
        results = folder / "emulator-results.jsonl"
        count = fetch_results(base_url, results)
        noops = [
            run_pass([*RUNNER, "run", str(job)], env, folder, folder / "pass.log")
            for _ in range(runs)
        ]
        appends = []
        for i in range(runs):
            append_record(folder, i)
            appends.append(run_pass([*RUNNER, "run", str(job)], env, folder, folder / "pass.log"))
    floors = [floor_pass(folder, results) for _ in range(runs)]
    shutil.rmtree(folder, ignore_errors=True)
    return Figures(
        n,
        first,
        median([f.cpu_seconds for f in floors]),
        collect_rate(first, count),
        median([p.seconds for p in noops]),
        median([p.seconds for p in appends]),
        median([p.cpu_seconds for p in noops]),
        median([p.cpu_seconds for p in appends]),
    )


def report(figures: list[Figures]) -> None:
    print(f"\n{'':44}" + "".join(f"{f'N = {f.n:,}':>16}" for f in figures) + f"{'target':>12}")

    def row(label: str, cells: list[str], target: str) -> None:
        print(f"  {label:42}" + "".join(f"{c:>16}" for c in cells) + f"{target:>12}")

    row("first pass CPU s", [f"{f.first.cpu_seconds:.2f}" for f in figures], "")
    row("floor CPU s (bench/floor.py)", [f"{f.floor_cpu:.2f}" for f in figures], "")
    row(
        "1. first pass CPU / floor",
        [f"{f.first.cpu_seconds / f.floor_cpu:.1f}x" for f in figures],
        "<= 2x",
    )
    row("2. collect, results/s", [f"{f.collect_per_s:,.0f}" for f in figures], ">= 150k")
    row("   no-op pass, s (CPU s)", [f"{f.noop_s:.2f} ({f.noop_cpu:.2f})" for f in figures], "")
    row(
        "   append-one pass, s (CPU s)",
        [f"{f.append_s:.2f} ({f.append_cpu:.2f})" for f in figures],
        "",
    )
    row(
        "3. append-one pass / no-op pass",
        [f"{f.append_s / f.noop_s:.1f}x" for f in figures],
        "<= 3x",
    )
    row("4. no-op pass, s", [f"{f.noop_s:.2f}" for f in figures], "~0.23")
    row("5. peak RSS of the first pass, MB", [f"{f.first.peak_rss_mb:.0f}" for f in figures], "")
    if len(figures) > 1:
        ratio = figures[-1].first.peak_rss_mb / figures[0].first.peak_rss_mb
        print(f"  {'   RSS at the largest N / the smallest':42}{ratio:>16.2f}{'<= 1.2':>12}")
    print(f"  first pass wall s: {', '.join(f'{f.first.seconds:.1f}' for f in figures)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the start")
    with tempfile.TemporaryDirectory(prefix="batchrun-targets-") as tmp:
        figures = [measure_n(int(s), args.runs, Path(tmp)) for s in args.sizes.split(",")]
    report(figures)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
