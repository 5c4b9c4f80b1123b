"""Object storage and PostgreSQL end to end: the real CLI reading s3:// and writing s3://
or a PostgreSQL table, against the emulator, moto's S3 server and an embedded PostgreSQL.
Re-runs submit nothing, and a new or changed object is the only new request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from runner import api, storage
from tests.e2e.conftest import EmulatorFactory
from tests.e2e.helpers import DUMMY_KEY, batchrun
from tests.services import AWS_TEST_KEYS, DSN_PASSWORD, Bucket, s3_client

pytestmark = pytest.mark.e2e


def remote_job(root: Path, bucket: Bucket, output: str, source: str = "glob: docs/*.txt") -> Path:
    kind, _, where = source.partition(": ")
    prompt = "Say {{ input.text }}" if kind == "glob" else "Say {{ input.record.q }}"
    job = root / "remote.yaml"
    job.write_text(
        f"version: 1\nname: remote\ninput:\n  {kind}: {bucket.url(where)}\n"
        f"model: claude-sonnet-4-6\nmax_tokens: 64\nprompt: {orjson.dumps(prompt).decode()}\n"
        f"output: {output}\npoll: {{interval: 50ms, max_interval: 200ms}}\n"
    )
    return job


def put(bucket: Bucket, objects: dict[str, str]) -> None:
    client = s3_client()
    for key, text in objects.items():
        client.put_object(Bucket=bucket.name, Key=key, Body=text.encode())


def object_lines(url: str) -> list[dict[str, Any]]:
    data = storage.storage("s3").fetch(storage.parse_url(url))
    return [orjson.loads(x) for x in data.splitlines()] if data else []


def received(emu: Any) -> int:
    return int(emu.stats()["requests_received"])


def test_s3_to_s3_reruns_submit_only_what_changed(
    tmp_path: Path, start_emulator: EmulatorFactory, s3_bucket: Bucket
) -> None:
    emu = start_emulator()
    put(s3_bucket, {f"docs/{n}.txt": f"text {n}" for n in "abc"})
    out = s3_bucket.url("out/answers.jsonl")
    job = remote_job(tmp_path, s3_bucket, f"{{type: jsonl, path: {out}}}")

    first = batchrun(emu.base_url, "run", job)
    assert first.returncode == 0, first.stderr
    assert f"results in {out}" in first.stdout
    assert sorted(x["input_key"] for x in object_lines(out)) == [
        "docs/a.txt",
        "docs/b.txt",
        "docs/c.txt",
    ]
    assert received(emu) == 3

    again = batchrun(emu.base_url, "run", job)
    assert again.returncode == 0 and "submitted 0 requests" in again.stdout
    assert received(emu) == 3

    before = {x["input_key"]: x["custom_id"] for x in object_lines(out)}
    put(s3_bucket, {"docs/d.txt": "text d", "docs/a.txt": "changed text"})
    assert batchrun(emu.base_url, "run", job).returncode == 0
    after = {x["input_key"]: x["custom_id"] for x in object_lines(out)}
    assert received(emu) == 5 and len(after) == 4  # the new object and the changed one
    assert {k for k in after if after[k] != before.get(k)} == {"docs/a.txt", "docs/d.txt"}

    secret = AWS_TEST_KEYS["AWS_SECRET_ACCESS_KEY"]
    assert all(secret not in p.stdout + p.stderr for p in (first, again)), "a credential leaked"
    plan = batchrun(emu.base_url, "plan", "--json", job)
    counts = orjson.loads(plan.stdout)[0]["counts"]
    assert (counts["inputs"], counts["done"], counts["to_submit"]) == (4, 4, 0), plan.stdout


def test_an_unchanged_bucket_is_not_read_again(
    tmp_path: Path,
    start_emulator: EmulatorFactory,
    s3_bucket: Bucket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In process, counting object reads: the re-run lists the bucket and reads nothing."""
    emu = start_emulator()
    put(s3_bucket, {"docs/a.txt": "a", "docs/b.txt": "b"})
    job = remote_job(tmp_path, s3_bucket, "{type: jsonl, path: out/answers.jsonl}")
    reads: list[str] = []
    real_read = storage.Storage.read

    def counted(self: storage.Storage, url: storage.Url) -> bytes:
        reads.append(str(url))
        return real_read(self, url)

    monkeypatch.setattr(storage.Storage, "read", counted)
    assert api.run(job, base_url=emu.base_url, api_key=DUMMY_KEY).exit_code == 0
    assert len(reads) == 2
    reads.clear()
    result = api.run(job, base_url=emu.base_url, api_key=DUMMY_KEY)
    assert result.requests_submitted == 0 and reads == []


def test_s3_records_to_postgres(
    tmp_path: Path,
    start_emulator: EmulatorFactory,
    s3_bucket: Bucket,
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One row per input in the table; the DSN's password shows nowhere."""
    emu = start_emulator()
    put(s3_bucket, {"in/q.csv": "id,q\n1,one\n2,two\n3,three\n"})
    job = remote_job(
        tmp_path,
        s3_bucket,
        "{type: postgres, dsn_env: RESULTS_DSN, table: answers}",
        source="csv: in/q.csv",
    )
    monkeypatch.setenv("RESULTS_DSN", postgres_dsn)  # the subprocesses inherit it
    runs = [batchrun(emu.base_url, "run", job) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "submitted 0 requests" in runs[1].stdout and received(emu) == 3
    with psycopg.connect(postgres_dsn) as conn:
        found = conn.execute("SELECT input_key, outcome FROM answers ORDER BY 1").fetchall()
    assert found == [("2", "succeeded"), ("3", "succeeded"), ("4", "succeeded")]
    shown = "".join(r.stdout + r.stderr for r in runs)
    assert DSN_PASSWORD not in shown and "postgres table answers" in shown
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert DSN_PASSWORD.encode() not in path.read_bytes(), path


def test_s3_files_sink_writes_one_object_per_input(
    tmp_path: Path, start_emulator: EmulatorFactory, s3_bucket: Bucket
) -> None:
    """In process (the SDK is imported once per test session, not once per run)."""
    emu = start_emulator()
    put(s3_bucket, {"docs/a.txt": "a", "docs/sub.txt": "s"})
    job = remote_job(tmp_path, s3_bucket, f"{{type: files, path: {s3_bucket.url('answers')}}}")
    result = api.run(job, base_url=emu.base_url, api_key=DUMMY_KEY)
    assert result.exit_code == 0 and result.output == s3_bucket.url("answers")
    root = storage.parse_url(s3_bucket.url())
    keys = [s.key for s in storage.storage("s3").find(root, "answers/**")]
    assert keys == ["answers/a.md", "answers/sub.md"]  # the tree below the glob base, as files
