"""The run report: what `run --json` prints and what `notify:` sends, one shape for both.

Per job: finished or not, the exit code it contributes, requests by status, what this run
submitted, cost so far, the dead letters (the first `MAX_DEAD`, with their count), where the
results and state are. No secret is in it: paths only, and a state URL's password masked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from runner import log
from runner.commands.outcomes import RunResult
from runner.errors import ExitCode

MAX_DEAD = 100  # dead letters listed in a report; `dead_letters.count` has them all
_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@/\s]+@")


def job_report(r: RunResult) -> dict[str, Any]:
    """One job's part of the report."""
    counts = dict(r.counts)
    return {
        "job": r.job,
        "job_file": str(r.job_path),
        "finished": r.finished,
        "exit_code": r.exit_code,
        "already_running": r.already_running,
        "no_wait": r.no_wait,
        "emulated": r.emulated is not None,
        "no_inputs": r.no_inputs,
        "requests": {"total": sum(counts.values()), **counts},
        "submitted": {"requests": r.requests_submitted, "batches": r.batches_submitted},
        "cost_usd": r.cost_usd if counts.get("succeeded") else None,
        "standard_cost_usd": r.cost.get("standard_cost_usd") if counts.get("succeeded") else None,
        "dead_letters": {"count": r.dead_letters, "first": list(r.dead)[:MAX_DEAD]},
        "output": _masked(str(r.output)),
        "state_dir": _masked(str(r.state_dir)),
    }


def report(results: Sequence[RunResult]) -> dict[str, Any]:
    """The whole run: the exit code (the worst job's) and each job's report."""
    code = max((r.exit_code for r in results), default=ExitCode.OK)
    return {"exit_code": int(code), "jobs": [job_report(r) for r in results]}


def _masked(text: str) -> str:
    """A path or URL with any URL password and known secret masked."""
    return log.mask(_PASSWORD.sub(r"\1***@", text))
