"""End to end, side by side: `batchrun run` against the plain-SDK baseline, in one run.

For each N, every trial gets a fresh emulator process (zero processing latency) and a fresh
job folder, so neither side benefits from the other's leftovers. Measured per trial:

- batchrun: `batchrun compile` (wall time and body MB/s), `batchrun run` to completion
  (wall time, peak RSS), then a no-op re-run of the finished job (wall time);
- baseline (bench/baseline.py): the same work the way the API's examples show it.

Prints medians and the ratios batchrun/baseline. Usage:
    python -m bench.run [--sizes 10000,100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO, Measured, bench_env, emulator_process, make_job, measure, median

RUNNER = [sys.executable, "-m", "runner", "--log-level", "warning"]


@dataclass(frozen=True)
class Trial:
    compile: Measured
    body_mb: float
    run: Measured
    rerun: Measured
    baseline: Measured
    result_lines: int
    baseline_lines: int


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def trial(n: int, root: Path) -> Trial:
    folder = root / f"job-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    job = make_job(folder, n)
    env = bench_env()
    compiled = measure(
        [*RUNNER, "compile", str(job), "--out", str(folder / "compiled")], env=env, cwd=folder
    )
    body_mb = sum(p.stat().st_size for p in (folder / "compiled").glob("chunk-*.json")) / 1e6
    with emulator_process() as base_url:
        env = bench_env(base_url)
        run = measure([*RUNNER, "run", str(job)], env=env, cwd=folder)
        rerun = measure([*RUNNER, "run", str(job)], env=env, cwd=folder)
    with emulator_process() as base_url:
        baseline = measure(
            [sys.executable, "-m", "bench.baseline", str(folder), str(folder / "baseline.jsonl")],
            env=bench_env(base_url),
            cwd=REPO,
        )
    return Trial(
        compiled,
        body_mb,
        run,
        rerun,
        baseline,
        _count_lines(folder / "out" / "results.jsonl"),
        _count_lines(folder / "baseline.jsonl"),
    )


def report(n: int, trials: list[Trial]) -> None:
    def med(values: list[float]) -> float:
        return median(values)

    run_s = med([t.run.seconds for t in trials])
    run_mb = med([t.run.peak_rss_mb for t in trials])
    base_s = med([t.baseline.seconds for t in trials])
    base_mb = med([t.baseline.peak_rss_mb for t in trials])
    run_cpu = med([t.run.cpu_seconds for t in trials])
    base_cpu = med([t.baseline.cpu_seconds for t in trials])
    compile_s = med([t.compile.seconds for t in trials])
    rerun_s = med([t.rerun.seconds for t in trials])
    body = trials[0].body_mb
    print(f"\nN = {n:,}  ({len(trials)} runs, medians; request bodies {body:,.0f} MB)")
    print(
        f"  results written: batchrun {trials[0].result_lines:,}, baseline "
        f"{trials[0].baseline_lines:,}"
    )
    print(f"  {'':28}{'batchrun':>12}{'baseline':>12}{'ratio':>9}")
    print(f"  {'end to end, s':28}{run_s:12.2f}{base_s:12.2f}{run_s / base_s:9.2f}")
    print(f"  {'end to end, peak RSS MB':28}{run_mb:12.0f}{base_mb:12.0f}{run_mb / base_mb:9.2f}")
    print(f"  {'CPU s of the process itself':28}{run_cpu:12.2f}{base_cpu:12.2f}"
          f"{run_cpu / base_cpu:9.2f}")  # fmt: skip
    print(f"  {'compile, s (MB/s)':28}{compile_s:12.2f}   ({body / compile_s:,.0f} MB/s)")
    print(f"  {'no-op re-run, s':28}{rerun_s:12.2f}   ({rerun_s / compile_s:.0%} of compile)")
    print(f"  speed-up {base_s / run_s:.1f}x, memory {run_mb / base_mb:.2f}x of the baseline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batchrun-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            trials = [trial(n, Path(tmp)) for _ in range(args.runs)]
            report(n, trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
