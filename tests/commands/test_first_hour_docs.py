"""What a new user reads first says the truth: the install name, the getting-started output,
the command reference, the dead-letter file name, the price sources, the emulator docs and
the Python API's table all match the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner import api
from runner.cli import cli
from runner.pricing import table
from runner.sinks.deadfile import sidecar_path
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
DISTRIBUTION = "batchrun-cli"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_distribution_has_a_name_free_of_the_other_project() -> None:
    """`batchrun` on the package index is an unrelated project; the command keeps its name."""
    project = tomllib.loads(_text(REPO / "pyproject.toml"))["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"batchrun": "runner.cli:main"}


@pytest.mark.parametrize("doc", [*DOCS, REPO / "Dockerfile"], ids=lambda p: p.name)
def test_every_install_line_names_the_distribution(doc: Path) -> None:
    for line in _text(doc).splitlines():
        for name in re.findall(r"pip install (?:--?[a-z-]+ )*([A-Za-z0-9_.\[\]-]+)", line):
            assert name.startswith((DISTRIBUTION, "/", ".", "-e")), f"{doc.name}: {line}"


def test_the_dockerfile_builds_from_files_of_this_repository() -> None:
    """The CronJob's image: each COPY source exists, batchrun is the entry point, not root."""
    text = _text(REPO / "Dockerfile")
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in sources.split():
            assert (REPO / source).exists(), source
    assert 'ENTRYPOINT ["batchrun"]' in text and "\nUSER " in text
    assert "registry.example.com/batchrun" in _text(REPO / "docs" / "gitops.md")
    assert "pip install --quiet batchrun &&" not in _text(REPO / "docs" / "gitops.md")


def test_the_command_reference_names_commands_once_and_lists_exit_codes() -> None:
    text = _text(REPO / "docs" / "reference" / "commands.md")
    assert "batchrun batchrun" not in text
    assert "Usage: batchrun cancel [OPTIONS] JOBS..." in text
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n    {code}" in text, code
    assert "Least severe log lines shown." in text  # --log-level has its help text


def test_plan_prints_no_evidence_label_as_a_price_source() -> None:
    for row in table()["models"]:
        assert not re.search(r"\[[A-Z0-9-]+\]", row["source"]), row["source"]


def test_one_dead_letter_name_everywhere() -> None:
    """The JSONL sink's dead letters are `<path>.dead.jsonl` (`out/x.jsonl.dead.jsonl`), as
    the code names them: no doc may drop the `.jsonl` before `.dead.jsonl`."""
    assert sidecar_path(Path("out/x.jsonl")) == Path("out/x.jsonl.dead.jsonl")
    for doc in [*DOCS, REPO / "Makefile"]:
        for name in re.findall(r"[\w./<>-]+\.dead\.jsonl", _text(doc)):
            stem = name.removesuffix(".dead.jsonl")
            assert "." not in stem.rsplit("/", 1)[-1] or stem.endswith(".jsonl"), (doc, name)
            assert not stem.endswith(("/x", "/survey-topics", "/reviews")), (doc, name)


def test_the_emulator_docs_stand_on_their_own() -> None:
    """Users have no api-contract.md and no issue to look at."""
    text = _text(REPO / "docs" / "emulator.md")
    assert "api-contract" not in text and "the issue" not in text
    assert not re.search(r"\bcontract\b", text)


def test_the_modeline_advice_works_outside_this_repository() -> None:
    started = _text(REPO / "docs" / "getting-started.md")
    assert "# yaml-language-server: $schema=job.schema.json" in started
    assert "batchrun schema > jobs/job.schema.json" in started
    assert "$schema=../schemas/" not in started


def test_the_python_api_doc_lists_every_function() -> None:
    text = _text(REPO / "docs" / "python-api.md")
    functions = [n for n in api.__all__ if n[0].islower()]
    assert {"validate", "compile", "export"} <= set(functions)
    for name in functions:
        assert f"`api.{name}(" in text, name


def test_getting_started_shows_what_validate_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's job with its two mistakes, validated as the guide says: its lines."""
    guide = _text(REPO / "docs" / "getting-started.md")
    job = re.search(r"```yaml\n(# yaml-language-server.*?)```", guide, re.DOTALL)
    shown = re.search(r"it prints:\n\n```\n(.*?)```", guide, re.DOTALL)
    assert job is not None and shown is not None
    (tmp_path / ".git").mkdir()  # the guide's jobs live in the user's repository
    (tmp_path / "jobs" / "prompts").mkdir(parents=True)
    (tmp_path / "jobs" / "data" / "reviews").mkdir(parents=True)
    (tmp_path / "jobs" / "prompts" / "reviewer.md").write_text("You review products.\n")
    (tmp_path / "jobs" / "data" / "reviews" / "r1.txt").write_text("Loud, but it works.\n")
    broken = job.group(1).replace("model:", "modle:").replace("input.text", "input.txt")
    (tmp_path / "jobs" / "reviews.yaml").write_text(broken)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "jobs/reviews.yaml"])
    assert result.exit_code == 1
    assert result.stdout == shown.group(1)
