"""Submit: seconds and peak RSS to post one full-size (~256 MB) chunk, batchrun against the
plain-SDK way, side by side.

    python -m bench.submit [--n 28000] [--runs 3]

The job is bench/common.py's (~2 KB records, ~6 KB cached system prompt); 28,000 requests
make one chunk just under the 256 MB limit. Each side runs in a fresh process (its peak RSS,
ru_maxrss, is its own) against a fresh `batchrun emulator` process, and times only the
submit, from requests already built to the create accepted:

- batchrun: the executor's submit step (`submit.submit_waiting`) over a state holding the
  job's requests, replaying the compiled requests from the run's spool: build the body
  with orjson, record the intent, post the exact bytes, record the batch id.
- baseline: `client.messages.batches.create(requests=...)` with the list of request dicts
  (bench/baseline.py's `build_requests`), as the API's examples show.

Figures are medians over `--runs`; the ratio is batchrun / baseline.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, bench_env, emulator_process, make_job, median


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batchrun_side(job_path: Path) -> str:
    """In a child process: compile into a fresh state, then time submitting it."""
    from runner.backend.sdk import Backend
    from runner.commands.wiring import compiler
    from runner.executor import submit
    from runner.executor.context import Context
    from runner.executor.spool import Spool
    from runner.executor.sync import sync_requests
    from runner.sinks import open_sink
    from runner.spec import load_job
    from runner.store import Store

    job = load_job(job_path)
    store = Store.open(job_path.parent / ".state")
    api = Backend.connect(os.environ["ANTHROPIC_BASE_URL"], emulated=True)
    ctx = Context(job=job, store=store, backend=api, sink=open_sink(job), compiler=compiler())
    spool = Spool(store.state_dir)
    sync_requests(ctx, spool)
    api.newest_batch_id()  # the SDK is warm on both sides
    before = _peak_mb()
    start = time.perf_counter()
    sent = submit.submit_waiting(ctx, include_canceled=False, spool=spool)
    seconds = time.perf_counter() - start
    spool.discard()
    body = store.batches()[0].bytes
    store.close()
    assert sent.batches == 1, f"expected one full-size chunk, got {sent.batches}"
    return f"{body} {seconds} {_peak_mb()} {before}"


def baseline_side(folder: Path) -> str:
    """In a child process: build the request dicts, then time the SDK's create."""
    import anthropic

    from bench.baseline import build_requests, split

    client = anthropic.Anthropic()
    chunks = split(build_requests(folder))
    del chunks[1:]  # its JSON escapes non-ASCII text, so its first chunk may be full already
    client.messages.batches.list(limit=1)  # the SDK is warm on both sides
    before = _peak_mb()
    start = time.perf_counter()
    client.messages.batches.create(requests=chunks[0])  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    return f"{len(chunks[0])} {seconds} {_peak_mb()} {before}"


def _child(side: str, folder: Path, base_url: str) -> tuple[float, float, float]:
    argv = [sys.executable, "-m", "bench.submit", "--child", side, str(folder)]
    out = subprocess.run(
        argv, env=bench_env(base_url), cwd=REPO, check=True, stdout=subprocess.PIPE, text=True
    ).stdout.split()
    _SIZES[side] = int(out[-4])
    seconds, peak, before = map(float, out[-3:])
    return seconds, peak, before


_SIZES: dict[str, int] = {}  # batchrun: bytes of the body posted; baseline: requests in it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=28_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, folder = args.child
        job = Path(folder) / "job.yaml"
        print(batchrun_side(job) if side == "batchrun" else baseline_side(Path(folder)))
        return 0
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    root = Path(tempfile.mkdtemp(prefix="batchrun-bench-submit-"))
    try:
        folder = root / "job"
        make_job(folder, args.n)
        figures: dict[str, list[tuple[float, float, float]]] = {"batchrun": [], "baseline": []}
        for _ in range(args.runs):
            for side in figures:
                shutil.rmtree(folder / ".state", ignore_errors=True)
                with emulator_process() as base_url:
                    figures[side].append(_child(side, folder, base_url))
    finally:
        shutil.rmtree(root)
    print(f"submit one full-size chunk: batchrun {args.n:,} requests in "
          f"{_SIZES['batchrun'] / 1e6:,.0f} MB, baseline {_SIZES['baseline']:,} requests "
          f"(its JSON escapes non-ASCII); median of {args.runs} runs")  # fmt: skip
    print(f"  {'':30}{'batchrun':>10}{'baseline':>10}{'ratio':>8}")
    med = {side: [median([f[i] for f in runs]) for i in range(3)] for side, runs in figures.items()}
    rows = [("seconds, build + post", 0, ".2f"), ("peak RSS of the process, MB", 1, ".0f"),
            ("RSS before the submit, MB", 2, ".0f")]  # fmt: skip
    for label, i, fmt in rows:
        a, b = med["batchrun"][i], med["baseline"][i]
        print(f"  {label:30}{a:>10{fmt}}{b:>10{fmt}}{a / b:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
