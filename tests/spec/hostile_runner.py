"""Runs the hostile-input corpus (tests/jobs/hostile/) in one process under a memory cap,
printing one JSON line per case: its exit code, its output and how long it took.

`python -m tests.spec.hostile_runner SCRATCH_DIR MEMORY_BYTES`, from the repository root.
A separate process, so that the cap (`resource.setrlimit(RLIMIT_AS)`) bounds only the
cases, and a case that crashes the interpreter fails the test instead of the test run.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import orjson
from click.testing import CliRunner

from runner.cli import cli

CORPUS = Path(__file__).resolve().parent.parent / "jobs" / "hostile"


def directives(case: Path) -> dict[str, str]:
    """The `# key: value` lines a case starts with (command, within)."""
    found: dict[str, str] = {}
    for line in case.read_text("utf-8", errors="replace").splitlines():
        if not line.startswith("# ") or ":" not in line:
            break
        key, _, value = line[2:].partition(":")
        found[key.strip()] = value.strip()
    return found


def run_case(case: Path, scratch: Path) -> dict[str, object]:
    command = directives(case).get("command", "validate")
    args = [command, case.name]
    if command == "compile":
        args += ["--out", str(scratch / case.stem)]
    started = time.monotonic()
    result = CliRunner().invoke(cli, args)
    seconds = time.monotonic() - started
    output = (result.stdout + result.stderr).replace(f"{CORPUS}/", "")
    return {"case": case.name, "code": result.exit_code, "output": output, "seconds": seconds}


def main(scratch: str, memory: str) -> None:
    cap = int(memory)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.chdir(CORPUS)
    for case in sorted(CORPUS.glob("*.yaml")):
        row = run_case(case, Path(scratch))
        sys.stdout.write(orjson.dumps(row).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
