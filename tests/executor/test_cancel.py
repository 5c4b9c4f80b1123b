"""runner.executor.cancel: a cancelled batch's requests wait for the next plain run."""

from __future__ import annotations

from pathlib import Path

from runner.executor import cancel
from tests.executor.common import INPUTS, run
from tests.fakes import Harness


def test_cancel_is_not_retried_until_next_plain_run(tmp_path: Path) -> None:
    """Canceled by `batchrun cancel`: status canceled; the next run resubmits them."""
    h = Harness(tmp_path, INPUTS, latency=3)
    run(h, no_wait=True)
    ctx = h.context()
    assert len(cancel.cancel_job(ctx)) == 1
    ctx.store.close()
    ctx = h.context()
    ctx.store.lock()
    from runner.executor import collect

    collect.poll(ctx)  # what a waiting run would do on its next pass
    assert ctx.store.status_counts() == {"canceled": 10}
    ctx.store.close()
    summary = run(h)
    assert summary.counts == {"succeeded": 10}
    assert all(n == 2 for n in h.api.submissions.values())
