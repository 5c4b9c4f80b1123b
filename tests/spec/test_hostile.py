"""The hostile-input corpus (tests/jobs/hostile/): job files an attacker would write, each
with the exact message it must produce (`.expected`), exit 1, and a bound on the time it
may take (`# within:`), all run under a memory cap in a process of their own.

Each case is a job file that once hung `validate`, exhausted memory or crashed with a
traceback: alias bombs, recursive aliases, huge integers, deep nesting, templates asking
for gigabytes, numbers of millions of digits or 10^10 loop steps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import REPO
from tests.spec.hostile_runner import CORPUS, directives

MEMORY_CAP = 1_500_000_000  # bytes of address space for the whole corpus process
CASES = sorted(p.name for p in CORPUS.glob("*.yaml"))


def _seconds(text: str) -> float:
    return float(text.removesuffix("s"))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case run once, in one capped process."""
    scratch = tmp_path_factory.mktemp("hostile")
    budget = sum(_seconds(directives(CORPUS / c)["within"]) for c in CASES) + 60
    proc = subprocess.run(
        [sys.executable, "-m", "tests.spec.hostile_runner", str(scratch), str(MEMORY_CAP)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=budget,
    )
    rows = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, f"the corpus process died after {len(rows)} cases: {proc.stderr}"
    return {row["case"]: row for row in rows}


@pytest.mark.parametrize("case", CASES)
def test_hostile_case_fails_cleanly_and_fast(case: str, outcomes: dict[str, Any]) -> None:
    """Exit 1 with exactly the expected message, within the case's time bound."""
    row = outcomes[case]
    expected = (CORPUS / case).with_suffix(".expected").read_text("utf-8")
    assert (row["code"], row["output"]) == (1, expected)
    assert row["seconds"] <= _seconds(directives(CORPUS / case)["within"])


def test_every_hostile_case_has_its_expectations() -> None:
    yamls = {p.stem for p in CORPUS.glob("*.yaml")}
    assert yamls == {p.stem for p in CORPUS.glob("*.expected")}
    assert all("within" in directives(CORPUS / f"{y}.yaml") for y in yamls)
    assert len(yamls) >= 20


def test_the_memory_cap_is_real(tmp_path: Path) -> None:
    """The cap the corpus runs under does stop a process that allocates past it."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, "
        f"({MEMORY_CAP}, {MEMORY_CAP})); b = bytearray(2 * {MEMORY_CAP})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr
