"""runner.executor.recover: a lost state rebuilt from the workspace's batches."""

from __future__ import annotations

from pathlib import Path

from runner.executor import recover
from runner.executor.context import Context
from tests.executor.common import INPUTS, assert_exactly_once, run
from tests.fakes import Harness


def test_recover_reattaches_results_after_state_loss(tmp_path: Path) -> None:
    """State deleted after a full run: recover re-attaches every result, nothing resent."""
    import shutil

    h = Harness(tmp_path, INPUTS)
    run(h)
    shutil.rmtree(h.state)
    ctx = h.context()
    ctx.store.lock()
    assert recover.recover(ctx) == 1
    ctx.store.close()
    summary = run(h)
    assert summary.finished and summary.requests_submitted == 0
    assert_exactly_once(h)


def test_recover_waits_for_processing_batches(tmp_path: Path) -> None:
    """A batch still processing when state was lost is waited for, then re-attached."""
    import shutil

    h = Harness(tmp_path, INPUTS, latency=3)
    run(h, no_wait=True)
    shutil.rmtree(h.state)
    ctx: Context = h.context()
    ctx.store.lock()
    recover.recover(ctx)
    ctx.store.close()
    assert run(h).requests_submitted == 0
    assert_exactly_once(h)
