"""The fail-closed guard itself."""

from __future__ import annotations

import socket

import pytest


def test_non_loopback_connection_is_refused() -> None:
    """A test that tries to reach the internet fails instead of hanging or leaking."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError, match="loopback"):
        s.connect(("192.0.2.1", 443))
    s.close()


def test_loopback_is_allowed() -> None:
    """The emulator on 127.0.0.1 stays reachable."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.connect(server.getsockname())
    client.close()
    server.close()
