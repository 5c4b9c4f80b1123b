"""The floor: the least work any runner does for bench.targets' job, in one process.

Build every request as a dict and serialise it with orjson into the batch bodies (chunks of
at most 100k requests), then parse every result line with orjson and append it to a file.
No template, no state, no HTTP: what is left when everything a runner adds is taken away.
bench.targets runs it on the same records and on the results the emulator gave batchrun,
and compares the CPU time of both processes. Usage:

    python -m bench.floor RECORDS.jsonl SYSTEM.md RESULTS.jsonl OUT.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

MAX_REQUESTS = 100_000


def build_bodies(records: Path, system: str) -> int:
    """Serialise every request into bodies; returns their total size in bytes."""
    block = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    total = 0
    lines: list[bytes] = []
    with records.open("rb") as f:
        for raw in f:
            record = orjson.loads(raw)
            params = {
                "model": "claude-sonnet-4-6",
                "max_tokens": 256,
                "system": block,
                "messages": [
                    {"role": "user", "content": "Classify this document: " + record["text"]}
                ],
            }
            lines.append(orjson.dumps({"custom_id": record["id"], "params": params}))
            if len(lines) == MAX_REQUESTS:
                total += len(b'{"requests":[' + b",".join(lines) + b"]}")
                lines = []
    if lines:
        total += len(b'{"requests":[' + b",".join(lines) + b"]}")
    return total


def append_results(results: Path, out: Path) -> int:
    """Parse every result line and append it to `out`; returns how many."""
    n = 0
    with results.open("rb") as f, out.open("ab") as o:
        for raw in f:
            orjson.loads(raw)
            o.write(raw)
            n += 1
    return n


def main(argv: list[str]) -> int:
    records, system, results, out = map(Path, argv)
    build_bodies(records, system.read_text(encoding="utf-8"))
    append_results(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
