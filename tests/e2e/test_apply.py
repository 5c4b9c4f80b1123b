"""`batchrun plan --out` and `batchrun apply` end to end: the real CLI against the emulator.

What the emulator received is read back through its own API (every batch's results carry
their custom_ids), so "apply submits exactly the plan" is checked where it counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from tests.e2e.conftest import EmulatorFactory
from tests.e2e.helpers import DUMMY_KEY, assert_exactly_once, batchrun, results, write_job

pytestmark = pytest.mark.e2e


def received(emu: Any) -> list[str]:
    """Every custom_id the emulator was sent, over all its batches (which end at once)."""
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=DUMMY_KEY, max_retries=0)
    try:
        ids = []
        for batch in client.messages.batches.list(limit=100):
            ids += [r.custom_id for r in client.messages.batches.results(batch.id)]
        return ids
    finally:
        client.close()


def saved_ids(plan: Path) -> list[str]:
    [job] = orjson.loads(plan.read_bytes())["jobs"]
    return list(job["submit"])


def test_apply_submits_exactly_the_plan(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """After a finished run, one input edited and two added: the plan lists three requests
    and apply sends exactly those three, then collects them like run."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=4)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    first = set(received(emu))
    (tmp_path / "data/e2e/in001.txt").write_text("edited\n")
    for name in ("new1", "new2"):
        (tmp_path / f"data/e2e/{name}.txt").write_text(f"{name}\n")
    plan = tmp_path / "plan.json"
    proc = batchrun(emu.base_url, "plan", job, "--out", plan)
    assert proc.returncode == 0, proc.stderr
    assert "3 to submit (3 new, 0 to retry)" in proc.stdout, proc.stdout
    planned = saved_ids(plan)
    assert len(planned) == 3 and not set(planned) & first
    proc = batchrun(emu.base_url, "apply", plan)
    assert proc.returncode == 0, proc.stderr
    sent = [c for c in received(emu) if c not in first]
    assert sorted(sent) == sorted(planned)
    assert_exactly_once(job, 6, emu.stats())
    assert {r["custom_id"] for r in results(job)} >= set(planned)


def test_stale_plan_is_refused(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """An input edited and one added after the plan: apply submits nothing and says so."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    plan = tmp_path / "plan.json"
    assert batchrun(emu.base_url, "plan", job, "--out", plan).returncode == 0
    (tmp_path / "data/e2e/in000.txt").write_text("changed after the plan\n")
    (tmp_path / "data/e2e/late.txt").write_text("added after the plan\n")
    proc = batchrun(emu.base_url, "apply", plan)
    assert proc.returncode == 1
    assert "the plan is stale: 2 inputs changed; plan again" in proc.stderr, proc.stderr
    assert emu.stats()["batches_created"] == 0


def test_plan_of_a_changed_job_file_is_refused(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=2)
    plan = tmp_path / "plan.json"
    assert batchrun(emu.base_url, "plan", job, "--out", plan).returncode == 0
    job.write_text(job.read_text().replace("max_tokens: 64", "max_tokens: 65"))
    proc = batchrun(emu.base_url, "apply", plan)
    assert proc.returncode == 1 and "the plan is stale" in proc.stderr, proc.stderr
    assert "changed since the plan was made" in proc.stderr
    assert emu.stats()["batches_created"] == 0


def test_plan_of_a_finished_job_applies_as_a_no_op(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Planned before a run that then finished, or after: apply sends nothing either way."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    before = tmp_path / "before.json"
    assert batchrun(emu.base_url, "plan", job, "--out", before).returncode == 0
    assert batchrun(emu.base_url, "run", job).returncode == 0
    after = tmp_path / "after.json"
    assert batchrun(emu.base_url, "plan", job, "--out", after).returncode == 0
    assert saved_ids(after) == [] and len(saved_ids(before)) == 3
    created = emu.stats()["batches_created"]
    for plan in (before, after):
        proc = batchrun(emu.base_url, "apply", plan)
        assert proc.returncode == 0, proc.stderr
        assert "submitted 0 requests" in proc.stdout, proc.stdout
    assert emu.stats()["batches_created"] == created
    assert_exactly_once(job, 3, emu.stats())


def test_not_a_plan_file(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    emu = start_emulator()
    bad = tmp_path / "plan.json"
    bad.write_text("{}")
    proc = batchrun(emu.base_url, "apply", bad)
    assert proc.returncode == 1 and f"{bad}: not a plan file" in proc.stderr


def test_apply_with_emulate_needs_no_api(tmp_path: Path) -> None:
    """A dry run of a saved plan against an in-process emulator: no key, no network."""
    import subprocess
    import sys

    job = write_job(tmp_path, inputs=2)
    plan = tmp_path / "plan.json"
    argv = [sys.executable, "-m", "runner"]
    done = subprocess.run([*argv, "plan", str(job), "--out", str(plan)], capture_output=True)
    assert done.returncode == 0, done.stderr
    proc = subprocess.run([*argv, "apply", "--emulate", str(plan)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "submitted 2 requests in 1 batch" in proc.stdout, proc.stdout
