"""What `run`, `status`, `cancel` and `recover` end with, as values: commands.py returns them,
the CLI prints them (`format_*`), the Python API (runner.api) hands them to the caller. One
code path for both, so a script sees exactly what the command line reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from runner.errors import ExitCode
from runner.executor.loop import RunSummary
from runner.records import DeadLetter
from runner.spec.hints import shown
from runner.store import Store


@dataclass(frozen=True)
class RunResult:
    """One job's end of `run` (or of one `--no-wait` pass).

    `summary` is what the executor ended with (None when another run held the job's lock):
    `counts` are the job's current requests by status (succeeded, dead, canceled, in_flight,
    pending, retry). `already_running` means another run held the job's lock: this one
    submitted nothing and left the state alone. `cost` is the cost report `run` prints:
    `tokens` by category, `cache_hit_rate`, `cost_usd`, `standard_cost_usd`, `saved_usd`
    (the dollar figures are None when the model has no price).
    """

    job: str
    job_path: Path
    output: Path | str  # the local path, else a URL or table (OutputSpec.where)
    state_dir: Path
    summary: RunSummary | None = None
    no_wait: bool = False
    cost: Mapping[str, Any] = field(default_factory=dict)
    # With --emulate: the scratch `--state-dir` holding this run's state (and its outputs).
    emulated: Path | None = None
    dead: Sequence[Mapping[str, Any]] = ()  # the first dead letters (`run_report.MAX_DEAD`)
    no_inputs: str | None = None  # why the job has no inputs, when it has none
    notified: Sequence[str] = ()  # `event:channel` pairs this run delivered

    @property
    def already_running(self) -> bool:
        return self.summary is None

    @property
    def counts(self) -> Mapping[str, int]:
        return self.summary.counts if self.summary else {}

    @property
    def requests_submitted(self) -> int:
        return self.summary.requests_submitted if self.summary else 0

    @property
    def batches_submitted(self) -> int:
        return self.summary.batches_submitted if self.summary else 0

    @property
    def finished(self) -> bool:
        return self.summary.finished if self.summary else False

    @property
    def dead_letters(self) -> int:
        return self.summary.dead if self.summary else 0

    @property
    def canceled(self) -> int:
        return self.summary.canceled if self.summary else 0

    @property
    def cost_usd(self) -> float | None:
        """Dollars at batch prices over every succeeded request so far (None: unpriced)."""
        value = self.cost.get("cost_usd")
        return float(value) if value is not None else None

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this job: 0 done (or not finished: run again), 4 finished
        with dead letters, 1 finished with requests left canceled."""
        if self.already_running or not self.finished:
            return ExitCode.OK
        if self.dead_letters:
            return ExitCode.DEAD_LETTERS
        return ExitCode.ERROR if self.canceled else ExitCode.OK


def format_run(r: RunResult) -> list[str]:
    """The lines `batchrun run` prints for one job."""
    if r.already_running:
        return [f"{r.job}: already running (lock held in {r.state_dir}); nothing submitted"]
    if r.no_inputs is not None:
        return [f"{r.job}: {r.no_inputs}; nothing submitted"]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(r.counts.items()) if v)
    n = r.batches_submitted
    where = f"results in {shown(r.output)}" + (" (a scratch copy)" if r.emulated else "")
    lines = [
        f"{r.job}: {counts or 'no requests'}",
        f"  submitted {r.requests_submitted} requests in {n} batch{'es' * (n != 1)} "
        f"this run; {where}",
    ]
    if r.counts.get("succeeded"):  # before any result, the cost lines would all read 0
        lines += [f"  {line}" for line in format_cost(dict(r.cost))]
    status = f"batchrun status {_state_option(r)}{shown(r.job_path)}"
    if not r.finished:
        lines.append("  not finished: run again to continue" if r.no_wait else "  not finished")
    elif r.dead_letters:
        lines.append(f"  {r.dead_letters} dead letters (see `{status}`)")
    elif r.canceled:
        lines.append(f"  {r.canceled} requests canceled: the next run resubmits them")
    if r.emulated is not None:
        lines.append(
            f"  emulated: state and outputs are a scratch copy in {shown(r.emulated)}; the "
            f"job's own are untouched. Read it with `{status}` or `batchrun export "
            f"{_state_option(r)}{shown(r.job_path)}`"
        )
    return lines


def _state_option(r: RunResult) -> str:
    return f"--state-dir {shown(r.emulated)} " if r.emulated is not None else ""


@dataclass(frozen=True)
class StatusReport:
    """A job's state as `status` shows it, read without the lock and without any API call.

    `batches`: dicts with id, status, requests, counts, age_s, collected. `dead_letters`:
    dicts with input_key, custom_id, error_type, error_message, attempts. `cost` as in
    `RunResult.cost` (None if the job never ran).
    """

    job: str
    never_run: bool = False
    requests: Mapping[str, int] = field(default_factory=dict)
    batches: Sequence[Mapping[str, Any]] = ()
    dead_letters: Sequence[Mapping[str, Any]] = ()
    cost: Mapping[str, Any] | None = None
    sink_verified: Mapping[str, Any] | None = None  # the last `verify`: at, drifts, repaired

    @property
    def dead_letters_by_type(self) -> dict[str, int]:
        """How many dead letters of each error type (invalid_output, refusal, ...)."""
        found = Counter(str(d.get("error_type")) for d in self.dead_letters)
        return dict(sorted(found.items()))

    def as_dict(self) -> dict[str, Any]:
        """Exactly what `status --json` prints for this job."""
        if self.never_run:
            return {"job": self.job, "requests": {}, "batches": [], "never_run": True}
        return {
            "job": self.job,
            "requests": dict(self.requests),
            "batches": list(self.batches),
            "dead_letters": list(self.dead_letters),
            "dead_letters_by_type": self.dead_letters_by_type,
            "cost": self.cost,
            "sink_verified": self.sink_verified,
        }


def status_report(job_name: str, store: Store, now: datetime | None = None) -> StatusReport:
    """The job's state as `status` shows it."""
    now = now or datetime.now(UTC)
    batches = [
        {
            "id": b.id,
            "status": b.status,
            "requests": b.request_count,
            "counts": b.counts,
            "age_s": round(_age(b.created_at, now), 1),
            "collected": b.collected,
        }
        for b in store.batches()
    ]
    return StatusReport(
        job=job_name,
        requests=store.status_counts(),
        batches=tuple(batches),
        dead_letters=tuple(dead_letter_dict(d) for d in store.iter_dead()),
        cost=cost_report(store),
        sink_verified=last_verified(store),
    )


def dead_letter_dict(d: DeadLetter) -> dict[str, Any]:
    return {
        "input_key": d.input_key,
        "custom_id": d.custom_id,
        "error_type": d.error_type,
        "error_message": d.error_message,
        "attempts": d.attempts,
    }


def format_status(s: StatusReport) -> str:
    """The text `batchrun status` prints for one job."""
    if s.never_run:
        return f"{s.job}: never run"
    total = sum(s.requests.values())
    lines = [f"{s.job}: {total} requests: " + _counts(s.requests)]
    for b in s.batches:
        state = "collected" if b["collected"] else b["status"]
        lines.append(
            f"  {b['id']}  {state:<11} {b['requests']:>6} requests  "
            f"age {_duration(b['age_s'])}  {_counts(b['counts'])}"
        )
    if s.requests.get("succeeded"):  # before any result the cost lines would all read 0
        lines += ["  " + line for line in format_cost(dict(s.cost or {}))]
    lines.append("  " + _verified(s.sink_verified))
    if s.dead_letters:
        by_type = s.dead_letters_by_type
        lines.append("  dead letters: " + ", ".join(f"{n} {t}" for t, n in by_type.items()))
    for d in s.dead_letters[:20]:
        lines.append(f"  dead: {d['input_key']}: {d['error_type']}: {d['error_message']}")
    if len(s.dead_letters) > 20:
        lines.append(f"  ... and {len(s.dead_letters) - 20} more dead letters")
    return "\n".join(lines)


VERIFIED_META = "sink_verified"  # what `verify` last found, as JSON: at, drifts, repaired


def last_verified(store: Store) -> dict[str, Any] | None:
    """What the last `verify` found (at, drifts, repaired), or None if never run."""
    raw = store.get_meta(VERIFIED_META)
    try:
        found = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _verified(last: Mapping[str, Any] | None) -> str:
    if last is None:
        return "sink: never verified (`batchrun verify JOB` compares it with the state)"
    found = "matched the state" if not last.get("drifts") else f"{last['drifts']} drift(s)"
    done = ", repaired" if last.get("repaired") else ""
    return f"sink: last verified {last.get('at')}: {found}{done}"


@dataclass(frozen=True)
class CancelResult:
    """`cancel` for one job: the ids of the batches it asked the API to cancel (None: the
    job never ran, there was nothing to cancel)."""

    job: str
    batches: tuple[str, ...] | None


def format_cancel(c: CancelResult) -> str:
    if c.batches is None:
        return f"{c.job}: never run, nothing to cancel"
    return f"{c.job}: cancel requested for {len(c.batches)} batch(es)"


@dataclass(frozen=True)
class RecoverResult:
    """`recover` for one job: how many batches were re-attached and the requests by status
    after; `locked` means a run held the job's lock and nothing was done."""

    job: str
    batches_reattached: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    locked: bool = False


def format_recover(r: RecoverResult) -> str:
    if r.locked:
        return f"{r.job}: a run holds the lock; nothing to recover now"
    return f"{r.job}: re-attached {r.batches_reattached} batch(es); requests: {dict(r.counts)}"


def cost_report(store: Store) -> dict[str, Any]:
    """Tokens by category over every succeeded request, cache hit rate, dollars at batch
    prices and what the same work would have cost on the standard API."""
    t = store.usage_totals()
    prompt = t["input"] + t["cache_write_5m"] + t["cache_write_1h"] + t["cache_read"]
    known = t["priced"] == t["succeeded"]
    return {
        "tokens": {
            "input": int(t["input"]),
            "cache_write_5m": int(t["cache_write_5m"]),
            "cache_write_1h": int(t["cache_write_1h"]),
            "cache_read": int(t["cache_read"]),
            "output": int(t["output"]),
        },
        "cache_hit_rate": round(t["cache_read"] / prompt, 4) if prompt else 0.0,
        "cost_usd": round(t["cost_usd"], 6) if known else None,
        "standard_cost_usd": round(t["standard_cost_usd"], 6) if known else None,
        "saved_usd": round(t["standard_cost_usd"] - t["cost_usd"], 6) if known else None,
    }


def format_cost(cost: dict[str, Any]) -> list[str]:
    tok = cost["tokens"]
    lines = [
        "tokens: {input} input, {cache_write_5m} cache write 5m, {cache_write_1h} cache write "
        "1h, {cache_read} cache read, {output} output".format(**tok),
        f"cache hit rate: {cost['cache_hit_rate']:.1%}",
    ]
    if cost["cost_usd"] is None:
        lines.append("cost: unknown (no price for this model)")
    else:
        lines.append(
            f"cost: ${cost['cost_usd']:.4f} at batch prices "
            f"(${cost['standard_cost_usd']:.4f} on the standard API, "
            f"saved ${cost['saved_usd']:.4f})"
        )
    return lines


def _age(created_at: str, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (now - created).total_seconds())


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v) or "none"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
