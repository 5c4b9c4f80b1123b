"""runner.spec: loading job files into a frozen JobSpec."""

from __future__ import annotations

import dataclasses

import pytest

from runner import spec
from tests.conftest import REPO


def test_quickstart_loads_with_absolute_paths() -> None:
    """Paths in a job resolve relative to the job file, not the working folder."""
    job = spec.load_job(REPO / "jobs" / "quickstart.yaml")
    assert job.name == "quickstart"
    assert job.output.path == (REPO / "out" / "quickstart.jsonl").resolve()
    assert job.system is not None and job.system.cache == "5m"
    assert job.prompt is not None and "input.text" in job.prompt.source


def test_jobspec_is_frozen() -> None:
    job = spec.load_job(REPO / "jobs" / "quickstart.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("250ms", 0.25)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert spec.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("256MB", 256_000_000), ("256MiB", 268_435_456), (1024, 1024), ("1 KiB", 1024)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert spec.parse_size(text) == size
