"""`batchrun run/status/cancel/recover` end to end: the real CLI, the official SDK, the
emulator with and without faults."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from runner.store import Store, default_state_dir
from tests.e2e.conftest import EmulatorFactory
from tests.e2e.helpers import (
    DUMMY_KEY,
    assert_exactly_once,
    batchrun,
    dead_letters,
    env_for,
    results,
    write_job,
)

pytestmark = pytest.mark.e2e


def test_happy_path(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """Every input gets one result line; one batch; a cost report is printed."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=5)
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 0, proc.stderr
    assert "5 succeeded" in proc.stdout and "cache hit rate" in proc.stdout
    stats = emu.stats()
    assert stats["batches_created"] == 1 and stats["requests_received"] == 5
    assert_exactly_once(job, 5, stats)
    line = results(job)[0]
    assert line["outcome"] == "succeeded" and "Emulated" in line["text"]
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert DUMMY_KEY.encode() not in path.read_bytes(), f"API key leaked into {path}"
    assert line["cost_usd"] > 0 and line["model"] == "claude-sonnet-4-6"


def test_job_file_alone_means_run(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """`batchrun JOB.yaml` is `batchrun run JOB.yaml`."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=2)
    assert batchrun(emu.base_url, job).returncode == 0
    assert len(results(job)) == 2


def test_rerun_submits_nothing(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=4)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    before = emu.stats()
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 0 and "submitted 0 requests" in proc.stdout
    plan = batchrun(emu.base_url, "plan", "--json", job)
    assert orjson.loads(plan.stdout)[0]["counts"]["done"] == 4, plan.stdout
    after = emu.stats()
    assert (after["batches_created"], after["requests_received"]) == (
        before["batches_created"],
        before["requests_received"],
    )


def test_finished_job_rerun_needs_no_api_nor_sdk(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """A re-run that state proves has nothing to do never connects: it succeeds with the
    API unreachable, and never imports the SDK (about a second of every such run)."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    script = (
        "import sys\nfrom runner.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('SDK imported' if 'anthropic' in sys.modules else 'no SDK')\nsys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "run", str(job)],
        capture_output=True,
        text=True,
        env=env_for("http://127.0.0.1:9"),  # nothing listens there
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "submitted 0 requests" in proc.stdout and "no SDK" in proc.stdout, proc.stdout
    assert len(results(job)) == 3


def test_edited_template_resubmits_all_added_input_only_it(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    old_ids = {r["custom_id"] for r in results(job)}
    write_job(tmp_path, inputs=3, prompt="Now shout {{ input.text }}")
    assert batchrun(emu.base_url, "run", job).returncode == 0
    assert emu.stats()["requests_received"] == 6
    assert not old_ids & {r["custom_id"] for r in results(job)} and len(results(job)) == 3
    write_job(tmp_path, inputs=4, prompt="Now shout {{ input.text }}")
    assert batchrun(emu.base_url, "run", job).returncode == 0
    stats = emu.stats()
    assert stats["requests_received"] == 7
    assert_exactly_once(job, 4, stats)


FAULTS: dict[str, dict[str, Any]] = {
    "http_faults": {
        "seed": 3,
        "http_faults": [
            {"endpoint": "create", "status": 529, "rate": 0.4, "retry_after": 0.05},
            {"endpoint": "create", "status": 429, "rate": 0.3, "retry_after": 0.05},
            {"endpoint": "retrieve", "status": 500, "rate": 0.3},
            {"endpoint": "list", "status": 503, "rate": 0.3, "retry_after": 0.05},
            {"endpoint": "results", "status": 500, "rate": 0.3},
        ],
    },
    "commit_then_fail": {"seed": 5, "create_commit_then_fail": 0.6},
    "results_truncate": {"seed": 7, "results_truncate": 0.5},
    "errored_and_expired": {
        "seed": 11,
        "outcomes": {"errored": 0.3, "expired": 0.2},
        "errored_types": {"overloaded_error": 0.5, "api_error": 0.3, "timeout_error": 0.2},
    },
    "queue_limit": {"seed": 13, "queue_limit": 4, "latency": {"min_s": 0.5, "max_s": 0.5}},
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_fault_kinds_end_exactly_once(
    tmp_path: Path, start_emulator: EmulatorFactory, kind: str
) -> None:
    """Under each fault of the emulator config the run ends with every result, once."""
    emu = start_emulator(FAULTS[kind])
    job = write_job(
        tmp_path, inputs=12, extra="batch: {max_requests: 4}\nretry: {max_attempts: 8}\n"
    )
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_exactly_once(job, 12, emu.stats())
    assert len(results(job)) == 12


def test_non_retryable_errors_are_dead_letters(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """invalid_request_error: a dead letter at once with the API's message; exit 4."""
    emu = start_emulator(
        {"outcomes": {"errored": 1.0}, "errored_types": {"invalid_request_error": 1.0}}
    )
    job = write_job(tmp_path, inputs=3)
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 4, proc.stderr
    letters = dead_letters(job)
    assert len(letters) == 3 and results(job) == []
    assert {d["error_type"] for d in letters} == {"invalid_request_error"}
    assert all(d["error_message"] and d["attempts"] == 1 for d in letters)
    assert emu.stats()["requests_received"] == 3


def test_retryable_errors_exhaust_into_dead_letters(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """overloaded_error every time: retried up to max_attempts, then dead letters."""
    emu = start_emulator({"outcomes": {"errored": 1.0}, "errored_types": {"overloaded_error": 1.0}})
    job = write_job(tmp_path, inputs=2, extra="retry: {max_attempts: 3}\n")
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 4
    assert {d["attempts"] for d in dead_letters(job)} == {3}
    assert emu.stats()["requests_received"] == 6


def test_expired_batches_are_retried(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """A batch still processing after 24 h expires; its requests go into a new batch."""
    emu = start_emulator({"latency": {"min_s": 1e7, "max_s": 1e7}})
    job = write_job(tmp_path, inputs=3, extra="retry: {max_attempts: 2}\n")
    assert batchrun(emu.base_url, "run", "--no-wait", job).returncode == 0
    emu.advance(25 * 3600)
    assert batchrun(emu.base_url, "run", "--no-wait", job).returncode == 0
    assert emu.stats()["results_expired"] == 3
    assert len(emu.stats()["resubmitted_custom_ids"]) == 3
    emu.advance(25 * 3600)
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 4
    assert {d["outcome"] for d in dead_letters(job)} == {"expired"}
    assert_exactly_once(job, 3, emu.stats())


def test_cancel_then_next_run_resubmits(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """cancel stops the in-flight batches; status shows it; the next run finishes the job."""
    emu = start_emulator({"latency": {"min_s": 3600, "max_s": 3600}})
    job = write_job(tmp_path, inputs=3)
    assert batchrun(emu.base_url, "run", "--no-wait", job).returncode == 0
    proc = batchrun(emu.base_url, "cancel", job)
    assert proc.returncode == 0 and "cancel requested for 1 batch(es)" in proc.stdout
    emu.advance(60)
    store = Store.open(default_state_dir(job, "e2e"))
    assert all(b.cancel_requested for b in store.batches())
    store.close()
    # The next plain run collects the canceled requests and submits them again.
    assert batchrun(emu.base_url, "run", "--no-wait", job).returncode == 0
    assert emu.stats()["results_canceled"] == 3
    emu.advance(4000)
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 0, proc.stderr
    stats = emu.stats()
    assert stats["batches_created"] == 2
    assert_exactly_once(job, 3, stats)


def test_status_json(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=2)
    assert batchrun(emu.base_url, "status", job).stdout.strip() == "e2e: never run"
    batchrun(emu.base_url, "run", job)
    proc = batchrun(emu.base_url, "status", "--json", job)
    [report] = orjson.loads(proc.stdout)
    assert report["requests"] == {"succeeded": 2}
    assert report["batches"][0]["collected"] and report["cost"]["cost_usd"] > 0
    text = batchrun(emu.base_url, "status", job).stdout
    assert "msgbatch_" in text and "saved $" in text


def test_recover_after_state_loss(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """State deleted: run refuses (it would pay again); recover re-attaches everything."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=4)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    shutil.rmtree(default_state_dir(job, "e2e"))
    refused = batchrun(emu.base_url, "run", job)
    assert refused.returncode == 1 and "recover" in refused.stderr
    assert batchrun(emu.base_url, "run", job).returncode == 1  # still refused
    proc = batchrun(emu.base_url, "recover", job)
    assert proc.returncode == 0 and "re-attached 1 batch(es)" in proc.stdout
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 0 and "submitted 0 requests" in proc.stdout
    stats = emu.stats()
    assert stats["requests_received"] == 4
    assert_exactly_once(job, 4, stats)


def test_second_concurrent_run_exits_without_submitting(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=2)
    holder = Store.open(default_state_dir(job, "e2e"))
    holder.lock()
    proc = batchrun(emu.base_url, "run", job)
    holder.close()
    assert proc.returncode == 0 and "already running" in proc.stdout
    assert emu.stats()["batches_created"] == 0


def test_no_wait_loop_reaches_the_same_end(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """Separate --no-wait processes, as from cron, with faults on, end like one waiting run."""
    emu = start_emulator(
        {"seed": 2, "latency": {"min_s": 30, "max_s": 90}, "outcomes": {"errored": 0.2},
         "errored_types": {"api_error": 1.0}, "create_commit_then_fail": 0.3}
    )  # fmt: skip
    job = write_job(
        tmp_path, inputs=10, extra="batch: {max_requests: 3}\nretry: {max_attempts: 9}\n"
    )
    for _ in range(30):
        proc = batchrun(emu.base_url, "run", "--no-wait", job)
        assert proc.returncode == 0, proc.stderr[-2000:]
        if "not finished" not in proc.stdout:
            break
        emu.advance(60)
    assert "not finished" not in proc.stdout
    assert_exactly_once(job, 10, emu.stats())
    assert len(results(job)) == 10


def test_missing_api_key_is_a_clean_error(tmp_path: Path) -> None:
    job = write_job(tmp_path, inputs=1)
    proc = batchrun("http://127.0.0.1:9", "run", job, ANTHROPIC_API_KEY="")
    assert proc.returncode == 1 and "ANTHROPIC_API_KEY" in proc.stderr


def test_emulate_flag_runs_in_process(tmp_path: Path) -> None:
    """--emulate needs no key and no server, and leaves the job's own state and output
    alone (its scratch copy: tests/e2e/test_first_hour.py)."""
    job = write_job(tmp_path, inputs=2)
    proc = batchrun("http://127.0.0.1:9", "run", "--emulate", job, ANTHROPIC_API_KEY="")
    assert proc.returncode == 0, proc.stderr
    assert results(job) == [] and not (tmp_path / ".batchrun" / "e2e").exists()
    scratch = tmp_path / ".batchrun" / "_emulate" / "e2e.out" / "e2e.jsonl"
    assert len(scratch.read_bytes().splitlines()) == 2
    again = batchrun("http://127.0.0.1:9", "run", "--emulate", job, ANTHROPIC_API_KEY="")
    assert again.returncode == 0 and len(scratch.read_bytes().splitlines()) == 2


def test_emulate_with_no_wait_is_refused(tmp_path: Path) -> None:
    """One pass against an emulator that ends with the command leaves nothing to resume."""
    job = write_job(tmp_path, inputs=2)
    proc = batchrun("http://127.0.0.1:9", "run", "--emulate", "--no-wait", job)
    assert proc.returncode == 2 and "batchrun emulator" in proc.stderr, proc.stderr
    assert results(job) == [] and not (tmp_path / ".batchrun").exists()


@pytest.mark.parametrize("output", ["files", "sqlite"])
def test_other_sinks_get_every_result_once(
    tmp_path: Path, start_emulator: EmulatorFactory, output: str
) -> None:
    """The files and SQLite sinks behind the same loop, with faults: one result per input."""
    emu = start_emulator({"seed": 4, "create_commit_then_fail": 0.5, "results_truncate": 0.3})
    spec = {"files": "{type: files, path: out/answers}", "sqlite": "{type: sqlite, path: out/r.db}"}
    job = write_job(tmp_path, inputs=6, output=spec[output], extra="batch: {max_requests: 2}\n")
    assert batchrun(emu.base_url, "run", job).returncode == 0
    assert batchrun(emu.base_url, "run", job).returncode == 0
    if output == "files":
        assert len([p for p in (tmp_path / "out" / "answers").rglob("*") if p.is_file()]) == 6
    else:
        db = sqlite3.connect(tmp_path / "out" / "r.db")
        assert db.execute("SELECT COUNT(DISTINCT input_key), COUNT(*) FROM e2e").fetchone() == (
            6,
            6,
        )
        db.close()
    stats = emu.stats()
    assert stats["double_billed_custom_ids"] == {} and stats["requests_received"] == 6


def test_budget_refuses_before_submitting(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3, extra="budget: {max_usd: 0.0000001}\n")
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 1 and "budget" in proc.stderr
    assert emu.stats()["batches_created"] == 0


def test_deleted_output_is_rebuilt_from_state(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """The sink is a projection of the state: remove it and the next run writes it again."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    before = results(job)
    (tmp_path / "out" / "e2e.jsonl").unlink()
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 0 and "submitted 0 requests" in proc.stdout
    assert results(job) == before and emu.stats()["requests_received"] == 3


def test_several_jobs_progress_together(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """`run A B`: B's batches go out on the first pass, not after A has finished."""
    emu = start_emulator({"latency": {"min_s": 3600, "max_s": 3600}})
    a = write_job(tmp_path, name="alpha", inputs=2)
    b = write_job(tmp_path, name="beta", inputs=3)
    assert batchrun(emu.base_url, "run", "--no-wait", a, b).returncode == 0
    assert emu.stats()["batches_created"] == 2
    emu.advance(3600)
    proc = batchrun(emu.base_url, "run", a, b)
    assert proc.returncode == 0 and "alpha: 2 succeeded" in proc.stdout
    assert "beta: 3 succeeded" in proc.stdout
    assert len(results(a)) == 2 and len(results(b)) == 3


def test_result_the_sink_refuses_is_a_dead_letter(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """A files sink with `content: json` cannot hold a non-JSON answer: sink_error dead
    letters, exit 4, and the next run neither resubmits nor fails on them again."""
    emu = start_emulator()
    out = "{type: files, path: out/answers, content: json}"
    job = write_job(tmp_path, inputs=2, output=out)
    proc = batchrun(emu.base_url, "run", job)
    assert proc.returncode == 4, proc.stderr[-2000:]
    letters = [
        orjson.loads(x) for x in (tmp_path / "out" / "answers.dead.jsonl").read_bytes().splitlines()
    ]
    assert {d["error_type"] for d in letters} == {"sink_error"} and len(letters) == 2
    again = batchrun(emu.base_url, "run", job)
    assert again.returncode == 4 and emu.stats()["requests_received"] == 2


def test_lost_state_then_output_removed_starts_over(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Refused for a lost state; removing the output is the explicit way to redo all."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=2)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    shutil.rmtree(default_state_dir(job, "e2e"))
    assert batchrun(emu.base_url, "run", job).returncode == 1
    shutil.rmtree(tmp_path / "out")
    assert batchrun(emu.base_url, "run", job).returncode == 0
    assert len(results(job)) == 2 and emu.stats()["requests_received"] == 4


def test_recover_ignores_other_jobs_batches(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Only batches holding this job's custom_ids are re-attached."""
    emu = start_emulator()
    a = write_job(tmp_path, name="alpha", inputs=2)
    b = write_job(tmp_path, name="beta", inputs=2)
    assert batchrun(emu.base_url, "run", a, b).returncode == 0
    shutil.rmtree(default_state_dir(a, "alpha"))
    proc = batchrun(emu.base_url, "recover", a)
    assert proc.returncode == 0 and "re-attached 1 batch(es)" in proc.stdout
    assert "submitted 0 requests" in batchrun(emu.base_url, "run", a, b).stdout
