"""Paths a job names stay inside its project root (the git repository holding the job file,
else its folder), symlinks followed; `allow_outside: true` opts an input or output out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.errors import SpecError
from runner.spec import containment, load_job

HEAD = "version: 1\nname: j\nmodel: claude-sonnet-4-6\nmax_tokens: 10\n"
PROMPT = 'prompt: "hi {{ input.text }}"\n'
OUTPUT = "output: {type: jsonl, path: ../out/j.jsonl}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a jobs/ folder holding one ordinary input."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "jobs" / "docs").mkdir(parents=True)
    (tmp_path / "jobs" / "docs" / "ok.txt").write_text("fine\n")
    return tmp_path


def write(folder: Path, body: str) -> Path:
    job = folder / "jobs" / "j.yaml"
    job.write_text(HEAD + body)
    return job


def validate(job: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["validate", str(job)])
    return result.exit_code, result.stdout.splitlines()


def test_the_usual_layout_stays_valid(repo: Path) -> None:
    """jobs/x.yaml writing ../out/x.jsonl is inside the repository."""
    job = write(repo, "input: {glob: docs/*.txt}\n" + PROMPT + OUTPUT)
    assert validate(job) == (0, [])


def test_a_symlinked_input_leaving_the_root_is_refused(repo: Path) -> None:
    (repo / "jobs" / "docs" / "x.txt").symlink_to("/etc/passwd")
    job = write(repo, "input: {glob: docs/*.txt}\n" + PROMPT + OUTPUT)
    code, lines = validate(job)
    assert code == 1
    assert lines == [
        "jobs/j.yaml:5:15: $.input.glob: the input docs/x.txt is a symlink to /etc/passwd, outside "
        f"the project root {repo} (the git repository holding the job file): remove the link, "
        "leave it out with input.exclude, or set input.allow_outside: true"
    ]
    with pytest.raises(SpecError):  # run loads the job the same way: nothing is sent
        load_job(job)


def test_a_symlinked_glob_folder_is_refused_once(repo: Path) -> None:
    (repo / "jobs" / "etc").symlink_to("/etc")
    job = write(repo, "input: {glob: etc/*.conf}\n" + PROMPT + OUTPUT)
    code, lines = validate(job)
    assert code == 1 and len(lines) == 1
    assert "$.input.glob: the glob's folder etc is a symlink to /etc, outside" in lines[0]


@pytest.mark.parametrize(
    ("body", "path", "shown"),
    [
        ("input: {jsonl: /etc/hosts}\n" + PROMPT, "$.input.jsonl", "/etc/hosts is outside"),
        ("input: {glob: docs/*.txt}\nprompt_file: ../../x.md\n", "$.prompt_file", "../../x.md"),
        ("input: {glob: docs/*.txt}\n" + PROMPT + "system: {file: /etc/hostname}\n",
         "$.system.file", "/etc/hostname is outside"),
        ("input: {glob: ../../*.txt}\n" + PROMPT, "$.input.glob", "the glob's folder ../.."),
    ],
)  # fmt: skip
def test_absolute_and_dotdot_paths_are_refused(
    repo: Path, body: str, path: str, shown: str
) -> None:
    (repo.parent / "x.md").write_text("outside")
    job = write(repo, body + OUTPUT)
    code, lines = validate(job)
    assert code == 1
    assert any(f": {path}: " in line and shown in line for line in lines), lines


def test_an_output_outside_is_refused(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "j.jsonl"
    job = write(repo, "input: {glob: docs/*.txt}\n" + PROMPT)
    job.write_text(job.read_text() + f"output: {{type: jsonl, path: {elsewhere}}}\n")
    code, lines = validate(job)
    assert code == 1
    assert lines[0].endswith(
        "move it inside the project, or set output.allow_outside: true if the job must write it "
        "there"
    )


def test_allow_outside_opts_an_input_and_an_output_out(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (repo / "jobs" / "docs" / "x.txt").symlink_to("/etc/hostname")
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "j.jsonl"
    job = write(
        repo,
        "input: {glob: docs/*.txt, allow_outside: true}\n"
        + PROMPT
        + f"output: {{type: jsonl, path: {elsewhere}, allow_outside: true}}\n",
    )
    assert validate(job) == (0, [])


def test_without_git_the_job_folder_is_the_root(tmp_path: Path) -> None:
    (tmp_path / "jobs" / "docs").mkdir(parents=True)
    (tmp_path / "jobs" / "docs" / "ok.txt").write_text("fine\n")
    job = write(tmp_path, "input: {glob: docs/*.txt}\n" + PROMPT + OUTPUT)
    code, lines = validate(job)
    assert code == 1
    assert (
        "(the job file's folder, which is in no git repository; set BATCHRUN_PROJECT_ROOT"
        in (lines[0])
    )


def test_the_root_can_be_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container image without .git names its root: ../out is inside again."""
    (tmp_path / "jobs" / "docs").mkdir(parents=True)
    (tmp_path / "jobs" / "docs" / "ok.txt").write_text("fine\n")
    job = write(tmp_path, "input: {glob: docs/*.txt}\n" + PROMPT + OUTPUT)
    monkeypatch.setenv(containment.ROOT_ENV, str(tmp_path))
    assert validate(job) == (0, [])


def test_a_state_folder_symlinked_away_is_refused(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (repo / "jobs" / ".batchrun").symlink_to(tmp_path_factory.mktemp("state"))
    job = write(repo, "input: {glob: docs/*.txt}\n" + PROMPT + OUTPUT)
    code, lines = validate(job)
    assert code == 1
    assert "$.name: the state folder" in lines[0] and "keep the state elsewhere" in lines[0]


def test_a_file_outside_is_never_read(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A prompt file outside is refused before it is read: its text is in no message."""
    secret = tmp_path_factory.mktemp("secret") / "p.j2"
    secret.write_text("TOPSECRET {{ nope }}")
    job = write(repo, f"input: {{glob: docs/*.txt}}\nprompt_file: {secret}\n" + OUTPUT)
    code, lines = validate(job)
    assert code == 1 and len(lines) == 1 and "TOPSECRET" not in lines[0]


def test_nothing_is_read_from_or_written_into_dot_git(repo: Path) -> None:
    """.git is inside the repository but holds its own files, credentials included (a CI
    checkout may keep a token in .git/config): neither an input nor an output."""
    job = repo / "j.yaml"
    job.write_text(
        HEAD + 'input: {glob: "**/config"}\n' + PROMPT
        + "output: {type: jsonl, path: .git/hooks/post-checkout}\n"
    )  # fmt: skip
    code, lines = validate(job)
    assert code == 1
    assert "$.input.glob: the input .git/config is inside .git/, the repository's own" in lines[0]
    assert "$.output.path: .git/hooks/post-checkout is inside .git/" in lines[1]


@pytest.mark.parametrize(
    ("output", "make", "message"),
    [
        ("{type: jsonl, path: ../out/j.jsonl}", "dir:out/j.jsonl", "is a folder: a jsonl output"),
        ("{type: files, path: ../out/j}", "file:out/j", "is a file: a files output is a folder"),
        ("{type: jsonl, path: ../out/j.jsonl}", "file:out", "is a file where the output's folder"),
    ],
)
def test_an_output_that_cannot_be_what_its_type_writes(
    repo: Path, output: str, make: str, message: str
) -> None:
    kind, _, rel = make.partition(":")
    if kind == "dir":
        (repo / rel).mkdir(parents=True)
    else:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x")
    job = write(repo, "input: {glob: docs/*.txt}\n" + PROMPT + f"output: {output}\n")
    code, lines = validate(job)
    assert code == 1 and message in lines[0], lines


def test_an_output_schema_outside_is_refused_and_never_read(repo: Path) -> None:
    """Only the containment finding: the schema's own (unsupported) keyword is not read."""
    (repo.parent / "schema.json").write_text('{"type": "object", "minProperties": 3}')
    job = write(repo, "input: {glob: docs/*.txt}\n" + PROMPT + OUTPUT)
    job.write_text(job.read_text() + "output_schema: ../../schema.json\n")
    code, lines = validate(job)
    assert code == 1
    assert len(lines) == 1 and ": $.output_schema: ../../schema.json is outside " in lines[0]
    assert lines[0].endswith("move the file inside the project")
