"""A local emulator of the Anthropic Message Batches API (contract: api-contract.md).

`start()` runs it in a background thread for tests and `batchrun run --emulate`;
`serve()` runs it in the foreground for `batchrun emulator`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import log
from runner.emulator.clock import Clock
from runner.emulator.config import ConfigError, ConfigSource, EmulatorConfig, load_config
from runner.emulator.server import EmulatorServer
from runner.emulator.service import Service
from runner.emulator.store import Store
from runner.errors import BatchrunError

__all__ = ["ConfigError", "Emulator", "EmulatorConfig", "load_config", "serve", "start"]


@dataclass
class Emulator:
    """A running emulator: point the SDK's `base_url` at `base_url`."""

    base_url: str
    config: EmulatorConfig
    _service: Service

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward (same as POST /_emulator/clock/advance)."""
        self._service.advance(seconds)

    def stats(self) -> dict[str, Any]:
        """The accounting figures (same as GET /_emulator/stats)."""
        return self._service.stats()


def _build(
    config: ConfigSource,
    api_key: str | None,
    state: str | Path | None,
    address: tuple[str, int],
    verbose: bool,
) -> tuple[EmulatorServer, Store | None]:
    checked = load_config(config)
    store = Store(Path(state)) if state is not None else None
    clock = Clock(store.clock_offset() if store else 0.0)
    service = Service(checked, clock, store)
    try:
        return EmulatorServer(address, service, api_key, verbose), store
    except OSError as exc:
        if store:
            store.close()
        host, port = address
        raise BatchrunError(
            f"cannot listen on {host}:{port}: {exc.strerror} (fix: choose another --port)"
        ) from exc


@contextmanager
def start(
    config: ConfigSource = None,
    *,
    api_key: str | None = None,
    state: str | Path | None = None,
) -> Iterator[Emulator]:
    """Serve on a free loopback port in a background thread; shut down cleanly on exit.

    `config` is None, a mapping, an `EmulatorConfig` or a YAML/JSON path; `api_key` fixes
    the one accepted key (any non-empty key otherwise); `state` is a SQLite file that keeps
    batches across restarts (in memory otherwise).
    """
    server, store = _build(config, api_key, state, ("127.0.0.1", 0), verbose=False)
    # A short poll interval makes shutdown quick (the stdlib default waits up to 0.5 s).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="emulator", daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield Emulator(f"http://{host!s}:{port}", server.service.config, server.service)
    finally:
        _stop(server, store)
        thread.join()


def _stop(server: EmulatorServer, store: Store | None) -> None:
    server.shutdown()
    server.close_connections()
    server.server_close()
    server.service.close()
    if store is not None:
        store.close()


def serve(
    config: ConfigSource = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    state: str | Path | None = None,
) -> int:
    """Serve in the foreground until interrupted (Ctrl-C); returns an exit code."""
    server, store = _build(config, api_key, state, (host, port), verbose=True)
    # SIGTERM (docker stop, CI teardown) ends the server like Ctrl-C, so SQLite closes cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    log.get("batchrun.emulator").info("serving", base_url=f"http://{host}:{port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.get("batchrun.emulator").info("stopped")
    finally:
        server.close_connections()
        server.server_close()
        server.service.close()
        if store is not None:
            store.close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
