"""`plan --count-tokens` and `export` through the real CLI against the emulator."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import EmulatorFactory
from tests.e2e.helpers import batchrun, env_for, results, write_job

pytestmark = pytest.mark.e2e


def test_plan_count_tokens_asks_the_endpoint(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Exact counts come from count_tokens (one call per request), not the local rule."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    proc = batchrun(emu.base_url, "plan", "--json", "--count-tokens", job)
    assert proc.returncode == 0, proc.stderr
    (plan,) = orjson.loads(proc.stdout)
    assert plan["tokens"]["method"] == "count_tokens"
    assert plan["tokens"]["uncached_input"] > 0
    assert emu.stats()["http_calls"]["count_tokens"] == 3


def test_export_jsonl_and_csv_match_the_sink(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Whatever the sink, export gives the job's current results, one per input."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=4)
    assert batchrun(emu.base_url, job).returncode == 0
    sink = {r["input_key"]: r["custom_id"] for r in results(job)}

    proc = batchrun(emu.base_url, "export", job)
    assert proc.returncode == 0, proc.stderr
    exported = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert {r["input_key"]: r["custom_id"] for r in exported} == sink

    out = tmp_path / "results.csv"
    assert batchrun(emu.base_url, "export", job, "--format", "csv", "--out", out).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["input_key"]: r["custom_id"] for r in rows} == sink
    assert all(r["outcome"] == "succeeded" and r["text"] for r in rows)


def test_a_job_file_broken_after_the_run_still_exports_and_shows_status(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Results already paid for are not held hostage by a later typo in the job file: status
    and export warn and read the state; run still refuses, naming the problem."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    assert batchrun(emu.base_url, job).returncode == 0
    job.write_text(job.read_text().replace("{{ input.text }}", "{{ input.txt }"))

    exported = batchrun(emu.base_url, "export", job)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 3
    assert "warning:" in exported.stderr and "batchrun validate" in exported.stderr
    status = batchrun(emu.base_url, "status", job)
    assert status.returncode == 0 and "3 succeeded" in status.stdout, status.stdout
    assert batchrun(emu.base_url, "run", job).returncode == 1

    job.write_text(job.read_text().replace("name: e2e", "name: Not A Name"))
    assert batchrun(emu.base_url, "export", job).returncode == 1  # no name: nothing to read


def test_export_before_any_run_says_so(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=1)
    proc = batchrun(emu.base_url, "export", job)
    assert proc.returncode == 1
    assert "no state" in proc.stderr and "run the job first" in proc.stderr


def test_export_into_a_closed_pipe_is_not_an_error(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """`batchrun export JOB | head -1` ends quietly, not with a traceback and exit 3."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=30, prompt="Say {{ input.text }}" + " padding" * 200)
    assert batchrun(emu.base_url, job).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "export", str(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(emu.base_url),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
