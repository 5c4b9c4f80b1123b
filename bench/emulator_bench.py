"""Measure the emulator: a ~256 MB create, and results streaming in lines/s.

Run: NO_PROXY=127.0.0.1 python bench/emulator_bench.py [N_REQUESTS] [BYTES_PER_REQUEST]
Not a test: timings depend on the machine, so nothing here asserts on them.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time

import httpx2
import orjson
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch

from runner.emulator import start

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


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


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 2_500
    baseline = _rss_mb()
    raw = body(n, size)
    mb = len(raw) / 1e6
    print(f"body: {n} requests, {mb:.1f} MB")
    with start() as emu, Anthropic(api_key="k", base_url=emu.base_url, max_retries=0) as client:
        headers = {"x-api-key": "k", "anthropic-version": "2026-10-21"}
        with httpx2.Client(timeout=600) as http:
            t0 = time.perf_counter()
            http.post(emu.base_url + "/_emulator/nowhere", content=raw, headers=headers)
            read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = client.post("/v1/messages/batches", cast_to=MessageBatch, content=raw)
        create_s = time.perf_counter() - t0
        del raw
        print(f"send+read only (404 route): {read_s:.2f} s = {mb / read_s:.0f} MB/s")
        print(f"create accepted:            {create_s:.2f} s = {mb / create_s:.0f} MB/s")
        t0 = time.perf_counter()
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            time.sleep(0.05)  # background intake summarises the requests, then it can end
        print(f"intake + finalize of {n} requests: {time.perf_counter() - t0:.2f} s")
        with httpx2.Client(timeout=600) as http:
            t0 = time.perf_counter()
            lines = 0
            with http.stream(
                "GET", f"{emu.base_url}/v1/messages/batches/{batch.id}/results", headers=headers
            ) as response:
                for chunk in response.iter_bytes(1 << 20):
                    lines += chunk.count(b"\n")
            results_s = time.perf_counter() - t0
        print(f"results: {lines} lines in {results_s:.2f} s = {lines / results_s:,.0f} lines/s")
        gc.collect()
        print(
            f"RSS with the ended batch held (body freed): {_rss_mb():.0f} MB "
            f"(before building the body: {baseline:.0f} MB)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (client + emulator): {peak:.0f} MB")


if __name__ == "__main__":
    main()
