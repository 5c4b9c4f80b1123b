"""Measure the emulator: a ~256 MB create, and results streaming in lines/s.

Two body shapes:

- `plain` (the default): N requests of one ~BYTES user turn, no system prompt;
- `e2e`: the body `batchrun` posts for the e2e bench job (bench/common.py `make_job`): the
  same ~6 KB system prompt with `cache_control` ttl 1h in every request, then a ~BYTES
  user turn; model claude-sonnet-4-6, max_tokens 256. 28,000 requests make ~256 MB.

With `--against DIR` (a checkout of other emulator code, e.g. made with
`git archive REV | tar -x -C DIR`), the same body is measured `--runs` times with each
code, alternating, every run in a fresh process, and the medians are printed side by side
with their ratios: the machine is shared, so only figures taken together compare.

Run: NO_PROXY=127.0.0.1 python bench/emulator_bench.py [N] [BYTES] [--shape e2e]
         [--against DIR] [--runs 5]
Not a test: timings depend on the machine, so nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import orjson
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch

from bench.common import REPO, bench_env, text_of

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
DEFAULTS = {"plain": (100_000, 2_500), "e2e": (28_000, 2_048)}
HEADERS = {"x-api-key": "k", "anthropic-version": "2026-10-21"}
FIGURES = ("create_s", "intake_s", "results_s")


def body(n: int, size: int) -> bytes:
    filler = "lorem ipsum dolor sit amet " * (size // 27)
    lines = [
        orjson.dumps(
            {
                "custom_id": f"req-{i:06d}",
                "params": {
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 256,
                    "messages": [{"role": "user", "content": f"{i} {filler}"}],
                },
            }
        )
        for i in range(n)
    ]
    return b'{"requests":[' + b",".join(lines) + b"]}"


def e2e_body(n: int, size: int) -> bytes:
    """The shape `batchrun compile` gives the e2e bench job (system block first, its
    cache_control last, a 40-hex custom_id)."""
    system = [
        {
            "type": "text",
            "text": "You classify documents. " + text_of(6144, -1),
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    lines = [
        orjson.dumps(
            {
                "custom_id": "br_" + hashlib.sha1(str(i).encode()).hexdigest(),
                "params": {
                    "model": "claude-sonnet-4-6",
                    "max_tokens": 256,
                    "system": system,
                    "messages": [
                        {
                            "role": "user",
                            "content": "Classify this document: " + text_of(size, i),
                        }
                    ],
                },
            }
        )
        for i in range(n)
    ]
    return b'{"requests":[' + b",".join(lines) + b"]}"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def measure(make: Callable[[], bytes], code: Path, quiet: bool) -> dict[str, float]:
    """Post the body `make` returns to an in-process emulator imported from `code`; the
    seconds each step took. The body is freed once posted (only this function holds it)."""
    sys.path.insert(0, str(code))
    emulator: Any = importlib.import_module("runner.emulator")
    say = (lambda _: None) if quiet else print
    baseline = _rss_mb()
    raw = make()
    mb = len(raw) / 1e6
    say(f"body: {mb:.1f} MB")
    figures: dict[str, float] = {}
    with (
        emulator.start() as emu,
        Anthropic(api_key="k", base_url=emu.base_url, max_retries=0) as client,
    ):
        with httpx2.Client(timeout=600) as http:
            t0 = time.perf_counter()
            http.post(emu.base_url + "/_emulator/nowhere", content=raw, headers=HEADERS)
            read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = client.post("/v1/messages/batches", cast_to=MessageBatch, content=raw)
        create_s = figures["create_s"] = time.perf_counter() - t0
        del raw
        say(f"send+read only (404 route): {read_s:.2f} s = {mb / read_s:.0f} MB/s")
        say(f"create accepted:            {create_s:.2f} s = {mb / create_s:.0f} MB/s")
        t0 = time.perf_counter()
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            time.sleep(0.02)  # background intake summarises the requests, then it can end
        figures["intake_s"] = time.perf_counter() - t0
        say(f"intake + finalize:          {figures['intake_s']:.2f} s")
        figures["results_s"], lines = _download(emu.base_url, batch.id)
        say(f"results: {lines} lines in {figures['results_s']:.2f} s")
        gc.collect()
        say(
            f"RSS with the ended batch held (body freed): {_rss_mb():.0f} MB "
            f"(before building the body: {baseline:.0f} MB)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"peak RSS of this process (client + emulator): {peak:.0f} MB")
    return figures


def _download(base_url: str, batch_id: str) -> tuple[float, int]:
    with httpx2.Client(timeout=600) as http:
        t0 = time.perf_counter()
        lines = 0
        url = f"{base_url}/v1/messages/batches/{batch_id}/results"
        with http.stream("GET", url, headers=HEADERS) as response:
            for chunk in response.iter_bytes(1 << 20):
                lines += chunk.count(b"\n")
        return time.perf_counter() - t0, lines


def compare(make: Callable[[], bytes], against: Path, runs: int) -> None:
    """Medians of `runs` fresh-process runs with each code, alternating which goes first."""
    sides = {"before": against.resolve(), "after": REPO}
    taken: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "body.json"
        path.write_bytes(make())
        for run in range(runs):
            order = list(sides) if run % 2 == 0 else list(reversed(sides))
            for side in order:
                argv = [sys.executable, __file__, "--body", str(path), "--code", str(sides[side])]
                out = subprocess.run(argv, env=bench_env(), check=True, capture_output=True)
                taken[side].append(orjson.loads(out.stdout.splitlines()[-1]))
    print(f"medians of {runs} runs   before    after   after/before")
    for name in FIGURES:
        before, after = (statistics.median(r[name] for r in taken[s]) for s in sides)
        print(f"{name:<20} {before:7.2f} s {after:7.2f} s   {after / before:.2f}x")
    for side in sides:
        for name in FIGURES:
            print(f"  {side:<6} {name:<10}", " ".join(f"{r[name]:.2f}" for r in taken[side]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, help="requests (default per shape)")
    parser.add_argument("size", nargs="?", type=int, help="bytes of user text per request")
    parser.add_argument("--shape", choices=sorted(DEFAULTS), default="plain")
    parser.add_argument("--against", type=Path, help="other emulator code to compare with")
    parser.add_argument("--runs", type=int, default=5)
    # Internal: one measurement of a prepared body, printed as JSON (used by --against).
    parser.add_argument("--body", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.body is not None:
        figures = measure(args.body.read_bytes, args.code, quiet=True)
        print(orjson.dumps(figures).decode())
        return
    n, size = args.n or DEFAULTS[args.shape][0], args.size or DEFAULTS[args.shape][1]
    build = e2e_body if args.shape == "e2e" else body
    print(f"shape {args.shape}: {n} requests of ~{size} bytes of user text")
    if args.against is not None:
        compare(lambda: build(n, size), args.against, args.runs)
    else:
        measure(lambda: build(n, size), args.code, quiet=False)


if __name__ == "__main__":
    main()
