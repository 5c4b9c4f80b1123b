"""Driving the real CLI in a subprocess against an emulator living in the test process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import REPO

DUMMY_KEY = "sk-test-not-a-real-key-0123456789"


def write_job(
    root: Path,
    name: str = "e2e",
    inputs: int = 5,
    prompt: str = "Say {{ input.text }}",
    extra: str = "",
    output: str | None = None,
) -> Path:
    """A glob job over `inputs` small text files, polling fast, JSONL output."""
    data = root / "data" / name
    data.mkdir(parents=True, exist_ok=True)
    for i in range(inputs):
        (data / f"in{i:03d}.txt").write_text(f"input number {i}\n")
    job = root / f"{name}.yaml"
    job.write_text(
        f"version: 1\nname: {name}\ninput:\n  glob: data/{name}/*.txt\n"
        f"model: claude-sonnet-4-6\nmax_tokens: 64\nprompt: {orjson.dumps(prompt).decode()}\n"
        f"output: {output or f'{{type: jsonl, path: out/{name}.jsonl}}'}\n"
        "poll: {interval: 50ms, max_interval: 200ms}\n" + extra
    )
    return job


def env_for(base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(
        PYTHONPATH=str(REPO),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY=DUMMY_KEY,
        NO_PROXY="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


def batchrun(
    base_url: str, *args: str | Path, timeout: float = 120, **env: Any
) -> subprocess.CompletedProcess[str]:
    """`batchrun ARGS` in a fresh process, talking to the emulator at `base_url`."""
    argv = [sys.executable, "-m", "runner", "--log-format", "json", *map(str, args)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env_for(base_url, **env), timeout=timeout
    )
    assert DUMMY_KEY not in proc.stdout + proc.stderr, "the API key leaked into the output"
    return proc


def results(job: Path) -> list[dict[str, Any]]:
    out = job.parent / "out" / f"{job.stem}.jsonl"
    return [orjson.loads(x) for x in out.read_bytes().splitlines()] if out.exists() else []


def dead_letters(job: Path) -> list[dict[str, Any]]:
    out = job.parent / "out" / f"{job.stem}.jsonl.dead.jsonl"
    return [orjson.loads(x) for x in out.read_bytes().splitlines()] if out.exists() else []


def assert_exactly_once(job: Path, inputs: int, stats: dict[str, Any]) -> None:
    """Each input has exactly one result line or one dead letter; nothing billed twice."""
    keys = [r["input_key"] for r in results(job)] + [d["input_key"] for d in dead_letters(job)]
    assert len(keys) == len(set(keys)) == inputs, sorted(keys)
    assert stats["double_billed_custom_ids"] == {}
    assert stats["concurrent_duplicate_custom_ids"] == {}
