"""`batchrun emulator` in a subprocess driven by the SDK (the CI dry-run use), the async
client, and the background intake of large batches."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anthropic import Anthropic, AsyncAnthropic

from runner.emulator import Emulator
from tests.conftest import REPO
from tests.emulator.conftest import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the emulator exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the emulator did not start listening")


@pytest.mark.e2e
def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    """The command serves the SDK, logs each request, and exits 0 on SIGTERM."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable,
        "-m",
        "runner",
        "--log-format",
        "json",
        "emulator",
        "--port",
        str(port),
        "--state",
        str(tmp_path / "emu.sqlite"),
        "--api-key",
        "k",
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        url = f"http://127.0.0.1:{port}"
        with Anthropic(api_key="k", base_url=url, _strict_response_validation=True) as client:
            batch = client.messages.batches.create(requests=requests(2))
            assert len(list(client.messages.batches.results(batch.id))) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert b'"event": "request"' in err and b'"endpoint": "results"' in err


def test_async_client(emu: Emulator) -> None:
    """AsyncAnthropic speaks the same wire format."""

    async def run() -> list[str]:
        async with AsyncAnthropic(
            api_key="test", base_url=emu.base_url, _strict_response_validation=True
        ) as client:
            batch = await client.messages.batches.create(requests=requests(3))
            lines = await client.messages.batches.results(batch.id)
            return [line.custom_id async for line in lines]

    assert sorted(asyncio.run(run())) == ["r0", "r1", "r2"]


def test_large_batch_is_summarised_in_background(client: Anthropic) -> None:
    """A batch above the synchronous limit stays in_progress until intake finishes; the
    intake thread ends the GC pause the create handed it."""
    batch = client.messages.batches.create(requests=requests(2_500))
    deadline = time.monotonic() + 30
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert gc.isenabled()
    lines = list(client.messages.batches.results(batch.id))
    assert len(lines) == 2_500 and {line.result.type for line in lines} == {"succeeded"}
