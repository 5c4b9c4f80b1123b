"""`batchrun verify JOB [--repair]`: does the sink hold exactly what the job's state holds?

Every drift is printed with its place (sinks/drift.py says what each kind means); exit 1 if
there is any. `--repair` rewrites what drifted from state, atomically, checks again and
exits 0 once the sink matches. Either way the outcome is kept in state, and `status`
says when the sink was last verified.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from runner.commands.outcomes import VERIFIED_META
from runner.commands.wiring import refuse_state_outside, state_dir
from runner.errors import BatchrunError, ExitCode
from runner.sinks import verify
from runner.sinks.drift import Drift, StateView
from runner.spec import JobSpec, load_job
from runner.store import LockHeld, Store

MAX_SHOWN = 200  # drifts printed one by one; the rest are counted by kind


def verify_job(path: Path, repair: bool, root: Path | None) -> int:
    """Compare the job's sink with its state; with `repair`, make it match."""
    job = load_job(path)
    where = state_dir(job, root)
    if not Store.exists(where):
        raise BatchrunError(
            f"{job.name}: no state in {where}: there is nothing to verify the sink against "
            "(run the job first; if its state was lost, `batchrun recover` rebuilds it)"
        )
    refuse_state_outside(job, where)
    store = Store.open(where)
    try:
        try:
            store.lock()
        except LockHeld:
            raise BatchrunError(
                f"{job.name}: a run of this job is in progress: verify once it has ended "
                "(a sink being written cannot be compared)"
            ) from None
        return _verify(job, store, repair)
    finally:
        store.close()


def _verify(job: JobSpec, store: Store, repair: bool) -> int:
    state = StateView(store.iter_results, store.iter_dead)
    drifts = verify.check(job, state)
    _print(drifts)
    left = drifts
    if drifts and repair:
        verify.repair(job, state)
        left = verify.check(job, state)
    _remember(store, len(drifts), bool(drifts) and repair and not left)
    print(_summary(job, drifts, left, repair))
    return ExitCode.ERROR if left else ExitCode.OK


def _print(drifts: list[Drift]) -> None:
    for drift in drifts[:MAX_SHOWN]:
        print(drift.format())
    if len(drifts) > MAX_SHOWN:
        print(f"... and {len(drifts) - MAX_SHOWN} more")


def _summary(job: JobSpec, drifts: list[Drift], left: list[Drift], repair: bool) -> str:
    if not drifts:
        return f"{job.name}: the sink matches the state"
    counts = ", ".join(
        f"{n} {kind}" for kind in ("missing", "duplicated", "altered", "unparsable", "foreign")
        if (n := sum(d.kind == kind for d in drifts))
    )  # fmt: skip
    if not repair:
        return (
            f"{job.name}: the sink drifted from the state ({counts}): "
            f"`batchrun verify --repair {job.path}` rewrites it from the state"
        )
    if left:
        return f"{job.name}: repair left {len(left)} drift(s): see above"
    return f"{job.name}: repaired ({counts}): the sink now matches the state"


def _remember(store: Store, drifts: int, repaired: bool) -> None:
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    record = {"at": at, "drifts": drifts, "repaired": repaired}
    store.set_meta(VERIFIED_META, orjson.dumps(record).decode())
