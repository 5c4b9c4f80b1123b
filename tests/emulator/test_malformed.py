"""Malformed requests get the API's 4xx error envelope (never a 500), and a client that
stops sending gives up its connection after `read_timeout_s`."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from runner.emulator import Emulator, start

HEAD = (
    "POST /v1/messages/batches HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n"
    "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with start({"read_timeout_s": 0.5}) as running:
        yield running


def exchange(emu: Emulator, raw: str, wait: float = 5.0) -> tuple[int, dict[str, object]]:
    """Send `raw` bytes, read the whole answer; (status, JSON body)."""
    host, port = emu.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(raw.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ("Content-Length: -5\r\n", "", "Content-Length: '-5' is not a number of bytes"),
        ("Content-Length: +5\r\n", "{abc}", "Content-Length: '+5' is not a number of bytes"),
        ("Content-Length: five\r\n", "", "Content-Length: 'five' is not a number of bytes"),
        ("Content-Length: 2\r\nContent-Length: 3\r\n", "{}", "given twice with different values"),
        (
            "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
            "{}",
            "Content-Length and Transfer-Encoding: chunked together",
        ),
    ],
)
def test_malformed_framing_is_a_400_envelope(
    emu: Emulator, headers: str, body: str, message: str
) -> None:
    status, answer = exchange(emu, HEAD + headers + "\r\n" + body)
    assert status == 400
    assert answer["type"] == "error"
    error = answer["error"]
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    assert message in str(error["message"])


def test_an_absurd_length_is_a_413_at_once(emu: Emulator) -> None:
    status, answer = exchange(emu, HEAD + "Content-Length: 99999999999999999999\r\n\r\n")
    assert status == 413 and answer["error"] == {
        "type": "request_too_large",
        "message": "Request exceeds the maximum allowed number of bytes.",
    }


def test_a_client_that_stops_sending_gets_a_408_after_the_read_timeout(emu: Emulator) -> None:
    started = time.monotonic()
    status, answer = exchange(emu, HEAD + 'Content-Length: 100\r\n\r\n{"requ')
    assert status == 408 and answer["error"] == {
        "type": "timeout_error",
        "message": "Request body read timed out",
    }
    assert time.monotonic() - started < 5


def test_an_idle_connection_is_closed_after_the_read_timeout(emu: Emulator) -> None:
    host, port = emu.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server hung up
        assert time.monotonic() - started < 5
