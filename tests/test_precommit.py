"""The pre-commit hooks this repository ships and uses."""

from __future__ import annotations

import shlex
import subprocess
import sys

import yaml

from tests.conftest import REPO


def _hook(path: str) -> dict[str, object]:
    data = yaml.safe_load((REPO / path).read_text())
    hooks = data if isinstance(data, list) else data["repos"][0]["hooks"]
    (hook,) = [h for h in hooks if h["id"] == "batchrun-validate"]
    return dict(hook)


def test_published_hook_runs_validate() -> None:
    """Other repositories get a hook whose entry is `batchrun validate`."""
    hook = _hook(".pre-commit-hooks.yaml")
    assert shlex.split(str(hook["entry"])) == ["batchrun", "validate"]
    assert hook["language"] == "python"


def test_own_hook_passes_on_the_example_jobs() -> None:
    """What pre-commit would run on this repository's jobs/ succeeds."""
    hook = _hook(".pre-commit-config.yaml")
    assert str(hook["entry"]).endswith("batchrun validate")
    jobs = sorted(str(p) for p in (REPO / "jobs").glob("*.yaml"))
    assert jobs
    done = subprocess.run(
        [sys.executable, "-m", "runner", "validate", *jobs],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
