"""Keeps the cyclic GC out of the emulator's bulk work: parsing a create body, summarising
its requests, processing them. A 100k-request body is over a million new containers; the
collections they trigger (full ones included, each walking every object built so far, and
every record and outcome the emulator holds) more than doubled the parse time and cost
processing as much as the processing itself. None of that work makes cycles: a parsed
JSON tree, records and outcomes have none, so nothing is left for the GC to find."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class _GcPause:
    """Threads in bulk work at once share one pause, and a GC the host process had
    disabled stays disabled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._restore = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._restore = gc.isenabled()
                gc.disable()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._restore:
                    gc.enable()


gc_paused = _GcPause()
