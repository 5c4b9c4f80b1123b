"""Shared pieces of the benchmarks: a synthetic job of N ~2 KB records with a ~6 KB cached
system prompt, an emulator process, and running a command while measuring it."""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    *[
        "batch",
        "request",
        "model",
        "answer",
        "cache",
        "prompt",
        "survey",
        "topic",
        "customer",
        "product",
        "review",
        "delivery",
        "price",
        "quality",
        "support",
        "refund",
        "screen",
        "battery",
        "charger",
        "invoice",
        "account",
        "service",
    ],
    # Non-ASCII and characters JSON must escape, so serialisers do their real work.
    *["résumé", "naïve", "日本", "emoji🙂", 'quote"d', "tab\there"],
]


def text_of(n_bytes: int, seed: int) -> str:
    """Deterministic prose of about `n_bytes` characters."""
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < n_bytes:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)


def make_job(
    folder: Path, n: int, *, doc_bytes: int = 2048, system_bytes: int = 6144, extra: str = ""
) -> Path:
    """Write records.jsonl, system.md and job.yaml under `folder` (`extra`: more YAML for
    the job file); return the job file."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = [text_of(doc_bytes, i) for i in range(min(n, 1000))]  # distinct, and quick at 1M
    with (folder / "records.jsonl").open("wb") as f:
        for i in range(n):
            text = texts[i] if i < len(texts) else f"{texts[i % len(texts)]} #{i}"
            f.write(orjson.dumps({"id": f"doc-{i:07d}", "text": text}) + b"\n")
    (folder / "system.md").write_text(
        "You classify documents. " + text_of(system_bytes, -1), encoding="utf-8"
    )
    job = folder / "job.yaml"
    job.write_text(
        "version: 1\n"
        "name: bench\n"
        "input: {jsonl: records.jsonl, key: '{{ record.id }}'}\n"
        "model: claude-sonnet-4-6\n"
        "max_tokens: 256\n"
        "system: {file: system.md, cache: 1h}\n"
        "prompt: 'Classify this document: {{ input.record.text }}'\n"
        "poll: {interval: 100ms, max_interval: 1s}\n"
        "output: {type: jsonl, path: out/results.jsonl}\n" + extra,
        encoding="utf-8",
    )
    # Inputs written the moment before a run are "racily clean" (runner/compile/index.py):
    # the next pass reads them again to be sure. Real inputs are older than RACY_S.
    an_hour_ago = time.time() - 3600
    for written in (folder / "records.jsonl", folder / "system.md", job):
        os.utime(written, (an_hour_ago, an_hour_ago))
    return job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def emulator_process(config: Path | None = None) -> Iterator[str]:
    """`batchrun emulator` in its own process (so its memory is not counted as ours)."""
    port = free_port()
    argv = [sys.executable, "-m", "runner", "--log-level", "warning", "emulator"]
    argv += ["--port", str(port)]
    if config is not None:
        argv += ["--config", str(config)]
    proc = subprocess.Popen(argv, cwd=REPO, env=bench_env(), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("emulator did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_env(base_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["PYTHONPATH"] = str(REPO)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
        env["ANTHROPIC_API_KEY"] = "sk-bench-not-a-real-key"
    return env


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0  # user + system time of the process itself


def measure(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> Measured:
    """Run a command to completion; its wall time, peak RSS and CPU time (wait4's rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return Measured(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
