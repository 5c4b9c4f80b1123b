"""The requests this run is to submit, kept on disk from the sync pass to submitting them.

A run renders each request it submits once, to record its custom_id in state before anything
is submitted (DESIGN.md: state before every remote side effect), then builds chunks from the
requests still waiting: the plan's, and any rendered again later for a retry. Rendering them
all again cost as much as the first pass (~3 s per 100k requests of ~9 KB); reading them back
from this file costs a fraction of that, and memory stays flat whatever the job size.

The file only ever serves the process that wrote it: a spool left behind by a crash is
deleted unread. The requests in it are exactly the ones recorded in state, even if an input
file changes during the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from runner.compile import CompiledRequest

SPOOL_NAME = "requests.spool"


class Spool:
    """`<state>/requests.spool`: per request a JSON header line, then its body line."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / SPOOL_NAME
        self.ids: set[str] = set()  # the custom_ids spooled
        self._fh: IO[bytes] | None = None
        self._recording = False
        self.discard()  # a crashed run's leftover is never trusted

    def add(self, requests: Iterable[CompiledRequest]) -> None:
        """Write `requests` down after those already spooled."""
        if self._fh is None:
            self._fh = self.path.open("ab", buffering=1 << 20)
        for req in requests:
            head = [req.custom_id, req.input_key, req.input_path, req.betas, len(req.line)]
            self._fh.write(orjson.dumps(head) + b"\n")
            self._fh.write(req.line)
            self.ids.add(req.custom_id)

    def record(self, requests: Iterable[CompiledRequest]) -> Iterator[CompiledRequest]:
        """Pass `requests` through, writing each down, the spool emptied first. The spool
        becomes readable only when the last one has gone through."""
        self.discard()
        self._recording = True
        try:
            for req in requests:
                self.add((req,))
                yield req
            self._recording = False
        finally:
            self._close()

    def replay(self) -> Iterator[CompiledRequest] | None:
        """The spooled requests in their order; None if none is (or a recording was cut
        short)."""
        if not self.ids or self._recording:
            return None
        self._close()  # a later `add` appends again
        return self._read()

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _read(self) -> Iterator[CompiledRequest]:
        with self.path.open("rb", buffering=1 << 20) as f:
            while head := f.readline():
                cid, key, path, betas, size = orjson.loads(head)
                yield CompiledRequest(cid, key, path, f.read(size), tuple(betas))

    def discard(self) -> None:
        self._close()
        self.ids = set()
        self.path.unlink(missing_ok=True)
