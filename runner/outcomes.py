"""What `run`, `status`, `cancel` and `recover` end with, as values: commands.py returns them,
the CLI prints them (`format_*`), the Python API (runner.api) hands them to the caller. One
code path for both, so a script sees exactly what the command line reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import report

EXIT_OK, EXIT_ERROR, EXIT_DEAD_LETTERS = 0, 1, 4


@dataclass(frozen=True)
class RunResult:
    """One job's end of `run` (or of one `--no-wait` pass).

    `counts` are the job's current requests by status (succeeded, dead, canceled, in_flight,
    pending, retry). `already_running` means another run held the job's lock: this one
    submitted nothing and left the state alone. `cost` is the cost report `run` prints:
    `tokens` by category, `cache_hit_rate`, `cost_usd`, `standard_cost_usd`, `saved_usd`
    (the dollar figures are None when the model has no price).
    """

    job: str
    job_path: Path
    output: Path
    state_dir: Path
    counts: Mapping[str, int] = field(default_factory=dict)
    requests_submitted: int = 0
    batches_submitted: int = 0
    finished: bool = False
    no_wait: bool = False
    already_running: bool = False
    cost: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dead_letters(self) -> int:
        return self.counts.get("dead", 0)

    @property
    def canceled(self) -> int:
        return self.counts.get("canceled", 0)

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
            return EXIT_OK
        if self.dead_letters:
            return EXIT_DEAD_LETTERS
        return EXIT_ERROR if self.canceled else EXIT_OK


def format_run(r: RunResult) -> list[str]:
    """The lines `batchrun run` prints for one job."""
    if r.already_running:
        return [f"{r.job}: already running (lock held in {r.state_dir}); nothing submitted"]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(r.counts.items()) if v)
    n = r.batches_submitted
    lines = [
        f"{r.job}: {counts or 'no requests'}",
        f"  submitted {r.requests_submitted} requests in {n} batch{'es' * (n != 1)} "
        f"this run; results in {r.output}",
    ]
    lines += [f"  {line}" for line in report.format_cost(dict(r.cost))]
    if not r.finished:
        lines.append("  not finished: run again to continue" if r.no_wait else "  not finished")
    elif r.dead_letters:
        lines.append(f"  {r.dead_letters} dead letters (see `batchrun status {r.job_path}`)")
    elif r.canceled:
        lines.append(f"  {r.canceled} requests canceled: the next run resubmits them")
    return lines


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

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> StatusReport:
        """From `report.status_report`'s dict."""
        return cls(
            job=data["job"],
            requests=data["requests"],
            batches=tuple(data["batches"]),
            dead_letters=tuple(data["dead_letters"]),
            cost=data["cost"],
        )

    def as_dict(self) -> dict[str, Any]:
        """Exactly what `status --json` prints for this job."""
        if self.never_run:
            return {"job": self.job, "requests": {}, "batches": [], "never_run": True}
        return {
            "job": self.job,
            "requests": dict(self.requests),
            "batches": list(self.batches),
            "dead_letters": list(self.dead_letters),
            "cost": self.cost,
        }


def format_status(s: StatusReport) -> str:
    return f"{s.job}: never run" if s.never_run else report.format_status(s.as_dict())


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
