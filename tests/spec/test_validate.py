"""runner.validate and `batchrun validate`: exact diagnostics, driven by tests/jobs/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import spec
from runner.cli import cli
from runner.errors import SpecError
from runner.spec import validate
from tests import make_pdf
from tests.conftest import REPO

INVALID = REPO / "tests" / "jobs" / "invalid"
VALID = REPO / "tests" / "jobs" / "valid"
EXAMPLES = REPO / "jobs"
MODELINE = "# yaml-language-server: $schema=../schemas/job.schema.json"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", *args])
    return result.exit_code, result.stdout


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.yaml"))


# ---------------------------------------------------------------------------------------
# Data-driven cases


@pytest.mark.parametrize("case", _names(INVALID))
def test_invalid_case_gives_exactly_its_expected_lines(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from the case's folder with the bare file name, so the paths shown are stable."""
    monkeypatch.chdir(INVALID)
    expected = (INVALID / case).with_suffix(".expected").read_text("utf-8")
    code, out = _run(case)
    assert out == expected
    has_error = any(": warning: " not in line for line in expected.splitlines())
    assert code == (1 if has_error else 0)


def test_every_invalid_case_has_an_expected_file() -> None:
    yamls = {p.stem for p in INVALID.glob("*.yaml")}
    expected = {p.stem for p in INVALID.glob("*.expected")}
    assert yamls == expected
    assert len(yamls) >= 35


def test_expected_files_are_not_empty_and_name_their_case() -> None:
    """An empty .expected would pass for a case that reports nothing."""
    for path in INVALID.glob("*.expected"):
        lines = path.read_text("utf-8").splitlines()
        assert lines, path.name
        # or the template file it names, or its own output schema file
        own = (f"{path.stem}.yaml:", "prompts/", f"schemas/{path.stem}.", "data/")
        assert all(line.startswith(own) for line in lines), path.name


@pytest.mark.parametrize("case", _names(VALID))
def test_valid_case_has_no_diagnostics_and_loads(case: str) -> None:
    result = validate.check_file(VALID / case)
    assert result.diagnostics == []
    assert isinstance(spec.load_job(VALID / case), spec.JobSpec)


@pytest.mark.parametrize("job", _names(EXAMPLES))
def test_example_job_is_clean_and_carries_the_modeline(job: str) -> None:
    """Examples are what new users copy: not even a warning is acceptable."""
    path = EXAMPLES / job
    assert path.read_text("utf-8").splitlines()[0] == MODELINE
    assert validate.check_file(path).diagnostics == []
    assert spec.load_job(path).name == path.stem


def test_the_issue_examples_exist() -> None:
    assert set(_names(EXAMPLES)) >= {
        "quickstart.yaml",
        "survey-topics.yaml",
        "pdf-summaries.yaml",
        "records.yaml",
    }


@pytest.mark.parametrize(("name", "text"), sorted(make_pdf.EXAMPLES.items()))
def test_example_pdfs_are_the_generated_ones(name: str, text: str) -> None:
    """The committed PDFs are exactly what the generator makes, and small."""
    data = (EXAMPLES / "data" / "pdfs" / name).read_bytes()
    assert data == make_pdf.pdf(text)
    assert data.startswith(b"%PDF-1.4\n") and data.endswith(b"%%EOF\n")
    assert len(data) < 2048


# ---------------------------------------------------------------------------------------
# The command


def test_json_format_gives_the_same_diagnostics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    code, out = _run("--format", "json", "size-zero.yaml")
    text_lines = (INVALID / "size-zero.expected").read_text("utf-8").splitlines()
    assert code == 1
    listed = json.loads(out)
    assert [
        f"{d['file']}:{d['line']}:{d['col']}: {d['path']}: {d['message']}" for d in listed
    ] == text_lines
    assert {d["severity"] for d in listed} == {"error"}


def test_json_format_of_a_valid_job_is_an_empty_list() -> None:
    code, out = _run("--format", "json", str(EXAMPLES / "quickstart.yaml"))
    assert (code, json.loads(out)) == (0, [])


def test_several_files_are_all_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A folder or a missing file is one more finding, not a reason to stop."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    code, out = _run("missing.yaml", "folder", str(EXAMPLES / "quickstart.yaml"))
    assert code == 1
    assert out.splitlines() == [
        "missing.yaml:0:0: $: no such file",
        "folder:0:0: $: this is a folder: name a job file (.yaml)",
    ]


def test_no_arguments_is_misuse() -> None:
    assert _run()[0] == 2


def test_a_warning_alone_exits_0(tmp_path: Path) -> None:
    job = (VALID / "minimal.yaml").read_text("utf-8").replace("data/*.txt", "nothing/*.txt")
    (tmp_path / "job.yaml").write_text(job)
    code, out = _run("job.yaml")
    assert code == 0
    assert ": warning: no file matches 'nothing/*.txt'" in out


def test_subprocess_reports_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real entry point: exit 1, the diagnostics on stdout, nothing alarming on stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "validate", "python-tag.yaml", "binary-file.yaml"],
        cwd=INVALID,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.count("\n") == 2
    assert "Traceback" not in proc.stderr


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    job = f"version: 1\nname: !!python/object/apply:os.system ['touch {marker}']\n"
    (tmp_path / "job.yaml").write_text(job)
    result = validate.check_file(tmp_path / "job.yaml")
    assert not result.ok
    assert "not allowed" in result.diagnostics[0].message
    assert not marker.exists()


def test_diagnostics_are_sorted_by_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    result = validate.check_file(INVALID / "messages-order.yaml")
    where = [(d.line, d.col) for d in result.diagnostics]
    assert where == sorted(where) and len(where) == 2


def test_load_job_raises_spec_error_with_every_diagnostic() -> None:
    with pytest.raises(SpecError) as caught:
        spec.load_job(INVALID / "size-zero.yaml")
    assert len(caught.value.diagnostics) == 2


# ---------------------------------------------------------------------------------------
# No input makes check_file raise

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 400_000), st.text(max_size=12), st.floats(-1, 1)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["glob", "text", "file", "type", "role", "x"]), inner)
    ),
    max_leaves=6,
)
_KEYS = st.sampled_from(
    ["version", "name", "input", "vars", "model", "max_tokens", "betas", "system", "prompt",
     "prompt_file", "messages", "params", "batch", "poll", "budget", "output", "extra"]
)  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is never flaky
    suppress_health_check=[HealthCheck.too_slow],
)
@given(changes=st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_any_document_gives_diagnostics_never_an_exception(
    changes: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> None:
    doc = yaml.safe_load((VALID / "minimal.yaml").read_text("utf-8"))
    doc.update(changes)
    path = tmp_path_factory.mktemp("fuzz") / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = validate.check_file(path)
    assert all(d.line >= 1 and d.path.startswith("$") for d in result.diagnostics)
    assert result.ok == (result.document is not None)


def test_glob_warning_agrees_with_the_files_a_run_reads(tmp_path: Path) -> None:
    """Validation asks the runner's own glob: an exclude with a character class that leaves
    no input is warned about, exactly as the run would find nothing."""
    from runner import inputs

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("x")
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "version: 1\nname: g\ninput: {glob: data/*.txt, exclude: ['data/[ab].txt']}\n"
        "model: claude-sonnet-4-6\nmax_tokens: 10\nprompt: '{{ input.text }}'\n"
        "output: {type: jsonl, path: out/g.jsonl}\n"
    )
    result = validate.check_file(job_file)
    warned = [d for d in result.diagnostics if "no file matches" in d.message]
    assert inputs.matching_files(spec.load_job(job_file)) == []
    assert len(warned) == 1 and warned[0].severity == "warning"
