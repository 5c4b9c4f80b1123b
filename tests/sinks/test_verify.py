"""`batchrun verify [--repair]` on each sink type with each kind of drift: the exact report,
exit 1, then a repair that makes the sink match state again (exit 0), and `status` saying
when the sink was last verified."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from click.testing import CliRunner

from runner import api, emulator
from runner.cli import cli
from runner.store import Store
from tests.e2e.helpers import write_job

SINKS = {
    "jsonl": "{type: jsonl, path: out/e2e.jsonl}",
    "files": "{type: files, path: out/e2e}",
    "sqlite": "{type: sqlite, path: out/e2e.db}",
}
# Input 1 ends as a dead letter, so that each sink also holds dead letters to compare.
KEY = "sk-test-verify-0123456789"
EMULATOR = 'responses: [{prompt_contains: "number 1\\n", errored: invalid_request_error}]\n'


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """One emulator for the module, so later runs of a job find its batches (an `--emulate`
    run works in a fresh scratch copy, never in the job's own state and sink)."""
    with emulator.start(yaml.safe_load(EMULATOR)) as running:
        yield running


def _run(job: Path, emu: Any, state_dir: Path) -> api.RunResult:
    return api.run(job, base_url=emu.base_url, api_key=KEY, state_dir=state_dir)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, emu: Any) -> dict[str, Path]:
    """One finished job per sink type (3 inputs: two results, one dead letter), run once."""
    made = {}
    for kind, output in SINKS.items():
        folder = tmp_path_factory.mktemp(kind)
        job = write_job(folder, inputs=3, output=output)
        result = _run(job, emu, folder / "st")
        assert dict(result.counts) == {"succeeded": 2, "dead": 1}
        if kind == "jsonl":  # lines come in the API's (shuffled) order: fix it for the tests
            _jsonl(folder).write_bytes(b"".join(sorted(_lines(_jsonl(folder)))))
        made[kind] = folder
    structlog.reset_defaults()
    return made


@pytest.fixture
def copy(pristine: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A fresh copy of a finished job's folder (job, state, sink), made the working folder."""

    def make(kind: str) -> Path:
        folder = tmp_path / kind
        shutil.copytree(pristine[kind], folder)
        return folder

    return make


def verify(folder: Path, *extra: str) -> tuple[int, str]:
    args = ["verify", "--state-dir", str(folder / "st"), "e2e.yaml", *extra]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout + result.stderr


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _jsonl(folder: Path) -> Path:
    return folder / "out" / "e2e.jsonl"


def _append(folder: Path, data: bytes) -> None:
    with _jsonl(folder).open("ab") as f:
        f.write(data)


def _edit_answer(folder: Path) -> None:
    data = _jsonl(folder).read_bytes()
    _jsonl(folder).write_bytes(data.replace(b'"text":"', b'"text":"!', 1))


def _sql(folder: Path, statement: str) -> None:
    with sqlite3.connect(folder / "out" / "e2e.db") as db:
        db.execute(statement)


# (sink, how to damage it, the drift lines verify must print)
DRIFTS: dict[str, tuple[str, Callable[[Path], Any], list[str]]] = {
    "jsonl-line-removed": (
        "jsonl",
        lambda f: _jsonl(f).write_bytes(b"".join(_lines(_jsonl(f))[1:])),
        ["out/e2e.jsonl: missing: input 'data/e2e/in000.txt': no line for it"],
    ),
    "jsonl-line-duplicated": (
        "jsonl",
        lambda f: _jsonl(f).write_bytes(b"".join(_lines(_jsonl(f)) + _lines(_jsonl(f))[:1])),
        ["out/e2e.jsonl:3: duplicated: input 'data/e2e/in000.txt' again (first on line 1)"],
    ),
    "jsonl-line-altered": (
        "jsonl",
        lambda f: _jsonl(f).write_bytes(
            _jsonl(f).read_bytes().replace(b'"text":"', b'"text":"!', 1)
        ),
        [
            "out/e2e.jsonl:1: altered: input 'data/e2e/in000.txt' differs from state "
            "(an edited result)"
        ],
    ),
    "jsonl-garbage-appended": (
        "jsonl",
        lambda f: _append(f, b"garbage\n"),
        ["out/e2e.jsonl:3: unparsable: not a JSON object with input_key and custom_id"],
    ),
    "jsonl-line-cut": (
        "jsonl",
        lambda f: _jsonl(f).write_bytes(_jsonl(f).read_bytes()[:-20]),
        [
            "out/e2e.jsonl:2: unparsable: a line cut short (no newline)",
            "out/e2e.jsonl: missing: input 'data/e2e/in002.txt': no line for it",
        ],
    ),
    "jsonl-foreign-line": (
        "jsonl",
        lambda f: _append(f, b'{"input_key": "zz", "custom_id": "c"}\n'),
        ["out/e2e.jsonl:3: foreign: input 'zz' is not in state"],
    ),
    "jsonl-file-deleted": (
        "jsonl",
        lambda f: _jsonl(f).unlink(),
        ["out/e2e.jsonl: missing: the file does not exist; state holds 2 results"],
    ),
    "jsonl-dead-letters-deleted": (
        "jsonl",
        lambda f: (f / "out" / "e2e.jsonl.dead.jsonl").unlink(),
        ["out/e2e.jsonl.dead.jsonl: missing: the file does not exist; state holds 1 dead letters"],
    ),
    "files-file-deleted": (
        "files",
        lambda f: (f / "out/e2e/in000.md").unlink(),
        ["out/e2e/in000.md: missing: input 'data/e2e/in000.txt': no file"],
    ),
    "files-file-altered": (
        "files",
        lambda f: (f / "out/e2e/in002.md").write_text("edited"),
        ["out/e2e/in002.md: altered: input 'data/e2e/in002.txt': the file differs from state"],
    ),
    "files-foreign-file": (
        "files",
        lambda f: (f / "out/e2e/notes.md").write_text("mine"),
        ["out/e2e/notes.md: foreign: no input of the job writes this entry"],
    ),
    "files-foreign-symlink": (
        "files",
        lambda f: (f / "out/e2e/link.md").symlink_to("/etc/hostname"),
        ["out/e2e/link.md: foreign: no input of the job writes this entry"],
    ),
    "files-folder-deleted": (
        "files",
        lambda f: shutil.rmtree(f / "out/e2e"),
        ["out/e2e: missing: the folder does not exist; state holds 2 results"],
    ),
    "sqlite-row-deleted": (
        "sqlite",
        lambda f: _sql(f, "DELETE FROM e2e WHERE input_key = 'data/e2e/in000.txt'"),
        ["out/e2e.db table e2e: missing: input 'data/e2e/in000.txt': no row"],
    ),
    "sqlite-row-altered": (
        "sqlite",
        lambda f: _sql(f, "UPDATE e2e SET text = 'x' WHERE input_key = 'data/e2e/in002.txt'"),
        ["out/e2e.db table e2e: altered: input 'data/e2e/in002.txt': the row differs from state"],
    ),
    "sqlite-foreign-row": (
        "sqlite",
        lambda f: _sql(
            f,
            "INSERT INTO e2e SELECT 'zz', input_path, custom_id, outcome, text, "
            "model, input_tokens, output_tokens, cache_creation_input_tokens, "
            "cache_read_input_tokens, cost_usd, batch_id, spec_hash, attempts, "
            "collected_at, updated_at, message_json FROM e2e LIMIT 1",
        ),
        ["out/e2e.db table e2e: foreign: input 'zz': a row state does not hold"],
    ),
    "sqlite-dead-letter-deleted": (
        "sqlite",
        lambda f: _sql(f, "DELETE FROM e2e_dead_letters"),
        ["out/e2e.db table e2e_dead_letters: missing: input 'data/e2e/in001.txt': no row"],
    ),
    "sqlite-table-dropped": (
        "sqlite",
        lambda f: _sql(f, "DROP TABLE e2e"),
        [
            "out/e2e.db table e2e: missing: the table does not exist (or lacks columns); "
            "state holds 2 rows"
        ],
    ),
    "sqlite-database-deleted": (
        "sqlite",
        lambda f: (f / "out" / "e2e.db").unlink(),
        ["out/e2e.db: missing: the database does not exist; state holds 2 results"],
    ),
}


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_an_untouched_sink_matches(kind: str, copy: Callable[[str], Path]) -> None:
    code, out = verify(copy(kind))
    assert (code, out) == (0, "e2e: the sink matches the state\n")


@pytest.mark.parametrize("name", sorted(DRIFTS))
def test_drift_is_reported_then_repaired(name: str, copy: Callable[[str], Path]) -> None:
    """Each drift with its place, exit 1; --repair exits 0 and the sink matches again."""
    kind, damage, expected = DRIFTS[name]
    folder = copy(kind)
    damage(folder)
    code, out = verify(folder)
    assert code == 1
    assert out.splitlines()[:-1] == expected
    assert out.splitlines()[-1].startswith("e2e: the sink drifted from the state (")
    code, out = verify(folder, "--repair")
    assert code == 0 and out.splitlines()[-1].startswith("e2e: repaired ("), out
    assert verify(folder) == (0, "e2e: the sink matches the state\n")


def test_repair_restores_the_jsonl_lines_byte_for_byte(copy: Callable[[str], Path]) -> None:
    folder = copy("jsonl")
    before = sorted(_lines(_jsonl(folder)))
    _jsonl(folder).write_bytes(b"junk\n" + _lines(_jsonl(folder))[1])
    assert verify(folder, "--repair")[0] == 0
    assert sorted(_lines(_jsonl(folder))) == before


def test_status_says_when_the_sink_was_last_verified(copy: Callable[[str], Path]) -> None:
    folder = copy("jsonl")
    status = ["status", "--state-dir", str(folder / "st"), str(folder / "e2e.yaml")]
    assert "sink: never verified" in CliRunner().invoke(cli, status).stdout
    _jsonl(folder).unlink()
    verify(folder)
    assert "1 drift(s)\n" in CliRunner().invoke(cli, status).stdout
    verify(folder, "--repair")
    assert "1 drift(s), repaired\n" in CliRunner().invoke(cli, status).stdout


def test_verify_waits_for_a_run_that_holds_the_job(copy: Callable[[str], Path]) -> None:
    folder = copy("jsonl")
    store = Store.open(folder / "st" / "e2e")
    store.lock()
    try:
        code, out = verify(folder)
    finally:
        store.close()
    assert code == 1 and "a run of this job is in progress: verify once it has ended" in out


def test_verify_needs_a_state(tmp_path: Path) -> None:
    job = write_job(tmp_path, inputs=1)
    result = CliRunner().invoke(cli, ["verify", str(job)])
    assert result.exit_code == 1
    assert "no state in" in result.stderr and "nothing to verify the sink against" in result.stderr


def test_a_cut_last_line_is_restored_by_the_next_run(copy: Callable[[str], Path], emu: Any) -> None:
    """A crash or a full disk mid-append leaves a torn last line: the next run restores
    that input from state instead of trimming it away for good."""
    folder = copy("jsonl")
    _jsonl(folder).write_bytes(_jsonl(folder).read_bytes()[:-20])
    result = _run(folder / "e2e.yaml", emu, folder / "st")
    assert result.requests_submitted == 0
    assert verify(folder) == (0, "e2e: the sink matches the state\n")
