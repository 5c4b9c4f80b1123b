"""Where `run --emulate` works: a scratch copy of the job's state and outputs, never its real
ones. The emulator's answers are canned; written into the real sink they would replace real
answers (and the real state would then point at batches no API knows).

The scratch lives beside the job's real state: `<state root>/_emulate/<job>/` for the state
(`_` can start no job name, so it never meets a real job's folder) and
`<state root>/_emulate/<job>.out/` for the outputs. Each emulated run starts it afresh, since
the emulator and its batches end with the command; what the run wrote stays there to read:
`batchrun status --state-dir <state root>/_emulate JOB` and `batchrun export` likewise.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from runner.spec import JobRef, JobSpec
from runner.store import default_state_dir

FOLDER = "_emulate"


def root(job: JobSpec | JobRef, state_root: Path | None) -> Path:
    """The `--state-dir` that reads the job's scratch state."""
    base = state_root if state_root is not None else default_state_dir(job.path, job.name).parent
    return base / FOLDER


def scratch_job(job: JobSpec, state_root: Path | None) -> JobSpec:
    """The job with its output moved into the scratch, after clearing what an earlier
    emulated run of it left there."""
    where = root(job, state_root)
    outputs = where / f"{job.name}.out"
    for old in (where / job.name, outputs):
        shutil.rmtree(old, ignore_errors=True)
    outputs.mkdir(parents=True, exist_ok=True)
    out = job.output
    if out.type == "postgres":  # a table in a database the run must not touch: SQLite here
        output = dataclasses.replace(
            out, type="sqlite", path=outputs / f"{job.name}.db", dsn_env=None, url=None
        )
    else:  # a local file or folder, or an object URL: its own name, in the scratch copy
        name = _leaf(out.path if out.path is not None else str(out.url))
        output = dataclasses.replace(out, path=outputs / name, url=None)
    return dataclasses.replace(job, output=output)


def _leaf(path: Path | str) -> str:
    """The output's own name (`out/x.jsonl` -> `x.jsonl`; `s3://b/k/x.jsonl` -> `x.jsonl`)."""
    return str(path).rstrip("/").rsplit("/", 1)[-1] or "output"
