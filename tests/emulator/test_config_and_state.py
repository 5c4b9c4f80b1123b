"""Config checking (every problem reported with key and fix), --state persistence across
restarts, and the `batchrun emulator` command."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.emulator import ConfigError, EmulatorConfig, load_config, start
from tests.emulator.conftest import requests, sdk


def test_issue_example_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "emu.yaml"
    path.write_text(
        """
seed: 7
latency: {min_s: 0.2, max_s: 1.0}
outcomes: {errored: 0.05, expired: 0.01}
errored_types: {overloaded_error: 0.6, api_error: 0.3, invalid_request_error: 0.1}
http_faults:
  - {endpoint: create, status: 529, rate: 0.1, retry_after: 0.05}
  - {endpoint: retrieve, status: 500, rate: 0.05}
create_commit_then_fail: 0.1
results_truncate: 0.05
max_requests_per_batch: 100000
max_body_bytes: 268435456
queue_limit: 500000
responses: []
"""
    )
    config = load_config(path)
    assert config.seed == 7 and config.latency.max_s == 1.0
    assert config.http_faults[0].retry_after == 0.05 and config.http_faults[1].status == 500
    json_path = tmp_path / "emu.json"
    json_path.write_text('{"seed": 3, "outcomes": {"errored": 0.5}}')
    assert load_config(json_path).outcomes.errored == 0.5
    assert load_config(None) == EmulatorConfig()


def test_bad_config_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """
sead: 1
latency: {min_s: 5, max_s: 1}
outcomes: {errored: 2}
http_faults:
  - {endpoint: creat, status: 200, rate: 0.5}
responses:
  - {text: hi}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}: sead: unknown key (fix: did you mean `seed`?)" in text
    assert "latency.max_s" in text and "outcomes.errored" in text
    assert "http_faults[0].endpoint" in text and "http_faults[0].status" in text
    assert "responses[0]: matches nothing" in text
    assert len(text.splitlines()) == 6


def test_state_survives_restart(tmp_path: Path) -> None:
    """Batches, results, clock and accounting persist in SQLite across restarts."""
    state = tmp_path / "emu.sqlite"
    config = {"latency": {"min_s": 100, "max_s": 100}}
    with start(config, state=state) as emu, sdk(emu, max_retries=0) as client:
        done = client.messages.batches.create(requests=requests(3))
        emu.advance(101)
        pending = client.messages.batches.create(requests=requests(2, prefix="p"))
        before = [line.model_dump() for line in client.messages.batches.results(done.id)]
        stats_before = emu.stats()
    with start(config, state=state) as emu, sdk(emu, max_retries=0) as client:
        assert client.messages.batches.retrieve(pending.id).processing_status == "in_progress"
        after = [line.model_dump() for line in client.messages.batches.results(done.id)]
        assert after == before
        assert [b.id for b in client.messages.batches.list()] == [pending.id, done.id]
        emu.advance(101)
        assert client.messages.batches.retrieve(pending.id).request_counts.succeeded == 2
        newer = client.messages.batches.create(requests=requests(1, prefix="n"))
        assert newer.id not in (done.id, pending.id)
        stats = emu.stats()
    assert stats["batches_created"] == 3
    assert stats["cost_usd"] > stats_before["cost_usd"]


def test_cli_reports_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("queue_limit: -1\n")
    result = CliRunner().invoke(cli, ["emulator", "--config", str(path)])
    assert result.exit_code == 1
    assert "queue_limit" in result.output and "fix:" in result.output


def test_restart_without_state_never_reuses_ids() -> None:
    """A runner holding an id from a previous emulator gets a 404, not another batch."""
    with start() as emu, sdk(emu, max_retries=0) as client:
        old = client.messages.batches.create(requests=requests(1)).id
    with start() as emu, sdk(emu, max_retries=0) as client:
        new = client.messages.batches.create(requests=requests(1)).id
        assert new != old
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(old)
