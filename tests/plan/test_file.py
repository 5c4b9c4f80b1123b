"""Saved plans (plan/file.py): content digests of the inputs, and what `apply` refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import BatchrunError
from runner.plan import file as plan_file
from runner.plan import make_plan
from tests.jobkit import write_job

FILES: dict[str, str | bytes] = {f"data/{i}.txt": f"text {i}" for i in range(3)}


def test_changed_files_are_counted_by_content(tmp_path: Path) -> None:
    job = write_job(tmp_path, dict(FILES))
    saved = plan_file.input_digests(job)
    (tmp_path / "data/0.txt").write_text("text 0")  # rewritten, same content: unchanged
    (tmp_path / "data/1.txt").write_text("edited")
    (tmp_path / "data/2.txt").unlink()
    (tmp_path / "data/3.txt").write_text("new")
    changed = plan_file.changed_inputs(saved, plan_file.input_digests(job))
    assert changed == ["data/1.txt", "data/2.txt", "data/3.txt"]


def test_changed_records_are_counted_by_line(tmp_path: Path) -> None:
    records = "".join(f'{{"id": {i}}}\n' for i in range(4))
    doc = {"input": {"jsonl": "in.jsonl"}, "prompt": "{{ input.record.id }}"}
    job = write_job(tmp_path, {"in.jsonl": records}, **doc)
    saved = plan_file.input_digests(job)
    (tmp_path / "in.jsonl").write_text(records.replace('{"id": 2}', '{"id": 20}') + '{"id": 4}\n')
    assert plan_file.changed_inputs(saved, plan_file.input_digests(job)) == ["line 3", "line 5"]


def test_a_plan_round_trips_and_refuses_when_stale(tmp_path: Path) -> None:
    job = write_job(tmp_path, dict(FILES))
    plan = make_plan(job)
    out = tmp_path / "plan.json"
    plan_file.save(out, [plan_file.job_entry(job, Path("job.yaml"), plan, None)])
    [saved] = plan_file.load(out)
    assert saved.name == job.name and saved.submit == frozenset(plan.submit_ids)
    plan_file.refuse_if_stale(out, saved, job, None)  # nothing changed: no error
    (tmp_path / "data/1.txt").write_text("edited")
    with pytest.raises(BatchrunError, match=r"the plan is stale: 1 input changed; plan again"):
        plan_file.refuse_if_stale(out, saved, job, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such plan file"),
        ("not json", "not a plan file"),
        ('{"format": "something else"}', "not a plan file of this batchrun"),
        ('{"format": "batchrun-plan/1", "jobs": [{"job": "x"}]}', "damaged job entry"),
    ],
)
def test_bad_plan_files_are_refused_by_name(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BatchrunError, match=message):
        plan_file.load(path)


def test_plan_over_budget_saves_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from runner.cli import cli

    job = write_job(tmp_path, dict(FILES), budget={"max_usd": 0.0000001})
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(cli, ["plan", str(job.path), "--out", str(out)])
    assert result.exit_code == 1 and "above budget.max_usd" in result.output
    assert not out.exists()
