"""runner.api end to end: the real executor, the official SDK and the emulator, in-process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner import api, emulator
from runner.store import Store, default_state_dir
from tests.e2e.helpers import assert_exactly_once, dead_letters, results, write_job

pytestmark = pytest.mark.e2e

KEY = "sk-ant-api-test-key-0123456789"


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """The API configures structlog once per process; give every other test its default."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def emu() -> Iterator[Any]:
    with emulator.start(api_key=KEY) as server:
        yield server


def _run(job: Path, emu: Any, **kwargs: Any) -> api.RunResult:
    return api.run(job, base_url=emu.base_url, api_key=KEY, **kwargs)


def _billed(emu: Any) -> tuple[int, int]:
    stats = emu.stats()
    return stats["batches_created"], stats["requests_received"]


def test_run_to_completion(tmp_path: Path, emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A run returns a finished result with exit code 0, the cost, and prints nothing."""
    job = write_job(tmp_path, inputs=4)
    result = _run(job, emu)
    assert result.finished and result.exit_code == 0 and not result.already_running
    assert dict(result.counts) == {"succeeded": 4}
    assert (result.requests_submitted, result.batches_submitted) == (4, 1)
    assert result.output == job.parent / "out" / "e2e.jsonl" and len(results(job)) == 4
    assert result.cost_usd is not None and result.cost_usd > 0
    assert_exactly_once(job, 4, emu.stats())
    assert capsys.readouterr().out == ""


def test_rerun_submits_nothing_and_status_and_plan_agree(tmp_path: Path, emu: Any) -> None:
    """A second run submits nothing (the emulator bills nothing more); status and plan read
    the same state."""
    job = write_job(tmp_path, inputs=3)
    _run(job, emu)
    before = _billed(emu)
    again = _run(job, emu)
    assert again.requests_submitted == 0 and again.exit_code == 0 and again.finished
    assert _billed(emu) == before
    report = api.status(job)
    assert not report.never_run and dict(report.requests) == {"succeeded": 3}
    assert len(report.batches) == 1 and report.batches[0]["collected"]
    assert report.as_dict()["job"] == "e2e"
    counts = api.plan(api.load(job)).counts
    assert (counts.done, counts.to_submit) == (3, 0)


def test_status_and_plan_before_any_run(tmp_path: Path) -> None:
    job = write_job(tmp_path, inputs=2)
    assert api.status(job).never_run
    assert api.plan(job).counts.new == 2


def test_state_dir_is_the_cli_option(tmp_path: Path, emu: Any) -> None:
    """`state_dir=D` keeps the state in D/<job name>/, like --state-dir."""
    job = write_job(tmp_path, inputs=2)
    result = _run(job, emu, state_dir=tmp_path / "states")
    assert result.state_dir == tmp_path / "states" / "e2e"
    assert Store.exists(tmp_path / "states" / "e2e")
    assert api.status(job).never_run
    assert dict(api.status(job, state_dir=tmp_path / "states").requests) == {"succeeded": 2}


def test_dead_letters_exit_code_4(tmp_path: Path) -> None:
    """Non-retryable errors end as dead letters; the result says so with exit code 4."""
    config = {"outcomes": {"errored": 1.0}, "errored_types": {"invalid_request_error": 1.0}}
    job = write_job(tmp_path, inputs=3)
    with emulator.start(config) as server:
        result = api.run(job, base_url=server.base_url, api_key=KEY)
    assert result.finished and result.dead_letters == 3 and result.exit_code == 4
    assert len(dead_letters(job)) == 3
    assert len(api.status(job).dead_letters) == 3


def test_no_wait_is_one_pass(tmp_path: Path) -> None:
    """wait=False submits and returns; not finished is still exit code 0 (cron mode)."""
    job = write_job(tmp_path, inputs=2)
    with emulator.start({"latency": {"min_s": 3600, "max_s": 3600}}) as server:
        result = api.run(job, wait=False, base_url=server.base_url, api_key=KEY)
        assert not result.finished and result.exit_code == 0
        assert result.requests_submitted == 2 and result.counts["in_flight"] == 2
        canceled = api.cancel(job, base_url=server.base_url, api_key=KEY)
        assert canceled.batches is not None and len(canceled.batches) == 1


def test_spec_error_carries_every_diagnostic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: Bad Name\nmodel: 42\n")
    with pytest.raises(api.SpecError) as info:
        api.load(bad)
    assert len(info.value.diagnostics) >= 3
    assert all(d.file.endswith("bad.yaml") for d in info.value.diagnostics)
    with pytest.raises(api.SpecError):
        api.run(bad, base_url="http://127.0.0.1:9", api_key=KEY)


def test_lock_held_returns_without_submitting(tmp_path: Path, emu: Any) -> None:
    """Another holder of the job's lock: the run says so and submits nothing."""
    job = write_job(tmp_path, inputs=2)
    holder = Store.open(default_state_dir(job, "e2e"))
    holder.lock()
    try:
        result = _run(job, emu)
    finally:
        holder.close()
    assert result.already_running and result.exit_code == 0 and not result.finished
    assert _billed(emu) == (0, 0)


def test_concurrent_runs_in_threads_submit_once(tmp_path: Path) -> None:
    """Two threads run one job: the second returns at once, the first finishes the job."""
    job = write_job(tmp_path, inputs=3)
    with emulator.start({"latency": {"min_s": 1.0, "max_s": 1.0}}) as server:
        first: list[api.RunResult] = []
        worker = threading.Thread(
            target=lambda: first.append(api.run(job, base_url=server.base_url, api_key=KEY))
        )
        worker.start()
        _wait_for(lambda: bool(api.status(job).batches))
        second = api.run(job, base_url=server.base_url, api_key=KEY)
        worker.join(timeout=60)
        stats = server.stats()
    assert second.already_running and second.requests_submitted == 0
    assert first[0].finished and first[0].requests_submitted == 3
    assert stats["requests_received"] == 3


def test_api_key_stays_out_of_the_environment(tmp_path: Path, emu: Any) -> None:
    """The key reaches the client only; a wrong key is a RemoteError that does not quote it."""
    job = write_job(tmp_path, inputs=1)
    _run(job, emu)
    assert KEY not in str(os.environ)
    wrong = "sk-ant-api-wrong-key-9876543210"
    with pytest.raises(api.RemoteError) as info:
        api.run(write_job(tmp_path, name="other", inputs=1), base_url=emu.base_url, api_key=wrong)
    assert "authentication_error" in str(info.value) and wrong not in str(info.value)
    assert wrong not in str(os.environ)


def test_emulate_needs_no_key(tmp_path: Path) -> None:
    """...and works in a scratch copy: the job's own output is never written."""
    job = write_job(tmp_path, inputs=2)
    result = api.run(job, emulate=True)
    assert result.finished and result.counts["succeeded"] == 2
    assert result.emulated == tmp_path / ".batchrun" / "_emulate"
    assert Path(result.output).is_relative_to(result.emulated) and Path(result.output).exists()
    assert not (tmp_path / "out").exists()
    assert api.status(job, state_dir=result.emulated).requests == {"succeeded": 2}


def test_validate_compile_and_export_are_functions_too(tmp_path: Path) -> None:
    job = write_job(tmp_path, inputs=2)
    assert api.validate(job) == []
    (broken := tmp_path / "broken.yaml").write_text("version: 1\nmodle: x\n")
    assert any("did you mean 'model'" in d.message for d in api.validate(broken))
    chunks = api.compile(job, tmp_path / "compiled")
    assert sum(c.requests for c in chunks) == 2 and (tmp_path / "compiled/manifest.json").exists()
    result = api.run(job, emulate=True)
    assert api.export(job, tmp_path / "r.csv", fmt="csv", state_dir=result.emulated) == 2


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
