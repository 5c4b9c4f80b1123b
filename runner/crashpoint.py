"""Named crash points for the chaos tests: `BATCHRUN_TEST_CRASH_AT=<point>:<n>` kills this
process with SIGKILL the n-th time it reaches <point> (1-based). Unset, it costs one dict
lookup. The points name the windows the executor's crash-safety argument is about."""

from __future__ import annotations

import os
import signal

POINTS = (
    "compile",  # while recording the job's requests in state
    "after_intent",  # intent committed, create not sent
    "after_create",  # create answered, batch id not stored
    "create_failed",  # create failed (maybe committed), nothing reconciled yet
    "after_attach",  # batch id stored
    "mid_collect",  # inside the results transaction
    "after_results_stored",  # results committed, sink not written
    "mid_sink_write",  # some sink lines written, not all
    "after_sink_write",  # sink flushed, rows not marked written
)

_counts: dict[str, int] = {}


def hit(point: str) -> None:
    """Die here if the test environment asks for it."""
    target = os.environ.get("BATCHRUN_TEST_CRASH_AT")
    if not target:
        return
    name, _, nth = target.partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
