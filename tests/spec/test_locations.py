"""runner.spec.locations through `validate`: the extra a scheme needs is named, and a
postgres output needs psycopg; the URL forms themselves are in tests/jobs/invalid/url-*."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from runner.spec import validate
from tests.jobkit import base_doc


def _messages(tmp_path: Path, **doc: object) -> list[str]:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(base_doc(**doc), sort_keys=False), encoding="utf-8")
    return [d.message for d in validate.check_file(job).diagnostics]


def _without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name)
    )


def test_a_scheme_whose_extra_is_missing_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "gcsfs")
    found = _messages(
        tmp_path,
        input={"glob": "gs://acme-docs/*.txt"},
        output={"type": "jsonl", "path": "gs://acme-out/r.jsonl"},
    )
    need = "gs:// URLs need the gcs extra, not installed here: pip install 'batchrun[gcs]'"
    assert found == [need, need]


def test_an_installed_extra_gives_no_finding(tmp_path: Path) -> None:
    """s3fs is in the test extra: an s3:// job validates clean, reaching no store."""
    found = _messages(
        tmp_path,
        input={"glob": "s3://acme-docs/in/*.txt"},
        output={"type": "files", "path": "s3://acme-out/answers"},
    )
    assert found == []


def test_postgres_without_psycopg_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "psycopg")
    monkeypatch.setenv("RESULTS_DSN", "postgresql://u@h/db")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    found = _messages(
        tmp_path, output={"type": "postgres", "dsn_env": "RESULTS_DSN", "table": "answers"}
    )
    assert found == [
        "the postgres output needs the postgres extra, not installed here: "
        "pip install 'batchrun[postgres]'"
    ]


def test_a_file_url_output_is_a_local_path(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    found = _messages(tmp_path, output={"type": "sqlite", "path": f"file://{tmp_path}/r.db"})
    assert found == []
