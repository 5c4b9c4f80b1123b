"""`batchrun plan`: what a run would submit and what it would cost, against stored state."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from runner import plan
from runner.commands.wiring import (
    Remote,
    api_errors,
    backend,
    state_dir,
    stored_states,
)
from runner.errors import ExitCode
from runner.plan import format as plan_format
from runner.plan.total import check_total, remaining_line, spent_usd
from runner.spec import JobSpec, load_job
from runner.spec.hints import no_inputs
from runner.store import Store


def make_plans(
    paths: tuple[Path, ...], count_tokens: bool, root: Path | None, remote: Remote
) -> list[plan.Plan]:
    """`batchrun plan`: each job's plan against its stored state; with `count_tokens`,
    exact input counts from the API's count_tokens endpoint (or the emulator's)."""
    jobs = [load_job(p) for p in paths]
    with contextlib.ExitStack() as stack:
        counter = None
        if count_tokens:
            stack.enter_context(api_errors())
            counter = stack.enter_context(backend(remote)).count_tokens
        return [plan.make_plan(j, stored_states(j, root), count_tokens=counter) for j in jobs]


def plan_jobs(
    paths: tuple[Path, ...], as_json: bool, count_tokens: bool, root: Path | None, emulate: bool
) -> int:
    """Print each job's plan (text or JSON); exit 1 (BudgetExceeded) when one is over budget."""
    plans = make_plans(paths, count_tokens, root, Remote(emulate=emulate))
    jobs = [load_job(p) for p in paths]
    spent = [_spent(job, root) for job in jobs]
    if as_json:
        print(orjson.dumps([p.as_dict() for p in plans], option=orjson.OPT_INDENT_2).decode())
    else:
        texts = [_text(p, j, s) for p, j, s in zip(plans, jobs, spent, strict=True)]
        print("\n\n".join(texts))
    for p, job, s in zip(plans, jobs, spent, strict=True):
        plan.check_budget(p)
        check_total(p, job.budget_total_usd, s)
    return ExitCode.OK


def _text(p: plan.Plan, job: JobSpec, spent: float) -> str:
    """The plan's table, with a job's total budget and a word when it has no inputs."""
    lines = [plan_format.format_plan(p)]
    if job.budget_total_usd is not None:
        lines.append(remaining_line(job.budget_total_usd, spent))
    if not p.counts.inputs:
        lines.append(f"  {no_inputs(job)}")
    return "\n".join(lines)


def _spent(job: JobSpec, root: Path | None) -> float:
    """What the job has spent over all its runs (0 if it never ran)."""
    where = state_dir(job, root)
    if job.budget_total_usd is None or not Store.exists(where):
        return 0.0
    store = Store.open(where)
    try:
        return spent_usd(store)
    finally:
        store.close()
