"""Resource faults end with exit 1, the path and the fix, and lose nothing: a full disk or a
read-only folder under the output or the state (a small tmpfs when the tests run as root,
a patched writer otherwise), a forbidden folder, a damaged state, a state folder removed
under a live run. After each, the next run finishes with every input once."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from click.testing import CliRunner

from runner import crashpoint, emulator
from runner.cli import cli
from runner.executor.spool import SPOOL_NAME
from runner.sinks.jsonl import KeyedJsonl
from tests.e2e.helpers import write_job

INPUTS = 3


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def _emulator() -> Iterator[Any]:
    """One emulator for the module: runs of a job come back to its batches (an `--emulate`
    run would work in a fresh scratch copy each time, never in the job's own state)."""
    with emulator.start() as emu:
        yield emu


@pytest.fixture(autouse=True)
def _api(_emulator: Any) -> Iterator[None]:
    """The CLI talks to it. Set without `monkeypatch`: tests here undo theirs mid-way."""
    wanted = {"ANTHROPIC_BASE_URL": _emulator.base_url, "ANTHROPIC_API_KEY": "sk-test-0123456789"}
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run(job: Path, *extra: str) -> tuple[int, str]:
    args = ["run", "--state-dir", str(job.parent / "st"), *extra, str(job)]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout + result.stderr


def lines(job: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (job.parent / "out" / "e2e.jsonl").read_bytes().splitlines()]


def finishes_with_nothing_lost(job: Path) -> None:
    """The next run submits nothing (the results are in state) and the sink has them all."""
    code, out = run(job)
    assert code == 0, out
    assert "submitted 0 requests" in out
    assert sorted(r["input_key"] for r in lines(job)) == [
        f"data/e2e/in{i:03d}.txt" for i in range(INPUTS)
    ]


@pytest.fixture(params=["tmpfs", "patched"])
def disk(request: pytest.FixtureRequest) -> str:
    """How a fault is made: a real small file system (root only), or a patched writer."""
    return str(request.param)


@contextlib.contextmanager
def tmpfs(folder: Path, disk: str, size: str = "64k") -> Iterator[bool]:
    """A small tmpfs at `folder` when `disk` asks for it; skips the test when the tests
    cannot mount (not root). With "patched", nothing is mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = disk == "tmpfs" and os.geteuid() == 0 and shutil.which("mount") is not None
    if mounted:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
        )
        mounted = proc.returncode == 0
    if disk == "tmpfs" and not mounted:
        pytest.skip("a tmpfs needs root and mount(8): the patched writer covers this case")
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system holding `folder` to the last byte; the filler file is returned."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 512)
    return filler


def out_of_space(job: Path, where: Path, words: str) -> None:
    """A run fails cleanly on a full disk under `where`, saying `words`."""
    code, text = run(job)
    assert code == 1, text
    assert "error: no space left on the device holding" in text and str(where) in text
    assert words in text


def free(filler: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk has room again: the filler is gone, the patched writer works again."""
    if filler is not None:
        filler.unlink()
    monkeypatch.undo()


def refuse_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, exc: OSError) -> None:
    """The patched writer: `owner.name` raises `exc` on its first call, then works again."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def patched(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)


def test_full_disk_under_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk: str
) -> None:
    job = write_job(tmp_path, inputs=INPUTS)
    out = tmp_path / "out"
    with tmpfs(out, disk) as mounted:
        if mounted:
            filler = fill(out)
        else:
            nospace = OSError(errno.ENOSPC, "No space left on device")
            refuse_once(monkeypatch, KeyedJsonl, "_append", nospace)
        code, text = run(job)
        assert code == 1, text
        assert f"error: no space left on the device holding {out}" in text
        assert "free some space, or write elsewhere (output.path)" in text
        assert "nothing is lost: the next run goes on from the last step saved" in text
        if mounted:
            filler.unlink()
        finishes_with_nothing_lost(job)


def test_read_only_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk: str) -> None:
    job = write_job(tmp_path, inputs=INPUTS)
    out = tmp_path / "out"
    with tmpfs(out, disk) as mounted:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        else:
            readonly = OSError(errno.EROFS, "Read-only file system")
            refuse_once(monkeypatch, KeyedJsonl, "_append", readonly)
        code, text = run(job)
        assert code == 1, text
        assert "is on a read-only file system: mount it writable" in text
        if mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(out)], check=True)
        finishes_with_nothing_lost(job)


def test_forbidden_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores permissions, so this one is always the patched writer."""
    job = write_job(tmp_path, inputs=INPUTS)
    target = str(tmp_path / "out" / "e2e.jsonl")
    denied = PermissionError(errno.EACCES, "Permission denied", target)
    refuse_once(monkeypatch, KeyedJsonl, "_append", denied)
    code, text = run(job)
    assert code == 1, text
    assert f"error: permission denied writing {target} (the job's output)" in text
    finishes_with_nothing_lost(job)


def test_full_disk_under_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk: str
) -> None:
    job = write_job(tmp_path, inputs=INPUTS)
    state = tmp_path / "st"
    with tmpfs(state, disk, size="2m") as mounted:
        if mounted:
            filler = fill(state)
        else:
            real_open = Path.open

            def spool_open(self: Path, *args: Any, **kwargs: Any) -> Any:
                if self.name == SPOOL_NAME and args[:1] in (("wb",), ("ab",)):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_open(self, *args, **kwargs)

            monkeypatch.setattr(Path, "open", spool_open)
        out_of_space(job, state, "or write elsewhere (--state-dir DIR)")
        free(filler if mounted else None, monkeypatch)
        code, text = run(job)
        assert code == 0, text
        assert len(lines(job)) == INPUTS


@pytest.mark.parametrize("damage", ["overwritten", "truncated"])
def test_damaged_state_names_the_file_and_the_way_on(tmp_path: Path, damage: str) -> None:
    job = write_job(tmp_path, inputs=INPUTS)
    assert run(job)[0] == 0
    db = tmp_path / "st" / "e2e" / "state.db"
    data = db.read_bytes()
    db.write_bytes(b"not a database " * 100 if damage == "overwritten" else data[: len(data) // 3])
    for command in ("run", "status", "export", "verify"):
        args = [command, "--state-dir", str(tmp_path / "st"), str(job)]
        result = CliRunner().invoke(cli, args)
        text = result.stdout + result.stderr
        assert result.exit_code == 1, (command, text)
        assert f"error: the state database {db} is damaged" in text, (command, text)
        assert f"move the state folder aside (mv {db.parent} {db.parent}.damaged)" in text
        assert f"then run `batchrun recover {job}`" in text


def remove_state_at(state: Path, at: str) -> Callable[[str], None]:
    """A crash point that removes the state folder the first time the run reaches `at`."""
    real = crashpoint.hit

    def hit(point: str) -> None:
        if point == at and state.exists():
            shutil.rmtree(state)
        real(point)

    return hit


def test_state_folder_removed_under_a_live_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path, inputs=INPUTS)
    state = tmp_path / "st" / "e2e"
    monkeypatch.setattr(crashpoint, "hit", remove_state_at(state, "compile"))
    code, text = run(job)
    assert code == 1, text
    assert f"error: the state folder {state} was removed while the command ran" in text
    assert "Traceback" not in text


def test_a_fault_outside_any_state_is_still_a_bug(tmp_path: Path) -> None:
    """explain() words only faults it can place: anything else stays exit 3."""
    from runner import faults

    assert faults.explain(OSError(errno.ENOSPC, "No space left on device")) is None
    assert faults.explain(ValueError("x")) is None


def test_sink_open_faults_are_worded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A files sink whose folder cannot be created (forbidden) names the output."""
    job = write_job(tmp_path, inputs=INPUTS, output="{type: files, path: out/e2e}")
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == tmp_path / "out" / "e2e":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, text = run(job)
    assert code == 1, text
    assert f"permission denied writing {tmp_path / 'out' / 'e2e'} (the job's output)" in text


@pytest.mark.parametrize(
    ("output", "sink"),
    [("{type: files, path: out/e2e}", "out/e2e"), ("{type: sqlite, path: out/e2e.db}", "out")],
)
def test_full_disk_under_a_files_or_sqlite_output(
    tmp_path: Path, output: str, sink: str, disk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path, inputs=INPUTS, output=output)
    out = tmp_path / "out"
    with tmpfs(out, disk, size="1m") as mounted:
        if mounted:
            filler = fill(out)
        elif "files" in output:
            from runner.sinks import atomic

            nospace = OSError(errno.ENOSPC, "No space left on device")
            refuse_once(monkeypatch, atomic, "write_atomic", nospace)
        else:
            pytest.skip("SQLite writes through its own C code: only a real full disk shows it")
        out_of_space(job, out, "(the job's output)")
        free(filler if mounted else None, monkeypatch)
        assert run(job)[0] == 0
        result = CliRunner().invoke(cli, ["verify", "--state-dir", str(tmp_path / "st"), str(job)])
        assert result.exit_code == 0, result.stdout


def test_a_file_where_the_state_folder_should_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.batchrun` beside the job is a file (--state-dir itself is checked by click)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    job = write_job(tmp_path, inputs=INPUTS)
    (tmp_path / ".batchrun").write_text("not a folder")
    result = CliRunner().invoke(cli, ["status", str(job)])
    code, text = result.exit_code, result.stdout + result.stderr
    assert code == 0 and "never run" in text  # status only reads: there is no state
    result = CliRunner().invoke(cli, ["recover", str(job)])
    text = result.stdout + result.stderr
    assert result.exit_code == 1, text
    state = tmp_path / ".batchrun" / "e2e"
    assert f"error: cannot create the state folder {state}: " in text
    assert f"{tmp_path / '.batchrun'} is a file, not a folder" in text


def test_state_removed_mid_run_stops_it_and_recover_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed once a batch is in flight: SQLite would go on writing to the deleted files
    and the run end "fine" with its state gone. It stops at its next wait instead, exit 1;
    `recover` then finds the batch by its custom_ids and a run finishes, billing nothing
    twice."""
    from runner import emulator
    from tests.e2e.helpers import assert_exactly_once

    job = write_job(tmp_path, inputs=INPUTS)
    state = tmp_path / ".batchrun" / "e2e"
    real = crashpoint.hit
    with emulator.start({"latency": {"min_s": 0.3, "max_s": 0.5}}) as emu:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
        monkeypatch.setattr(crashpoint, "hit", remove_state_at(state, "after_attach"))
        result = CliRunner().invoke(cli, ["run", str(job)])
        assert result.exit_code == 1, result.stderr
        assert f"the state folder {state} was removed while the command ran" in result.stderr
        assert f"Run `batchrun recover {job}` first" in result.stderr
        monkeypatch.setattr(crashpoint, "hit", real)
        assert CliRunner().invoke(cli, ["recover", str(job)]).exit_code == 0
        assert CliRunner().invoke(cli, ["run", str(job)]).exit_code == 0
        assert_exactly_once(job, INPUTS, emu.stats())
