"""SIGKILL a run writing to an S3 sink (moto's server) in its sink windows, run it again,
and check that each input ends with exactly one result or dead letter in the bucket and
that nothing was billed twice. Lean: a few kills per sink, each one a real process."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from runner import emulator, storage
from tests.e2e.helpers import batchrun
from tests.services import Bucket, s3_client

pytestmark = pytest.mark.chaos

INPUTS = 6
FAULTS = {"seed": 7, "outcomes": {"errored": 0.2}, "errored_types": {"invalid_request_error": 1}}


def _job(root: Path, bucket: Bucket, output: str) -> Path:
    client = s3_client()
    for i in range(INPUTS):
        client.put_object(Bucket=bucket.name, Key=f"in/{i}.txt", Body=f"input {i}".encode())
    job = root / "chaos.yaml"
    job.write_text(
        f"version: 1\nname: chaos\ninput:\n  glob: {bucket.url('in/*.txt')}\n"
        "model: claude-sonnet-4-6\nmax_tokens: 64\nprompt: 'Say {{ input.text }}'\n"
        f"output: {output}\nbatch: {{max_requests: 2}}\n"
        "poll: {interval: 50ms, max_interval: 200ms}\n"
    )
    return job


def _lines(url: str) -> list[str]:
    data = storage.storage("s3").fetch(storage.parse_url(url))
    return [orjson.loads(x)["input_key"] for x in data.splitlines()] if data else []


@pytest.mark.parametrize(
    ("sink", "kills"),
    [
        # A jsonl page hits mid_sink_write in the feed (1), in the scratch copy's torn
        # append (2), and after the results object's upload, dead letters not yet (3).
        ("jsonl", ["mid_sink_write:2", "mid_sink_write:3"]),
        ("files", ["after_sink_write:1"]),  # objects written, state not told
    ],
)
def test_kills_around_remote_sink_writes(
    tmp_path: Path, s3_bucket: Bucket, sink: str, kills: list[str]
) -> None:
    out = s3_bucket.url("out/r.jsonl" if sink == "jsonl" else "out/answers")
    job = _job(tmp_path, s3_bucket, f"{{type: {sink}, path: {out}}}")
    with emulator.start(FAULTS) as emu:
        for point in kills:  # each run still has pages to write, so each kill lands
            proc = batchrun(emu.base_url, "run", job, BATCHRUN_TEST_CRASH_AT=point)
            assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        final = batchrun(emu.base_url, "run", job)
        assert final.returncode in (0, 4), final.stderr[-2000:]
        stats = emu.stats()
    assert stats["double_billed_custom_ids"] == {} and stats["requests_received"] >= INPUTS
    if sink == "jsonl":
        results, dead = _lines(out), _lines(out + ".dead.jsonl")
    else:
        root = storage.parse_url(s3_bucket.url())
        results = [s.key for s in storage.storage("s3").find(root, "out/answers/**")]
        dead = _lines(out + ".dead.jsonl")
    keys = [*results, *dead]
    assert len(keys) == len(set(keys)) == INPUTS, (results, dead)
