"""The requests this run compiled, kept on disk from recording them to submitting them.

A run renders every request once to record its custom_id in state before anything is
submitted (DESIGN.md: state before every remote side effect), then builds chunks from the
requests still waiting. Rendering them all again cost as much as the first pass (~3 s per
100k requests of ~9 KB); reading them back from this file costs a fraction of that, and
memory stays flat whatever the job size.

The file only ever serves the process that wrote it, and only once the recording pass went
through every request: a spool left behind by a crash is deleted unread. The requests in it
are exactly the ones recorded in state, even if an input file changes during the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from runner.compile import CompiledRequest

SPOOL_NAME = "requests.spool"


class Spool:
    """`<state>/requests.spool`: per request a JSON header line, then its body line."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / SPOOL_NAME
        self._complete = False
        self.discard()  # a crashed run's leftover is never trusted

    def record(self, requests: Iterable[CompiledRequest]) -> Iterator[CompiledRequest]:
        """Pass `requests` through, writing each down. The spool becomes readable only when
        the last one has gone through."""
        self.discard()
        with self.path.open("wb", buffering=1 << 20) as f:
            for req in requests:
                head = [req.custom_id, req.input_key, req.input_path, req.betas, len(req.line)]
                f.write(orjson.dumps(head) + b"\n")
                f.write(req.line)
                yield req
        self._complete = True

    def replay(self) -> Iterator[CompiledRequest] | None:
        """The recorded requests in their order; None if this run recorded none."""
        return self._read() if self._complete else None

    def _read(self) -> Iterator[CompiledRequest]:
        with self.path.open("rb", buffering=1 << 20) as f:
            while head := f.readline():
                cid, key, path, betas, size = orjson.loads(head)
                yield CompiledRequest(cid, key, path, f.read(size), tuple(betas))

    def discard(self) -> None:
        self._complete = False
        self.path.unlink(missing_ok=True)
