"""The API key never appears in logs, state, outputs or error messages (issue 7).

One distinctive key goes through every command and path that talks to the API or reports
on it, with debug logs on (batchrun's and the SDK's own): a clean run, runs under faults
(HTTP 529 with retry-after, creates that commit then fail, errored results, a SIGKILL that
leaves a SQLite WAL behind), status, plan, cancel, a refused run and recover, an
authentication failure, and the Python API. Then every byte the runs produced (stdout,
stderr, captured logs, exception texts, every file under the test folder, SQLite databases
and WAL files included) is searched for the key, its base64 forms, and every 8-character
piece of its secret part.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner import api, emulator, log
from runner.store import default_state_dir
from tests.e2e.helpers import batchrun, dead_letters, write_job

pytestmark = pytest.mark.e2e

PREFIX = "sk-ant-LEAKCHECK-"
# token_urlsafe: letters, digits, - and _, so that no hex custom_id or hash can match a
# piece of it by chance.
KEY = PREFIX + secrets.token_urlsafe(30)
OTHER_KEY = "sk-ant-emulator-expects-another-key"

FAULTS: dict[str, Any] = {
    "seed": 17,
    "http_faults": [
        {"endpoint": "create", "status": 529, "rate": 0.25, "retry_after": 0.05},
        {"endpoint": "list", "status": 503, "rate": 0.2, "retry_after": 0.05},
    ],
    "create_commit_then_fail": 0.25,
    "outcomes": {"errored": 0.4},
    "errored_types": {"overloaded_error": 0.5, "invalid_request_error": 0.5},
}


def needles(key: str = KEY) -> list[bytes]:
    """Every form in which a leak would be recognisable."""
    raw = key.encode()
    secret = key.removeprefix(PREFIX)
    found = [raw]
    for shift in range(3):  # the key's base64 inside any longer base64 text
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.append(encode(b"\0" * shift + raw)[4:-4])
    found += [secret[i : i + 8].encode() for i in range(len(secret) - 7)]
    return found


def leaks(data: bytes) -> list[bytes]:
    return [n for n in needles() if n in data]


class Transcript:
    """Everything the runs showed: process outputs and exception texts."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def cli(self, base_url: str, *args: str | Path, **env: Any) -> subprocess.CompletedProcess[str]:
        env.setdefault("ANTHROPIC_API_KEY", KEY)
        proc = batchrun(base_url, "--log-level", "debug", *args, ANTHROPIC_LOG="debug", **env)
        self.texts += [proc.stdout, proc.stderr]
        return proc


def assert_no_leak(transcript: Transcript, root: Path, min_files: int = 10) -> None:
    for i, text in enumerate(transcript.texts):
        assert not leaks(text.encode()), f"the key leaked into output #{i}: {text[:2000]}"
    scanned = 0
    for path in root.rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes()), f"the key leaked into {path}"
            scanned += 1
    assert scanned >= min_files  # the scan saw the state and outputs, not an empty folder


def test_key_never_leaks_through_the_cli(tmp_path: Path) -> None:
    t = Transcript()
    with emulator.start(api_key=KEY) as emu:
        job = write_job(tmp_path, name="clean", inputs=4)
        assert t.cli(emu.base_url, "run", job).returncode == 0
        assert t.cli(emu.base_url, "status", "--json", job).returncode == 0
        assert t.cli(emu.base_url, "status", job).returncode == 0
        assert t.cli(emu.base_url, "plan", "--json", job).returncode == 0
        assert t.cli(emu.base_url, "plan", job).returncode == 0
        _lost_state_then_recover(t, emu.base_url, job)
        _wal_after_sigkill(t, emu.base_url, tmp_path)
    _cancel_in_flight(t, tmp_path)
    with emulator.start(FAULTS, api_key=KEY) as emu:
        job = write_job(
            tmp_path,
            name="faulty",
            inputs=6,
            extra="batch: {max_requests: 3}\nretry: {max_attempts: 6}\n",
        )
        proc = t.cli(emu.base_url, "run", job)
        assert proc.returncode == 4 and dead_letters(job), proc.stderr[-3000:]
        # The fault paths were really taken: failed creates reconciled, errored results.
        assert "may have committed" in proc.stderr and "overloaded_error" in proc.stderr
        assert t.cli(emu.base_url, "status", "--json", job).returncode == 0
    _auth_failure(t, tmp_path)
    assert_no_leak(t, tmp_path)


def _lost_state_then_recover(t: Transcript, base_url: str, job: Path) -> None:
    shutil.rmtree(default_state_dir(job, "clean"))
    refused = t.cli(base_url, "run", job)
    assert refused.returncode == 1 and "recover" in refused.stderr
    assert t.cli(base_url, "recover", job).returncode == 0
    assert t.cli(base_url, "run", job).returncode == 0


def _cancel_in_flight(t: Transcript, root: Path) -> None:
    """A batch still processing (an hour of latency) is canceled; the next run collects the
    canceled requests and, with --no-wait, submits them again."""
    slow = {"latency": {"min_s": 3600, "max_s": 3600}}
    with emulator.start(slow, api_key=KEY) as emu:
        job = write_job(root, name="canceled", inputs=3)
        assert t.cli(emu.base_url, "run", "--no-wait", job).returncode == 0
        proc = t.cli(emu.base_url, "cancel", job)
        assert proc.returncode == 0 and "cancel requested for 1 batch(es)" in proc.stdout
        assert t.cli(emu.base_url, "run", "--no-wait", job).returncode == 0


def _wal_after_sigkill(t: Transcript, base_url: str, root: Path) -> None:
    """Killed with results committed but not yet in the sink: the SQLite WAL stays on disk
    for the scan; the next run finishes the job."""
    job = write_job(root, name="killed", inputs=3)
    proc = t.cli(base_url, "run", job, BATCHRUN_TEST_CRASH_AT="after_results_stored:1")
    assert proc.returncode == -9
    assert list(default_state_dir(job, "killed").glob("*-wal"))
    assert_no_leak(t, root)
    assert t.cli(base_url, "run", job).returncode == 0


def _auth_failure(t: Transcript, root: Path) -> None:
    """The API refuses the key: the error shown names the failure, not the key sent."""
    with emulator.start(api_key=OTHER_KEY) as emu:
        job = write_job(root, name="refused", inputs=2)
        proc = t.cli(emu.base_url, "run", job)
        assert proc.returncode == 1 and "authentication_error" in proc.stderr, proc.stderr


def test_the_search_finds_a_planted_key(tmp_path: Path) -> None:
    """The checker itself: the key, a base64 of a text holding it, or a piece of its
    secret inside a SQLite file are all found."""
    secret = KEY.removeprefix(PREFIX)
    for planted in (
        KEY.encode(),
        base64.b64encode(b"Bearer " + KEY.encode()),
        base64.urlsafe_b64encode(b"xy" + KEY.encode() + b"z"),
        f"...{secret[5:14]}...".encode(),
    ):
        db = tmp_path / f"{len(planted)}.db"
        with sqlite3.connect(db) as conn:
            conn.execute("create table t (v blob)")
            conn.execute("insert into t values (?)", (planted,))
        conn.close()
        assert leaks(db.read_bytes()), planted
    assert not leaks(b"sk-ant-LEAKCHECK-" + b"x" * 40)


def test_key_never_leaks_through_the_python_api(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """api_key= goes to the client only: not the logs, files, stdout or an exception."""
    caplog.set_level(logging.DEBUG)
    t = Transcript()
    try:
        with emulator.start(FAULTS, api_key=KEY) as emu:
            job = write_job(tmp_path, name="viaapi", inputs=6, extra="retry: {max_attempts: 6}\n")
            result = api.run(job, base_url=emu.base_url, api_key=KEY)
            assert result.finished
            api.status(job)
            api.cancel(job, base_url=emu.base_url, api_key=KEY)
            other = write_job(tmp_path, name="wrongkey", inputs=1)
            with pytest.raises(api.RemoteError) as info:
                api.run(other, base_url=emu.base_url, api_key=PREFIX + "not-the-right-key-0000")
            t.texts.append(str(info.value))
        with emulator.start(api_key=OTHER_KEY) as emu, pytest.raises(api.RemoteError) as info:
            api.run(other, base_url=emu.base_url, api_key=KEY)
        t.texts.append(str(info.value) + repr(info.value))
    finally:
        structlog.reset_defaults()
    out = capsys.readouterr()
    t.texts += [out.out, out.err, caplog.text]
    assert caplog.records  # the API's debug logs were captured and searched
    assert_no_leak(t, tmp_path)


def test_key_with_a_trailing_newline_is_refused_cleanly(tmp_path: Path) -> None:
    """A key read from a file with its newline: httpx would reject the header on every call
    and quote it in its error, key and all; batchrun refuses it up front instead."""
    t = Transcript()
    with emulator.start() as emu:
        job = write_job(tmp_path, name="newline", inputs=1)
        proc = t.cli(emu.base_url, "run", job, ANTHROPIC_API_KEY=KEY + "\n")
        assert proc.returncode == 1 and "ANTHROPIC_API_KEY contains whitespace" in proc.stderr
        with pytest.raises(api.BatchrunError, match="api_key contains whitespace"):
            api.run(job, base_url=emu.base_url, api_key=KEY + "\n")
        assert emu.stats()["batches_created"] == 0
    t.texts += [str(os.environ)]
    assert_no_leak(t, tmp_path, min_files=1)


def test_sdk_log_records_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own debug logging (ANTHROPIC_LOG=debug) goes through stdlib logging, with
    tracebacks; batchrun masks the key in those records too."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    log.configure("json", "debug")
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    sdk = logging.getLogger("anthropic._base_client")
    sdk.addHandler(handler)
    try:
        try:
            raise ValueError(f"Illegal header value b'Bearer {KEY}\\n'")
        except ValueError:
            sdk.error("Encountered Exception %s", KEY, exc_info=True)
    finally:
        sdk.removeHandler(handler)
        structlog.reset_defaults()
    assert "Encountered Exception" in seen.getvalue() and "Illegal header" in seen.getvalue()
    assert not leaks(seen.getvalue().encode()), seen.getvalue()
