"""The baseline: what the API's own examples show, written the plain way.

Build a list of request dicts, `client.messages.batches.create(requests=...)` split to fit
the limits, poll `retrieve`, iterate `client.messages.batches.results()`, write one JSONL line
per result. Usage: python -m bench.baseline JOB_FOLDER OUT_FILE (with ANTHROPIC_BASE_URL).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anthropic

MAX_REQUESTS = 100_000
MAX_BYTES = 256_000_000


def build_requests(folder: Path) -> list[dict[str, object]]:
    system = (folder / "system.md").read_text(encoding="utf-8")
    requests = []
    with (folder / "records.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            requests.append(
                {
                    "custom_id": record["id"],
                    "params": {
                        "model": "claude-sonnet-4-6",
                        "max_tokens": 256,
                        "system": [
                            {
                                "type": "text",
                                "text": system,
                                "cache_control": {"type": "ephemeral", "ttl": "1h"},
                            }
                        ],
                        "messages": [
                            {"role": "user", "content": f"Classify this document: {record['text']}"}
                        ],
                    },
                }
            )
    return requests


def split(requests: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    """Chunks within the count and byte limits, sizes measured by serialising each request."""
    chunks: list[list[dict[str, object]]] = [[]]
    size = len('{"requests":[]}')
    for r in requests:
        n = len(json.dumps(r, separators=(",", ":")).encode()) + 1
        if chunks[-1] and (len(chunks[-1]) >= MAX_REQUESTS or size + n > MAX_BYTES):
            chunks.append([])
            size = len('{"requests":[]}')
        chunks[-1].append(r)
        size += n
    return chunks


def main(folder: Path, out: Path) -> None:
    client = anthropic.Anthropic()
    batches = [client.messages.batches.create(requests=c) for c in split(build_requests(folder))]
    pending = {b.id for b in batches}
    while pending:
        for batch_id in list(pending):
            if client.messages.batches.retrieve(batch_id).processing_status == "ended":
                pending.discard(batch_id)
        if pending:
            time.sleep(0.1)
    with out.open("w", encoding="utf-8") as f:
        for b in batches:
            for result in client.messages.batches.results(b.id):
                f.write(json.dumps(result.to_dict()) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
