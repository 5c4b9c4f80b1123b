"""`batchrun plan` for people: a compact table per job (the JSON twin is `Plan.as_dict`)."""

from __future__ import annotations

from runner.plan import ChunkPlan, Counts, Plan, Tokens, usd


def format_plan(plan: Plan) -> str:
    """A compact table of one job's plan, for a terminal."""
    c, t = plan.counts, plan.tokens
    rows = [
        ("inputs", f"{c.inputs:,} found"),
        ("requests", _requests_row(c)),
        ("batches", _chunks_row(plan.chunks)),
        ("input tokens", _input_tokens_row(t)),
        ("output tokens", f"<= {t.output_max:,} (max_tokens each); typical ~{t.output_typical:,}"),
        ("cost", _cost_row(plan)),
        ("cache", plan.cache_note),
        ("budget", _budget_row(plan)),
    ]
    if plan.cost is not None:
        rows.append(("prices", f"table as of {plan.cost.as_of} (source: {plan.cost.prices})"))
    lines = [f"{plan.job}  ({plan.model})"]
    lines += [f"  {label:<14} {text}" for label, text in rows]
    return "\n".join(lines)


def _requests_row(c: Counts) -> str:
    text = f"{c.to_submit:,} to submit ({c.new:,} new, {c.to_retry:,} to retry)"
    text += f"; {c.unchanged:,} unchanged since the last run"
    text += f" ({c.done:,} done, {c.in_flight:,} in flight, {c.to_retry:,} to retry)"
    if c.superseded:
        text += f"; {c.superseded:,} changed since their last run (results will be replaced)"
    if c.removed:
        text += f"; {c.removed:,} no longer inputs"
    return text


def _chunks_row(chunks: list[ChunkPlan]) -> str:
    if not chunks:
        return "nothing to submit"
    requests = sum(ch.requests for ch in chunks)
    size = _size(sum(ch.bytes for ch in chunks))
    betas = sorted({b for ch in chunks for b in ch.betas})
    noun = "batch" if len(chunks) == 1 else "batches"
    text = f"{len(chunks):,} {noun}: {requests:,} requests, {size}"
    return text + (f", betas {','.join(betas)}" if betas else "")


def _input_tokens_row(t: Tokens) -> str:
    how = "exact (count_tokens)" if t.method == "count_tokens" else "estimate: chars/4"
    text = f"~{t.uncached_input:,} uncached"
    if t.cached:
        text += f" + {t.cache_writes:,} cache write + {t.cache_reads:,} cache read"
    return f"{text} ({how})"


def _cost_row(plan: Plan) -> str:
    cost = plan.cost
    if cost is None:
        return f"cost unknown: no price for {plan.model} (set pricing: in the job)"
    saving = cost.standard_usd - cost.batch_usd
    return (
        f"<= {usd(cost.batch_usd)} at batch prices (typical {usd(cost.batch_typical_usd)}); "
        f"standard API <= {usd(cost.standard_usd)}, batch saves {usd(saving)}"
    )


def _budget_row(plan: Plan) -> str:
    if plan.budget_usd is None:
        return "none set"
    if plan.cost is None:
        return f"{usd(plan.budget_usd)}: cannot be checked, cost unknown"
    verdict = "OVER BUDGET" if plan.over_budget else "within"
    return f"{usd(plan.budget_usd)}: {verdict} (checked against the upper bound)"


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"
