"""runner.plan: counts against state, chunk sizes, token and cost estimates, budget."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from runner import compile as comp
from runner import plan as plan_
from runner import spec
from runner.cli import cli
from runner.errors import BudgetExceeded, InputError
from runner.plan import format as plan_format
from runner.records import RequestState, RequestStatus
from runner.spec import JobSpec
from tests.conftest import REPO
from tests.jobkit import write_job

SYSTEM_4000 = "s" * 4000  # 1,000 tokens by the local rule


def _job(tmp_path: Path, n: int = 3, **overrides: Any) -> JobSpec:
    files: dict[str, str | bytes] = {f"data/{i}.txt": "t" * 400 for i in range(n)}
    defaults: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "system": {"text": SYSTEM_4000, "cache": "1h"},
        "prompt": "{{ input.text }}",
    }
    return write_job(tmp_path, files, **{**defaults, **overrides})


def _state(request: comp.CompiledRequest, status: RequestStatus) -> RequestState:
    return RequestState(request.custom_id, request.input_key, status, 1)


def test_no_state_means_all_new(tmp_path: Path) -> None:
    plan = plan_.make_plan(_job(tmp_path))
    assert plan.counts.inputs == plan.counts.new == plan.counts.to_submit == 3
    assert plan.counts.unchanged == plan.counts.superseded == plan.counts.removed == 0


def test_counts_against_state(tmp_path: Path) -> None:
    job = _job(tmp_path, n=8)
    reqs = list(comp.iter_requests(job))
    statuses: list[RequestStatus] = [
        "succeeded",
        "dead",
        "in_flight",
        "retry",
        "canceled",
        "pending",
    ]
    states = {r.custom_id: _state(r, s) for r, s in zip(reqs, statuses, strict=False)}
    # reqs[6]: state knows its key under an older custom_id; reqs[7] is new.
    states["br_old"] = RequestState("br_old", reqs[6].input_key, "succeeded", 1)
    states["br_gone"] = RequestState("br_gone", "data/removed.txt", "succeeded", 1)
    c = plan_.make_plan(job, states).counts
    assert (c.inputs, c.new, c.unchanged) == (8, 2, 6)
    assert (c.done, c.in_flight, c.to_retry, c.to_submit) == (2, 1, 3, 5)
    assert (c.superseded, c.removed) == (1, 1)


def test_chunks_match_make_chunks(tmp_path: Path) -> None:
    job = _job(tmp_path, n=10, batch={"max_bytes": 12_000})
    plan = plan_.make_plan(job)
    chunks = list(comp.make_chunks(comp.iter_requests(job), job.max_requests, job.max_bytes))
    assert [(c.requests, c.bytes) for c in plan.chunks] == [
        (len(c.custom_ids), len(c.body)) for c in chunks
    ]
    assert len(plan.chunks) > 1


def test_only_work_to_submit_is_chunked_and_costed(tmp_path: Path) -> None:
    job = _job(tmp_path)
    reqs = list(comp.iter_requests(job))
    plan = plan_.make_plan(job, {reqs[0].custom_id: _state(reqs[0], "succeeded")})
    assert sum(c.requests for c in plan.chunks) == 2
    assert plan.tokens.output_max == 200


def test_cached_estimate_hand_computed(tmp_path: Path) -> None:
    """Sonnet 5.5 (in 2, out 10, 1h write 4, read 0.2), 1,000-token prefix, 100 tokens each:
    batch = 0.5 x (300x2 + 1000x4 + 2000x0.2 + 300x10) / 1e6 = 0.004."""
    plan = plan_.make_plan(_job(tmp_path))
    t = plan.tokens
    assert (t.prefix_per_request, t.cached) == (1000, True)
    assert (t.cache_writes, t.cache_reads, t.uncached_input) == (1000, 2000, 300)
    assert (t.output_max, t.output_typical) == (300, 75)
    assert plan.cost is not None
    assert plan.cost.batch_usd == pytest.approx(0.004)
    assert plan.cost.standard_usd == pytest.approx(0.008)
    assert plan.cost.batch_typical_usd == pytest.approx(0.5 * (600 + 4000 + 400 + 750) / 1e6)
    assert "first request writes ~1,000 tokens" in plan.cache_note


def test_us_inference_geo_param_costs_1_1x(tmp_path: Path) -> None:
    plan = plan_.make_plan(_job(tmp_path, params={"inference_geo": "us"}))
    assert plan.cost is not None and plan.cost.batch_usd == pytest.approx(0.004 * 1.1)


def test_prefix_below_minimum_is_not_cached(tmp_path: Path) -> None:
    """400 tokens is under Sonnet 5.5's 512: the prefix is billed as plain input."""
    plan = plan_.make_plan(_job(tmp_path, system={"text": "s" * 1600, "cache": "5m"}))
    assert not plan.tokens.cached and plan.tokens.cache_writes == 0
    assert plan.tokens.uncached_input == 3 * (400 + 100)
    assert "nothing is cached" in plan.cache_note


def test_image_counts_a_fixed_figure(tmp_path: Path) -> None:
    from tests.jobkit import png_bytes

    job = write_job(
        tmp_path,
        {"img/a.png": png_bytes()},
        input={"glob": "img/*.png", "as": "image"},
        prompt="abcd",
    )
    assert plan_.make_plan(job).tokens.uncached_input == plan_.IMAGE_BLOCK_TOKENS + 1


def test_unknown_model_cost_unknown(tmp_path: Path) -> None:
    plan = plan_.make_plan(_job(tmp_path, model="claude-mythos-preview"))
    assert plan.cost is None
    assert "cost unknown" in plan_format.format_plan(plan)


def test_unknown_cost_with_a_budget_is_refused(tmp_path: Path) -> None:
    plan = plan_.make_plan(_job(tmp_path, model="claude-mythos-preview", budget={"max_usd": 5}))
    with pytest.raises(BudgetExceeded, match="cost of claude-mythos-preview is unknown"):
        plan_.check_budget(plan)


def test_pricing_override_prices_an_unknown_model(tmp_path: Path) -> None:
    job = _job(tmp_path, model="claude-mythos-preview", pricing={"input": 2, "output": 10})
    plan = plan_.make_plan(job)
    assert plan.cost is not None and plan.cost.prices == "the job's pricing: override"


def test_count_tokens_callable_gives_exact_input(tmp_path: Path) -> None:
    """The endpoint counts the system (1,234) plus 50 per message list."""
    calls: list[Mapping[str, Any]] = []

    def fake(params: Mapping[str, Any]) -> int:
        calls.append(params)
        assert "max_tokens" not in params
        return 50 + (1234 if "system" in params else 0)

    plan = plan_.make_plan(_job(tmp_path), count_tokens=fake)
    assert plan.tokens.method == "count_tokens"
    assert plan.tokens.prefix_per_request == 1234
    assert plan.tokens.uncached_input == 150
    assert len(calls) == 2 + 3


def test_oversized_input_refused_before_submitting(tmp_path: Path) -> None:
    job = _job(tmp_path, batch={"max_bytes": 3000})
    with pytest.raises(InputError, match=r"data/0\.txt"):
        plan_.make_plan(job)


def test_plan_cli_table(tmp_path: Path) -> None:
    job = _job(tmp_path, betas=["output-300k-2026-03-24"])
    result = CliRunner().invoke(cli, ["plan", str(job.path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 to submit (3 new, 0 to retry)" in out
    assert "1 batch: 3 requests" in out and "betas output-300k-2026-03-24" in out
    assert "<= $0.0040 at batch prices" in out and "standard API <= $0.0080" in out


def test_plan_table_with_state(tmp_path: Path) -> None:
    job = _job(tmp_path, n=4)
    reqs = list(comp.iter_requests(job))
    states = {reqs[0].custom_id: _state(reqs[0], "succeeded")}
    states[reqs[1].custom_id] = _state(reqs[1], "retry")
    text = plan_format.format_plan(plan_.make_plan(job, states))
    assert "3 to submit (2 new, 1 to retry)" in text
    assert "2 unchanged since the last run (1 done, 0 in flight, 1 to retry)" in text


def test_plan_cli_json(tmp_path: Path) -> None:
    job = _job(tmp_path)
    result = CliRunner().invoke(cli, ["plan", "--json", str(job.path)])
    assert result.exit_code == 0, result.output
    (data,) = orjson.loads(result.output)
    assert data["counts"]["to_submit"] == 3 and data["cost"]["batch_usd"] == pytest.approx(0.004)
    assert data["over_budget"] is False


def test_budget_exceeded_exits_1_with_figures(tmp_path: Path) -> None:
    job = _job(tmp_path, budget={"max_usd": 0.001})
    result = CliRunner().invoke(cli, ["plan", str(job.path)])
    assert result.exit_code == 1
    assert "OVER BUDGET" in result.output
    assert "estimated cost $0.0040 at batch prices" in result.output
    assert "budget.max_usd $0.0010 for 3 requests" in result.output


def test_count_tokens_replaces_the_local_estimate(tmp_path: Path) -> None:
    """Given a count_tokens callable, the plan reports its exact input counts."""

    def count_tokens(params: Mapping[str, Any]) -> int:
        return 7 + (1000 if "system" in params else 0)

    plan = plan_.make_plan(_job(tmp_path), None, count_tokens=count_tokens)
    data = plan.as_dict()
    assert data["tokens"]["method"] == "count_tokens"
    assert data["tokens"]["prefix_per_request"] == 1000
    assert data["tokens"]["uncached_input"] == 21


def test_repository_quickstart_plans() -> None:
    """The shipped example job compiles and plans from the repository's own data."""
    plan = plan_.make_plan(spec.load_job(REPO / "jobs" / "quickstart.yaml"))
    assert plan.counts.inputs == plan.counts.new > 0
    assert plan.cost is not None and len(plan.chunks) == 1
