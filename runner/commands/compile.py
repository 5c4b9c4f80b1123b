"""`batchrun compile`: a job's exact batch bodies written to a folder, nothing submitted."""

from __future__ import annotations

from pathlib import Path

from runner.compile.files import write_compiled
from runner.errors import ExitCode
from runner.spec import load_job


def main(job_path: Path, out_dir: Path) -> int:
    chunks = write_compiled(load_job(job_path), out_dir)
    requests = sum(c.requests for c in chunks)
    size = sum(c.size for c in chunks)
    noun = "chunk" if len(chunks) == 1 else "chunks"
    print(f"{requests} requests in {len(chunks)} {noun} ({size / 1e6:.1f} MB) -> {out_dir}")
    return ExitCode.OK
