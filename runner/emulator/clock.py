"""The emulated clock: wall time plus an offset that tests (and CI users) move forward, so a
24 h expiry or a 29 day archive happens at once instead of after a day."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Seconds since the epoch on the emulated timeline. Thread-safe; never goes backwards."""

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward; negative moves are refused to keep causality."""
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        with self._lock:
            self._offset += seconds


def rfc3339(ts: float) -> str:
    """Microseconds and `Z`, the form the API's documentation examples use."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
