"""`batchrun apply PLAN.json`: submit exactly what a saved plan lists, then carry on like
`run` (poll, collect, retry); refused when the plan is stale."""

from __future__ import annotations

from pathlib import Path

from runner.commands import outcomes
from runner.commands.run import run_results
from runner.commands.wiring import Remote, read_state
from runner.compile.index import INDEX_META
from runner.errors import BatchrunError
from runner.plan import file as plan_file
from runner.spec import load_job


def apply_plan(plan_path: Path, no_wait: bool, root: Path | None, remote: Remote) -> int:
    """Check every job of the plan against its files now, then run them all, each limited
    to its plan's requests. A stale plan submits nothing (exit 1, naming what changed)."""
    saved = plan_file.load(plan_path)
    jobs = []
    for entry in saved:
        if not entry.path.is_file():
            raise BatchrunError(
                f"{plan_path}: the plan's job file {entry.path} is not here: apply the plan "
                "from the folder it was made in"
            )
        job = load_job(entry.path)
        with read_state(job, root) as store:
            index = store.get_meta(INDEX_META) if store is not None else None
        plan_file.refuse_if_stale(plan_path, entry, job, index)
        jobs.append(job)
    results = run_results(jobs, no_wait, root, remote, planned=[e.submit for e in saved])
    for r in sorted(results, key=lambda r: not r.already_running):
        print("\n".join(outcomes.format_run(r)))
    return max(r.exit_code for r in results)
