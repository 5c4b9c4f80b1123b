"""What a new user meets in the first hour of `run`, end to end through the real CLI: the
emulated run's scratch copy, the run report of `--json`, "no inputs", the total budget,
notifications, and the progress shown while a run waits (plain lines, and a live display on
a pseudo-terminal)."""

from __future__ import annotations

import http.server
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import EmulatorFactory
from tests.e2e.helpers import DUMMY_KEY, batchrun, env_for, write_job

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------------------------------
# --emulate: a scratch copy, never the real state or outputs


def test_emulate_never_touches_the_real_output_or_state(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """A real run, then the prompt edited and an emulated run: the real answers stay as
    they were, the emulated ones land in the scratch copy the run names, and the status and
    export hints it prints read that copy."""
    emu = start_emulator()
    job = write_job(tmp_path, inputs=3)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    real = (tmp_path / "out" / "e2e.jsonl").read_bytes()
    state = (tmp_path / ".batchrun" / "e2e" / "state.db").read_bytes()
    job.write_text(job.read_text().replace("Say {{", "Repeat {{"))

    proc = batchrun("http://127.0.0.1:9", "run", "--emulate", job, ANTHROPIC_API_KEY="")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "e2e.jsonl").read_bytes() == real
    assert (tmp_path / ".batchrun" / "e2e" / "state.db").read_bytes() == state
    scratch = tmp_path / ".batchrun" / "_emulate"
    answers = (scratch / "e2e.out" / "e2e.jsonl").read_bytes().splitlines()
    assert len(answers) == 3 and all(b"Repeat" in line or b"Emulated" in line for line in answers)
    assert ".batchrun/_emulate/e2e.out/e2e.jsonl" in proc.stdout
    status_hint = f"batchrun status --state-dir .batchrun/_emulate {job.name}"
    assert status_hint in proc.stdout, proc.stdout

    status = batchrun(emu.base_url, "status", "--state-dir", scratch, job)
    assert status.returncode == 0 and "3 succeeded" in status.stdout
    exported = batchrun(emu.base_url, "export", "--state-dir", scratch, job)
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 3


def test_emulated_runs_start_afresh(tmp_path: Path) -> None:
    """The emulator's batches end with the command: each emulated run starts its scratch
    copy again, so it never points at batches no API knows."""
    job = write_job(tmp_path, inputs=2)
    for _ in range(2):
        proc = batchrun("http://127.0.0.1:9", "run", "--emulate", job, ANTHROPIC_API_KEY="")
        assert proc.returncode == 0, proc.stderr
        assert "submitted 2 requests in 1 batch" in proc.stdout
    assert not (tmp_path / "out").exists()
    status = batchrun("http://127.0.0.1:9", "status", job)
    assert "e2e: never run" in status.stdout
    assert "batchrun status --state-dir .batchrun/_emulate e2e.yaml" in status.stdout


# ---------------------------------------------------------------------------------------
# run --json


def test_run_json_reports_each_pass_for_cron(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """A --no-wait pass that leaves work in flight exits 0 and says `finished: false`; the
    pass that collects says `finished: true` with the cost. Nothing but JSON on stdout."""
    emu = start_emulator({"latency": {"min_s": 0.5, "max_s": 0.5}})
    job = write_job(tmp_path, inputs=3)
    first = batchrun(emu.base_url, "run", "--no-wait", "--json", job)
    assert first.returncode == 0, first.stderr
    report = orjson.loads(first.stdout)
    (one,) = report["jobs"]
    assert report["exit_code"] == 0
    assert one["finished"] is False and one["exit_code"] == 0
    assert one["submitted"] == {"requests": 3, "batches": 1}
    assert one["requests"] == {"total": 3, "in_flight": 3}
    assert one["cost_usd"] is None and one["dead_letters"] == {"count": 0, "first": []}
    time.sleep(0.6)  # the emulated batch's own latency, not a timing assert
    done = orjson.loads(batchrun(emu.base_url, "run", "--json", job).stdout)["jobs"][0]
    assert done["finished"] is True and done["requests"]["succeeded"] == 3
    assert done["submitted"] == {"requests": 0, "batches": 0}
    assert done["cost_usd"] > 0


def test_an_in_flight_pass_prints_no_zero_cost_lines(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator({"latency": {"min_s": 30, "max_s": 30}})
    job = write_job(tmp_path, inputs=2)
    proc = batchrun(emu.base_url, "run", "--no-wait", job)
    assert proc.returncode == 0, proc.stderr
    assert "$0.0000" not in proc.stdout and "not finished: run again" in proc.stdout


# ---------------------------------------------------------------------------------------
# No inputs


def test_no_inputs_is_said_in_plan_and_run(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    emu = start_emulator()
    job = write_job(tmp_path, inputs=0)
    plan = batchrun(emu.base_url, "plan", job)
    assert plan.returncode == 0 and "no inputs: no file matches 'data/e2e/*.txt'" in plan.stdout
    run = batchrun(emu.base_url, "run", job)
    assert run.returncode == 0, run.stderr
    assert "e2e: no inputs: no file matches 'data/e2e/*.txt'" in run.stdout
    assert "results in" not in run.stdout and emu.stats()["batches_created"] == 0


# ---------------------------------------------------------------------------------------
# budget.max_usd_total


def test_total_budget_adds_up_across_runs(tmp_path: Path, start_emulator: EmulatorFactory) -> None:
    """Each pass would pass a per-pass budget; the total over runs refuses the second."""
    emu = start_emulator()
    job = write_job(tmp_path, "spend", inputs=2)
    assert batchrun(emu.base_url, "run", job).returncode == 0
    for i in range(2, 4):
        (tmp_path / "data" / "spend" / f"in{i:03d}.txt").write_text(f"input number {i}\n")
    plan = orjson.loads(batchrun(emu.base_url, "plan", "--json", job).stdout)[0]
    estimate = plan["cost"]["batch_usd"]
    spent = orjson.loads(batchrun(emu.base_url, "status", "--json", job).stdout)[0]
    # More than the first run spent, less than that plus this run's upper-bound estimate.
    limit = spent["cost"]["cost_usd"] + estimate * 0.9
    job.write_text(
        job.read_text() + f"budget: {{max_usd: {estimate * 2}, max_usd_total: {limit}}}\n"
    )

    refused_plan = batchrun(emu.base_url, "plan", job)
    assert refused_plan.returncode == 1 and "max_usd_total" in refused_plan.stderr
    assert "spent of" in refused_plan.stdout
    refused = batchrun(emu.base_url, "run", "--json", job)
    assert refused.returncode == 1, refused.stderr
    assert "budget.max_usd_total" in refused.stderr and "spent in earlier runs" in refused.stderr
    report = orjson.loads(refused.stdout)  # cron still gets a document
    assert report["exit_code"] == 1 and "max_usd_total" in report["error"]
    assert emu.stats()["batches_created"] == 1


# ---------------------------------------------------------------------------------------
# notify:


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(orjson.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads what arrived, not the server's log."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback: (its URL, the JSON bodies it got)."""

    class Receiver(_Receiver):
        bodies: list[dict[str, Any]] = []  # noqa: RUF012 - one fresh class per test

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook/s3cr3t-token", Receiver.bodies
    finally:
        server.shutdown()
        server.server_close()


def test_notify_sends_each_event_once_without_secrets(
    tmp_path: Path,
    start_emulator: EmulatorFactory,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    """A job that finishes with a dead letter: one `finished` and one `dead_letters` body
    to the webhook and to the command; a second run, with nothing new, sends nothing."""
    url, bodies = receiver
    emu = start_emulator(
        {"responses": [{"prompt_contains": "number 1", "errored": "invalid_request_error"}]}
    )
    got = tmp_path / "command-got.jsonl"
    script = tmp_path / "notify.py"
    script.write_text(
        "import os, sys\n"
        f"with open({str(got)!r}, 'a') as out:\n"
        "    body = sys.stdin.read().replace('\\n', ' ')\n"
        "    secret = os.environ.get('ANTHROPIC_API_KEY', '') + os.environ.get('HOOK', '')\n"
        "    event = os.environ['BATCHRUN_EVENT']\n"
        "    out.write(f'{event} {bool(secret)} {body}\\n')\n"
    )
    notify = f"notify: {{webhook_env: HOOK, command: [{sys.executable!r}, notify.py]}}\n"
    job = write_job(tmp_path, inputs=3, extra=notify)

    first = batchrun(emu.base_url, "run", job, HOOK=url)
    assert first.returncode == 4, first.stderr
    assert sorted(b["event"] for b in bodies) == ["dead_letters", "finished"]
    for body in bodies:
        assert body["job"] == "e2e" and body["text"].startswith("batchrun: e2e ")
        assert body["dead_letters"]["count"] == 1 and body["requests"]["succeeded"] == 2
        assert DUMMY_KEY not in orjson.dumps(body).decode()
    lines = got.read_text().splitlines()
    assert sorted(line.split(" ")[0] for line in lines) == ["dead_letters", "finished"]
    assert all(line.split(" ")[1] == "False" for line in lines), "a secret reached the command"
    assert "s3cr3t-token" not in first.stdout + first.stderr

    again = batchrun(emu.base_url, "run", job, HOOK=url)
    assert again.returncode == 4
    assert len(bodies) == 2 and len(got.read_text().splitlines()) == 2


def test_a_failed_delivery_is_tried_again_next_run(
    tmp_path: Path,
    start_emulator: EmulatorFactory,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, bodies = receiver
    emu = start_emulator()
    job = write_job(tmp_path, inputs=1, extra="notify: {webhook_env: HOOK, on: [finished]}\n")
    dead_end = "http://127.0.0.1:9/nothing-listens-here"
    first = batchrun(emu.base_url, "run", job, HOOK=dead_end)
    assert first.returncode == 0 and "retried next run" in first.stderr
    assert batchrun(emu.base_url, "run", job, HOOK=url).returncode == 0
    assert [b["event"] for b in bodies] == ["finished"]


# ---------------------------------------------------------------------------------------
# Progress while a run waits


def test_plain_progress_lines_when_not_a_terminal(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    emu = start_emulator({"latency": {"min_s": 0.3, "max_s": 0.3}})
    job = write_job(tmp_path, inputs=2)
    argv = [sys.executable, "-m", "runner", "--log-format", "console", "run", str(job)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env_for(emu.base_url), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("e2e: ")]
    assert any("0/2 done (2 in flight); batches: 1 in_progress" in line for line in lines)
    assert lines[-1].startswith("e2e: 2/2 done; batches: 1 collected; cost so far $")
    assert "\x1b[" not in proc.stderr


def _read_until(fd: int, wanted: list[bytes], limit_s: float) -> bytes:
    """Output of the pty until every `wanted` piece appeared (or the bound ran out)."""
    seen = b""
    end = time.monotonic() + limit_s
    while time.monotonic() < end and not all(w in seen for w in wanted):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def _reap(pid: int) -> int:
    """The child's wait status; killed first if SIGINT did not end it (never waits for ever)."""
    for _ in range(50):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def test_live_display_on_a_terminal_and_a_clean_ctrl_c(
    tmp_path: Path, start_emulator: EmulatorFactory
) -> None:
    """Under a pseudo-terminal: a live table with the job's name and counts; SIGINT stops
    it with exit 130, the table marked interrupted, the cursor shown again, no traceback."""
    emu = start_emulator({"latency": {"min_s": 600, "max_s": 600}})
    job = write_job(tmp_path, "livejob", inputs=3)
    env = {**env_for(emu.base_url), "COLUMNS": "120", "LINES": "30", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "runner", "run", str(job)], env)
    rest = b""
    try:
        seen = _read_until(fd, [b"livejob", b"0/3 done", b"1 in_progress"], limit_s=60)
        os.kill(pid, signal.SIGINT)
        rest = _read_until(fd, [b"interrupted: the state is saved"], limit_s=30)
    finally:
        status = _reap(pid)
        os.close(fd)
    assert b"livejob" in seen and b"0/3 done" in seen and b"1 in_progress" in seen, seen
    assert os.waitstatus_to_exitcode(status) == 130
    tail = rest.decode(errors="replace")
    assert "interrupted" in tail and "Traceback" not in tail
    assert "\x1b[?25h" in tail, "the cursor was left hidden"
    assert tail.rstrip().endswith(
        "interrupted: the state is saved; run the same command again to resume"
    )
