"""Plan: the job's requests vs. its stored state -> what to submit, with tokens and cost.

Streams over the compiled requests: memory does not grow with the number of inputs beyond
the input keys known to state. Walking every request also means an input the API could never
accept is reported here, before anything is submitted. Estimation rules are documented in
docs/cost-estimates.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from runner import pricing
from runner.compile import BODY_OVERHEAD, CompiledRequest, Packer, iter_compiled
from runner.errors import BudgetExceeded
from runner.plan import diff
from runner.records import SUBMITTABLE, RequestState
from runner.render import Renderer
from runner.spec import JobSpec

CountTokens = Callable[[Mapping[str, Any]], int]
"""The count_tokens endpoint, SDK-free: count-tokens params in, `input_tokens` out."""

CHARS_PER_TOKEN = 4  # the emulator's rule (docs/emulator.md): tokens = ceil(len(text) / 4)
DOCUMENT_BLOCK_TOKENS = 3_000  # a few PDF pages of text plus page images
IMAGE_BLOCK_TOKENS = 1_600  # the cost of a full-size image (about 1.15 megapixels)
TYPICAL_OUTPUT_FRACTION = 0.25  # a typical answer, as a share of max_tokens (not for budgets)

# The count_tokens endpoint takes the prompt-shaping params only (api-contract 2.7).
_COUNTABLE = ("model", "system", "messages", "tools", "tool_choice", "thinking", "output_config")


@dataclass
class Counts:
    """Requests by what happens to them this run."""

    inputs: int = 0
    new: int = 0  # custom_id unknown to state
    unchanged: int = 0  # known to state: done + in_flight + to_retry
    done: int = 0  # succeeded or dead
    in_flight: int = 0
    to_retry: int = 0  # retry, canceled, or known but never submitted (pending)
    superseded: int = 0  # new requests for inputs whose earlier request changed
    removed: int = 0  # input keys in state that are no longer inputs

    @property
    def to_submit(self) -> int:
        return self.new + self.to_retry


@dataclass(frozen=True)
class ChunkPlan:
    requests: int
    bytes: int
    betas: tuple[str, ...]


@dataclass
class Tokens:
    """Estimated tokens of the requests to submit."""

    method: str  # "local" (ceil(chars/4)) or "count_tokens" (exact input counts)
    prefix_per_request: int = 0  # the system prompt
    cached: bool = False  # whether the prefix is expected to be cached
    cache_writes: int = 0
    cache_reads: int = 0
    uncached_input: int = 0  # everything not served from or written to the cache
    output_max: int = 0  # max_tokens per request: the budget uses this upper bound
    output_typical: int = 0


@dataclass
class Cost:
    """USD for the requests to submit; `batch_usd` (output at max_tokens) meets the budget."""

    batch_usd: float = 0.0
    batch_typical_usd: float = 0.0
    standard_usd: float = 0.0
    standard_typical_usd: float = 0.0
    prices: str = ""
    as_of: str = ""


@dataclass
class Plan:
    """What a run of the job would do."""

    job: str
    model: str
    counts: Counts
    chunks: list[ChunkPlan]
    tokens: Tokens
    cost: Cost | None  # None: the model's price is unknown
    cache_note: str
    budget_usd: float | None
    submit_ids: tuple[str, ...] = ()  # the custom_ids to submit, in input order

    @property
    def over_budget(self) -> bool:
        if self.budget_usd is None or self.cost is None:
            return False
        return self.cost.batch_usd > self.budget_usd

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (`batchrun plan --json`)."""
        # A saved plan lists the custom_ids (plan/file.py); a printed one counts them.
        out = asdict(replace(self, submit_ids=()))
        del out["submit_ids"]
        out["counts"]["to_submit"] = self.counts.to_submit
        out["over_budget"] = self.over_budget
        return out


def estimate_text_tokens(text: str) -> int:
    """The local approximation: one token per four characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_content_tokens(content: str | list[dict[str, Any]]) -> int:
    """Tokens of one message's content: text by length, a fixed figure per document/image."""
    if isinstance(content, str):
        return estimate_text_tokens(content)
    total = 0
    for block in content:
        kind = block.get("type")
        if kind == "text":
            total += estimate_text_tokens(block["text"])
        elif kind == "document":
            total += DOCUMENT_BLOCK_TOKENS
        elif kind == "image":
            total += IMAGE_BLOCK_TOKENS
    return total


def _messages_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_content_tokens(m["content"]) for m in messages)


class _Estimator:
    """Adds up tokens and cost request by request, with the cache assumption of the plan:
    the first request submitted writes the cached prefix, every later one reads it."""

    def __init__(self, job: JobSpec, count_tokens: CountTokens | None) -> None:
        self.job = job
        self.count_tokens = count_tokens
        self.prices = pricing.price_for(job.model, job.pricing)
        self.tokens = Tokens("count_tokens" if count_tokens else "local")
        self.cost = Cost() if self.prices else None
        self.geo = job.params.get("inference_geo")
        self.system = self._system_blocks()
        self.tokens.prefix_per_request = self._prefix_tokens()
        self.cache_note = self._cache_note()
        self._prefix_written = False
        ttl = job.system.cache if job.system is not None else None
        self._write_field = f"ephemeral_{ttl or '5m'}_input_tokens"
        self._typical = math.ceil(job.max_tokens * TYPICAL_OUTPUT_FRACTION)
        self._by_tier: dict[pricing.Prices, list[int]] = {}

    def _system_blocks(self) -> list[dict[str, Any]] | None:
        return Renderer(self.job).system

    def _prefix_tokens(self) -> int:
        if self.system is None:
            return 0
        if self.count_tokens is None:
            return estimate_text_tokens(self.system[0]["text"])
        probe = [{"role": "user", "content": "x"}]
        model = self.job.model
        with_system = self.count_tokens({"model": model, "system": self.system, "messages": probe})
        return max(with_system - self.count_tokens({"model": model, "messages": probe}), 0)

    def _cache_note(self) -> str:
        """Decide whether the prefix is cached (sets `tokens.cached`) and say why."""
        system = self.job.system
        prefix = self.tokens.prefix_per_request
        if system is None or system.cache is None:
            return "no prompt caching: every input token is billed at the input rate"
        minimum = self.prices.min_cacheable_tokens if self.prices else None
        if minimum is not None and prefix < minimum:
            return (
                f"the system prompt (~{prefix:,} tokens) is below {self.job.model}'s minimum "
                f"cacheable length ({minimum:,}): nothing is cached, it is billed as input"
            )
        self.tokens.cached = True
        unknown = "" if minimum is not None else " (minimum cacheable length unknown)"
        return (
            f"system prompt cached ({system.cache}): the first request writes ~{prefix:,} "
            f"tokens, later ones read them; batch cache hits are best-effort{unknown}"
        )

    def add(self, params: Mapping[str, Any], line: bytes) -> None:
        """Account for one request to submit."""
        prefix = self.tokens.prefix_per_request
        total = self._prompt_tokens(params, line, prefix)
        rest = total - prefix if self.tokens.cached else total
        write = read = 0
        if self.tokens.cached and not self._prefix_written:
            self._prefix_written = True
            write = prefix
        elif self.tokens.cached:
            read = prefix
        self.tokens.cache_writes += write
        self.tokens.cache_reads += read
        self.tokens.uncached_input += rest
        self.tokens.output_max += self.job.max_tokens
        self.tokens.output_typical += self._typical
        if self.prices is not None:
            # Summed per price tier, priced once in `finish`: a tier's cost is linear.
            sums = self._by_tier.setdefault(self.prices.for_prompt(rest + write + read), [0] * 4)
            sums[0] += rest
            sums[1] += write
            sums[2] += read
            sums[3] += 1

    def _prompt_tokens(self, params: Mapping[str, Any], line: bytes, prefix: int) -> int:
        if self.count_tokens is None:
            return prefix + _messages_tokens(params["messages"])
        exact = orjson.loads(line)["params"]  # plain JSON: the system may be a Fragment
        return self.count_tokens({k: exact[k] for k in _COUNTABLE if k in exact})

    def finish(self) -> None:
        if self.cost is None or self.prices is None:
            return
        us = self.prices.us_geo_applies and self.geo == "us"
        one_hour = self._write_field == "ephemeral_1h_input_tokens"
        for tier, (rest, write, read, n) in self._by_tier.items():
            writes = (0, write) if one_hour else (write, 0)
            for output, typical in ((self.job.max_tokens, False), (self._typical, True)):
                tokens = (rest, *writes, read, output * n)
                batch, standard = pricing.tier_costs(tier, tokens, us)
                if typical:
                    self.cost.batch_typical_usd += batch
                    self.cost.standard_typical_usd += standard
                else:
                    self.cost.batch_usd += batch
                    self.cost.standard_usd += standard
        self.cost.prices = self.prices.source
        self.cost.as_of = self.prices.as_of


def _classify(counts: Counts, state: RequestState | None, key_known: bool) -> bool:
    """Count one request; True when it is to be submitted this run."""
    if state is None:
        counts.new += 1
        counts.superseded += key_known
        return True
    counts.unchanged += 1
    if state.status in SUBMITTABLE:
        counts.to_retry += 1
        return True
    if state.status == "in_flight":
        counts.in_flight += 1
    else:
        counts.done += 1
    return False


class PlanBuilder:
    """A plan built request by request, as a sync pass renders them (`plan.diff.walk`): the
    one definition of what a run submits, shared by `plan`, `run` and `apply`."""

    def __init__(
        self, job: JobSpec, count_tokens: CountTokens | None = None, *, keep_ids: bool = True
    ) -> None:
        self.job = job
        self.keep_ids = keep_ids  # a run's own plan is in state: its ids need no copy here
        self.counts = Counts()
        self.estimator = _Estimator(job, count_tokens)
        self.packer = Packer(job.max_requests, job.max_bytes)
        self.chunks = _ChunkTally()
        self.submit_ids: list[str] = []

    def add(
        self,
        request: CompiledRequest,
        params: Mapping[str, Any] | None,
        state: RequestState | None,
        key_known: bool,
    ) -> bool:
        """Count one rendered request against its `state`; True when it is to be submitted.
        `params` None: read from the request's bytes (a compiler that keeps no dicts)."""
        self.counts.inputs += 1
        if not _classify(self.counts, state, key_known):
            return False
        self.chunks.add(request.betas, len(request.line), self.packer.place(request))
        if params is None:
            params = orjson.loads(request.line)["params"]
        self.estimator.add(params, request.line)
        if self.keep_ids:
            self.submit_ids.append(request.custom_id)
        return True

    def add_unrendered(self, statuses: Mapping[str, int]) -> None:
        """Count the requests of inputs this pass did not render (unchanged), by status."""
        for status, n in statuses.items():
            self.counts.inputs += n
            self.counts.unchanged += n
            if status in SUBMITTABLE:
                self.counts.to_retry += n
            elif status == "in_flight":
                self.counts.in_flight += n
            else:
                self.counts.done += n

    def finish(self, removed: int) -> Plan:
        """The plan; `removed`: input keys state knows that are no longer inputs."""
        self.counts.removed = removed
        self.estimator.finish()
        return Plan(
            job=self.job.name,
            model=self.job.model,
            counts=self.counts,
            chunks=self.chunks.result(),
            tokens=self.estimator.tokens,
            cost=self.estimator.cost,
            cache_note=self.estimator.cache_note,
            budget_usd=self.job.budget_usd,
            submit_ids=tuple(self.submit_ids),
        )


def make_plan(
    job: JobSpec,
    states: Mapping[str, RequestState] | None = None,
    *,
    count_tokens: CountTokens | None = None,
) -> Plan:
    """Compare every request of the job with `states` (custom_id -> state; None: no state
    yet), rendering every input (`plan_job` reads only what changed since the last sync).

    Raises `InputError` for any input that cannot become a request. Does not check the
    budget: see `check_budget`.
    """
    builder = PlanBuilder(job, count_tokens)
    source = diff.FullSource(iter_compiled(job))
    return builder.finish(diff.walk(diff.MappingState(states or {}), source, builder))


def plan_job(
    job: JobSpec, state: diff.StateReads | None, *, count_tokens: CountTokens | None = None
) -> Plan:
    """The plan of a run of `job` against its `state` (None: it never ran), without writing
    anything: only the inputs changed since the last sync are read and rendered."""
    state = state if state is not None else diff.MappingState({})
    builder = PlanBuilder(job, count_tokens)
    source = diff.incremental_source(job, state)
    return builder.finish(diff.walk(state, source, builder))


class _ChunkTally:
    """Chunk sizes as `Packer` assigns them, without building any body; counted in place,
    one list per open chunk, rather than a new ChunkPlan per request."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, ...], list[int]] = {}  # betas -> [requests, bytes]
        self._closed: list[ChunkPlan] = []

    def add(self, betas: tuple[str, ...], size: int, new_chunk: bool) -> None:
        current = self._open.get(betas)
        if current is None or new_chunk:
            if current is not None:
                self._closed.append(ChunkPlan(current[0], current[1], betas))
            self._open[betas] = [1, BODY_OVERHEAD + size]
        else:
            current[0] += 1
            current[1] += 1 + size

    def result(self) -> list[ChunkPlan]:
        return [*self._closed, *(ChunkPlan(n, b, betas) for betas, (n, b) in self._open.items())]


def usd(value: float) -> str:
    """Money for people: cents, or four decimals below a cent so small costs do not read 0."""
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def check_budget(plan: Plan) -> None:
    """Raise `BudgetExceeded` with the figures when the plan's upper-bound batch cost is
    above the job's `budget.max_usd`, or when a budget is set but the cost is unknown (a
    budget is an explicit guard: an unpriced run cannot be shown to respect it)."""
    if plan.budget_usd is not None and plan.cost is None and plan.counts.to_submit:
        raise BudgetExceeded(
            f"{plan.job}: budget.max_usd is set but the cost of {plan.model} is unknown: "
            "add pricing: (USD per million tokens) to the job so the budget can be checked"
        )
    if plan.over_budget and plan.cost is not None:
        raise BudgetExceeded(
            f"{plan.job}: estimated cost {usd(plan.cost.batch_usd)} at batch prices "
            f"(output at max_tokens; typical {usd(plan.cost.batch_typical_usd)}) is above "
            f"budget.max_usd {usd(plan.budget_usd or 0)} for {plan.counts.to_submit:,} requests: "
            "raise the budget, lower max_tokens, or submit fewer inputs"
        )
