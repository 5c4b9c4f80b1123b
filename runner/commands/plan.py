"""`batchrun plan`: what a run would submit and what it would cost, against stored state;
with `--out`, the plan saved for `batchrun apply`."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from runner import plan
from runner.commands.wiring import Remote, api_errors, backend, read_state
from runner.compile.index import INDEX_META
from runner.errors import ExitCode
from runner.plan import file as plan_file
from runner.plan import format as plan_format
from runner.plan.total import check_total, remaining_line, spent_usd
from runner.spec import JobSpec, load_job
from runner.spec.hints import no_inputs


def make_plans(
    paths: tuple[Path, ...],
    count_tokens: bool,
    root: Path | None,
    remote: Remote,
    out: Path | None = None,
) -> list[plan.Plan]:
    """`batchrun plan`: each job's plan against its stored state; with `count_tokens`,
    exact input counts from the API's count_tokens endpoint (or the emulator's); with
    `out`, the plans saved there (written only if every job could be planned)."""
    jobs = [load_job(p) for p in paths]
    plans: list[plan.Plan] = []
    entries = []
    with contextlib.ExitStack() as stack:
        counter = None
        if count_tokens:
            stack.enter_context(api_errors())
            counter = stack.enter_context(backend(remote)).count_tokens
        for path, job in zip(paths, jobs, strict=True):
            with read_state(job, root) as store:
                p = plan.plan_job(job, store, count_tokens=counter)
                if out is not None:
                    index = store.get_meta(INDEX_META) if store is not None else None
                    entries.append(plan_file.job_entry(job, path, p, index))
            plans.append(p)
    if out is not None and not any(p.over_budget for p in plans):
        plan_file.save(out, entries)
    return plans


def plan_jobs(
    paths: tuple[Path, ...],
    as_json: bool,
    count_tokens: bool,
    root: Path | None,
    emulate: bool,
    out: Path | None = None,
) -> int:
    """Print each job's plan (text or JSON); exit 1 (BudgetExceeded) when one is over budget
    (then no plan is saved)."""
    plans = make_plans(paths, count_tokens, root, Remote(emulate=emulate), out)
    jobs = [load_job(p) for p in paths]
    spent = [_spent(job, root) for job in jobs]
    if as_json:
        print(orjson.dumps([p.as_dict() for p in plans], option=orjson.OPT_INDENT_2).decode())
    else:
        texts = [_text(p, j, s) for p, j, s in zip(plans, jobs, spent, strict=True)]
        print("\n\n".join(texts))
        if out is not None and not any(p.over_budget for p in plans):
            print(f"\nplan saved to {out}: `batchrun apply {out}` submits exactly this")
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
    if job.budget_total_usd is None:
        return 0.0
    with read_state(job, root) as store:
        return spent_usd(store) if store is not None else 0.0
