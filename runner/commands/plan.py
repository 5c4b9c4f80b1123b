"""`batchrun plan`: what a run would submit and what it would cost, against stored state."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from runner import plan
from runner.commands.wiring import Remote, api_errors, backend, stored_states
from runner.errors import ExitCode
from runner.plan import format as plan_format
from runner.spec import load_job


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
    if as_json:
        print(orjson.dumps([p.as_dict() for p in plans], option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n\n".join(plan_format.format_plan(p) for p in plans))
    for p in plans:
        plan.check_budget(p)
    return ExitCode.OK
