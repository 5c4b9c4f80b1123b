"""`budget.max_usd_total`: a budget over every run of a job, not one pass.

A cron-fed job passes each pass's `max_usd` check and can still spend without end. The total
check adds what the job has spent so far (every result its state ever collected, superseded
ones included: that money is gone), an estimate for the requests in flight (at the plan's
average upper-bound cost per request to submit), and the plan's own upper-bound estimate.
"""

from __future__ import annotations

from typing import Protocol

from runner.errors import BudgetExceeded
from runner.plan import Plan, usd


class Spending(Protocol):
    def usage_totals(self) -> dict[str, float]: ...


def spent_usd(store: Spending) -> float:
    """Dollars at batch prices over every result the job's state ever collected."""
    return float(store.usage_totals()["cost_usd"] or 0.0)


def check_total(plan: Plan, limit: float | None, spent: float) -> None:
    """Raise `BudgetExceeded` when submitting this plan could take the job past `limit`."""
    to_submit = plan.counts.to_submit
    if limit is None or not to_submit:
        return
    if plan.cost is None:
        raise BudgetExceeded(
            f"{plan.job}: budget.max_usd_total is set but the cost of {plan.model} is unknown: "
            "add pricing: (USD per million tokens) to the job so the budget can be checked"
        )
    estimate = plan.cost.batch_usd
    in_flight = plan.counts.in_flight * estimate / to_submit
    total = spent + in_flight + estimate
    if total > limit:
        raise BudgetExceeded(
            f"{plan.job}: budget.max_usd_total {usd(limit)} would be exceeded: "
            f"{usd(spent)} spent in earlier runs, about {usd(in_flight)} in flight and "
            f"{usd(estimate)} estimated for the {to_submit:,} requests to submit (output at "
            "max_tokens): raise max_usd_total, lower max_tokens, or submit fewer inputs"
        )


def remaining_line(limit: float, spent: float) -> str:
    """What `plan` prints under a job with a total budget."""
    return f"  budget total   {usd(spent)} spent of {usd(limit)} (budget.max_usd_total)"
