"""validate refuses two jobs that share a name (one state) or an output (one overwrites the
other), among the files given and the valid job files of the same folder, naming both."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from tests.e2e.helpers import write_job


def job(folder: Path, name: str, output: str) -> Path:
    return write_job(folder, name=name, inputs=1, output=f"{{type: jsonl, path: {output}}}")


def validate(*paths: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["validate", *map(str, paths)])
    return result.exit_code, result.stdout.splitlines()


NAME = (
    "the name 'a' is also the name of {other}: two jobs with one name share one state "
    "(.batchrun/<name>/, or one row of a shared state store): give each job its own name"
)
OUTPUT = (
    "this output is also written by {other}: one job would overwrite the other's results: "
    "give each job its own output.path"
)


def test_a_shared_output_among_the_files_given_names_both(tmp_path: Path) -> None:
    a, b = job(tmp_path, "a", "out/x.jsonl"), job(tmp_path, "b", "out/x.jsonl")
    code, lines = validate(a, b)
    assert code == 1
    assert lines == [
        f"a.yaml:8:29: $.output.path: {OUTPUT.format(other='b.yaml')}",
        f"b.yaml:8:29: $.output.path: {OUTPUT.format(other='a.yaml')}",
    ]


def test_a_neighbour_with_the_same_name_is_found_without_being_given(tmp_path: Path) -> None:
    a = job(tmp_path, "a", "out/a.jsonl")
    (tmp_path / "copy.yaml").write_text(a.read_text().replace("out/a.jsonl", "out/c.jsonl"))
    assert validate(a) == (1, [f"a.yaml:2:7: $.name: {NAME.format(other='copy.yaml')}"])


def test_one_output_inside_another_is_a_clash(tmp_path: Path) -> None:
    a = write_job(tmp_path, name="a", inputs=1, output="{type: files, path: out/}")
    b = job(tmp_path, "b", "out/b.jsonl")
    code, lines = validate(a, b)
    assert code == 1 and len(lines) == 2
    assert "are one inside the other" in lines[0] and "b.yaml" in lines[0]


def test_invalid_or_unrelated_neighbours_are_ignored(tmp_path: Path) -> None:
    """A draft that cannot run, or YAML that is no job, cannot overwrite anything."""
    a = job(tmp_path, "a", "out/a.jsonl")
    (tmp_path / "draft.yaml").write_text(a.read_text() + "unknown_key: 1\n")
    (tmp_path / "ci.yml").write_text("on: push\n")
    assert validate(a) == (0, [])


def test_distinct_jobs_validate(tmp_path: Path) -> None:
    assert validate(job(tmp_path, "a", "out/a.jsonl"), job(tmp_path, "b", "out/b.jsonl")) == (
        0,
        [],
    )


def test_run_refuses_two_jobs_given_together_that_share_an_output(tmp_path: Path) -> None:
    a, b = job(tmp_path, "a", "out/x.jsonl"), job(tmp_path, "b", "out/x.jsonl")
    result = CliRunner().invoke(cli, ["run", "--emulate", str(a), str(b)])
    assert result.exit_code == 1
    assert "have the same output" in result.stderr and "give each job its own" in result.stderr


@pytest.fixture(autouse=True)
def _in_the_jobs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
